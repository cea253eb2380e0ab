"""The process watcher: given a /proc tree (a fixture, or this machine's), when it scans, then
one ProcessSnapshot with each process's program, whether it was deleted, and its ports."""
import os
import shutil

import psutil
import pytest

from fixtures.build_tree import build_tree
from routerwatch import config as cfg
from routerwatch.contract import wire_text
from routerwatch.sources import processes as processes_module
from routerwatch.sources.processes import ProcessSource


def scan(root):
    source = ProcessSource(cfg.load(defaults={"root": str(root)}))
    (snapshot,) = source.poll(500.0)
    return source, snapshot, {p.pid: p for p in snapshot.processes}


@pytest.fixture
def attacked(tmp_path):
    return build_tree("router-attacked", tmp_path / "attacked")


def test_attacked_router_processes(attacked):
    source, snapshot, by_pid = scan(attacked)
    assert snapshot.time == 500.0
    assert [p.pid for p in snapshot.processes] == [1, 980, 1024, 1100, 4242]   # in pid order
    backdoor = by_pid[4242]
    assert (backdoor.name, backdoor.exe, backdoor.exe_deleted) == (".x", "/tmp/.x", True)
    assert backdoor.exe_replaced is False
    assert backdoor.cmdline == "/tmp/.x -d"
    assert (backdoor.ppid, backdoor.parent_name, backdoor.uid) == (1, "procd", 0)
    assert backdoor.listening_ports == (7777, 11288)
    dropbear = by_pid[1024]
    assert (dropbear.exe, dropbear.exe_deleted, dropbear.listening_ports) == (
        "/usr/sbin/dropbear", False, (22,))
    assert by_pid[980].listening_ports == (53,) and by_pid[980].uid == 453
    assert source.counters()["processes_examined"] == 5


def test_a_deleted_program_whose_name_exists_again_is_marked_replaced(attacked):
    # a package upgrade replaced the running dropbear: deleted, but the path exists again
    link = attacked / "proc/1024/exe"
    link.unlink()
    os.symlink("/usr/sbin/dropbear (deleted)", link)
    (attacked / "usr/sbin").mkdir(parents=True)
    (attacked / "usr/sbin/dropbear").write_bytes(b"\x7fELF new version")
    _, _, by_pid = scan(attacked)
    assert (by_pid[1024].exe_deleted, by_pid[1024].exe_replaced) == (True, True)


def test_vanishing_and_unreadable_processes_are_skipped_quietly(attacked):
    shutil.rmtree(attacked / "proc/1100")               # gone between listing and reading
    (attacked / "proc/1200").mkdir()                     # a directory with nothing readable
    (attacked / "proc/980/stat").write_text("")          # a dying process's empty stat
    source, _, by_pid = scan(attacked)
    assert sorted(by_pid) == [1, 1024, 4242]
    assert source.drops()["processes_vanished"] == 2


def test_the_number_of_processes_examined_is_capped(attacked, monkeypatch):
    monkeypatch.setattr(processes_module, "MAX_PROCESSES", 2)
    source, _, by_pid = scan(attacked)
    assert sorted(by_pid) == [1, 980]
    assert source.drops()["processes_over_cap"] == 3


def test_long_command_lines_are_clipped_and_keep_their_bytes_for_the_wire(attacked):
    (attacked / "proc/4242/cmdline").write_bytes(b"/tmp/.x\0\x1b[2J\xff" + b"A" * 5000 + b"\0")
    _, _, by_pid = scan(attacked)
    cmdline = by_pid[4242].cmdline
    assert len(cmdline) == processes_module.MAX_CMDLINE_CHARS
    # kept as read; the runtime escapes it once where it becomes a payload
    assert cmdline.startswith("/tmp/.x \x1b[2J\udcff")
    assert wire_text(cmdline).startswith("/tmp/.x \\x1b[2J\\xffAAA")


def test_a_missing_proc_gives_an_empty_snapshot(tmp_path):
    _, snapshot, by_pid = scan(tmp_path)
    assert by_pid == {} and snapshot.time == 500.0


def test_this_machines_proc():
    source, snapshot, by_pid = scan("/")
    assert os.getpid() in by_pid
    me = by_pid[os.getpid()]
    assert me.exe and os.path.realpath(me.exe) == os.path.realpath(
        psutil.Process().exe()) and me.exe_deleted is False
    assert me.uid == os.getuid() and me.ppid == os.getppid()


# ------------------------------------------------------------------ rescans: what is read again

def set_stat(tree, pid, name="x", ppid=1, start=1500, image=(0, 0, 0, 0), flags=0x400100):
    fields = ["0"] * 49
    fields[0], fields[5], fields[18] = str(ppid), str(flags), str(start)   # fields 4, 9, 22
    fields[44:48] = [str(v) for v in image]                # fields 48-51
    (tree / ("proc/%d/stat" % pid)).write_bytes(
        b"%d (%s) S %s\n" % (pid, name.encode() if isinstance(name, str) else name,
                              " ".join(fields).encode()))


def relink(path, target):
    path.unlink()
    os.symlink(target, path)


def test_an_unchanged_router_is_read_in_full_once(attacked):
    source = ProcessSource(cfg.load(defaults={"root": str(attacked)}))
    (first,) = source.poll(1.0)
    assert (source.full_reads, source.fd_walks) == (5, 5)
    (attacked / "proc/4242/cmdline").write_bytes(b"changed\0")   # not read again: same process
    (second,) = source.poll(31.0)
    assert (source.full_reads, source.fd_walks) == (5, 5)
    assert second.processes == first.processes
    assert {p.pid: p.cmdline for p in second.processes}[4242] == "/tmp/.x -d"


def test_a_reused_pid_is_read_again(attacked):
    source = ProcessSource(cfg.load(defaults={"root": str(attacked)}))
    source.poll(1.0)
    # pid 1100 ended and a new process got its number: same program (busybox), later start
    set_stat(attacked, 1100, name="uhttpd", start=9000)
    (attacked / "proc/1100/cmdline").write_bytes(b"/usr/sbin/uhttpd\0-p\08080\0")
    (snapshot,) = source.poll(31.0)
    assert {p.pid: p.cmdline for p in snapshot.processes}[1100] == "/usr/sbin/uhttpd -p 8080"
    assert source.full_reads == 6


def test_a_program_executed_in_place_is_read_again(attacked):
    source = ProcessSource(cfg.load(defaults={"root": str(attacked)}))
    source.poll(1.0)
    # same pid, same start time: exec() of another program (a new exe link)
    relink(attacked / "proc/1100/exe", "/tmp/.y")
    (attacked / "proc/1100/cmdline").write_bytes(b"/tmp/.y\0")
    by_pid = {p.pid: p for p in source.poll(31.0)[0].processes}
    assert (by_pid[1100].exe, by_pid[1100].cmdline) == ("/tmp/.y", "/tmp/.y")
    # exec() of the same program (a shell that runs `exec sh /tmp/x.sh`): argv moved
    set_stat(attacked, 1100, name="uhttpd",
             image=(2147400000, 2147400020, 2147400020, 2147400100))
    (attacked / "proc/1100/cmdline").write_bytes(b"sh\0/tmp/x.sh\0")
    by_pid = {p.pid: p for p in source.poll(61.0)[0].processes}
    assert by_pid[1100].cmdline == "sh /tmp/x.sh"
    assert source.full_reads == 7


def test_a_program_deleted_after_the_first_scan_is_seen_deleted(attacked):
    source = ProcessSource(cfg.load(defaults={"root": str(attacked)}))
    assert {p.pid: p for p in source.poll(1.0)[0].processes}[1100].exe_deleted is False
    target = os.readlink(attacked / "proc/1100/exe")
    relink(attacked / "proc/1100/exe", target + " (deleted)")
    by_pid = {p.pid: p for p in source.poll(31.0)[0].processes}
    assert (by_pid[1100].exe, by_pid[1100].exe_deleted) == (target, True)


def test_a_vanished_pid_is_forgotten(attacked):
    source = ProcessSource(cfg.load(defaults={"root": str(attacked)}))
    source.poll(1.0)
    saved = attacked / "saved-4242"
    shutil.move(attacked / "proc/4242", saved)
    (snapshot,) = source.poll(31.0)
    assert 4242 not in {p.pid for p in snapshot.processes}
    assert 4242 not in source._known and len(source._known) == 4
    # the same pid, same start time, back as another process: read as new, not from memory
    shutil.move(saved, attacked / "proc/4242")
    (attacked / "proc/4242/cmdline").write_bytes(b"/tmp/.x\0-v\0")
    (snapshot,) = source.poll(61.0)
    assert {p.pid: p.cmdline for p in snapshot.processes}[4242] == "/tmp/.x -v"


def test_a_process_whose_stat_cannot_be_read_is_counted_denied(attacked, monkeypatch):
    real_read = processes_module._read

    def read(path, limit):
        if path.endswith(os.path.join("980", "stat")):
            raise PermissionError(13, "Permission denied")
        return real_read(path, limit)

    monkeypatch.setattr(processes_module, "_read", read)
    source, _, by_pid = scan(attacked)
    assert 980 not in by_pid and sorted(by_pid) == [1, 1024, 1100, 4242]
    assert source.drops()["processes_denied"] == 1


def test_unreadable_cmdline_status_and_exe_leave_those_fields_empty(attacked):
    for name in ("cmdline", "status"):
        (attacked / "proc/1024" / name).unlink()
        (attacked / "proc/1024" / name).mkdir()          # reading a directory fails
    (attacked / "proc/1024/exe").unlink()                 # a kernel thread has no exe
    _, _, by_pid = scan(attacked)
    assert (by_pid[1024].cmdline, by_pid[1024].uid, by_pid[1024].exe) == ("", None, None)
    assert by_pid[1024].name == "dropbear"


def test_hostile_names_and_command_lines_keep_their_bytes(attacked):
    set_stat(attacked, 4242, name=b"a) S 1 (\xff\n")   # comm may hold ")", spaces, bad UTF-8
    (attacked / "proc/4242/cmdline").write_bytes(b"\xfe\xff\0--x=\xc3\0")
    _, _, by_pid = scan(attacked)
    assert by_pid[4242].name == "a) S 1 (\udcff\n"
    assert by_pid[4242].cmdline == "\udcfe\udcff --x=\udcc3"
    assert wire_text(by_pid[4242].name).encode("utf-8")
    assert by_pid[4242].ppid == 1 and by_pid[4242].exe == "/tmp/.x"


def test_new_listening_sockets_make_every_process_walk_its_fds_again(attacked):
    source = ProcessSource(cfg.load(defaults={"root": str(attacked)}))
    source.poll(1.0)
    # the backdoor's third socket starts listening on 4444
    with open(attacked / "proc/net/tcp", "a") as handle:
        handle.write("   6: 00000000:115C 00000000:0000 0A 00000000:00000000 00:00000000 "
                     "00000000     0        0 30003 1 0000000000000000 100 0 0 10 0\n")
    by_pid = {p.pid: p for p in source.poll(31.0)[0].processes}
    assert by_pid[4242].listening_ports == (4444, 7777, 11288)
    assert (source.full_reads, source.fd_walks) == (5, 10)


def test_a_fork_bomb_does_not_grow_the_memory(attacked, monkeypatch):
    monkeypatch.setattr(processes_module, "MAX_PROCESSES", 50)
    for pid in range(20000, 20300):
        (attacked / "proc" / str(pid)).mkdir()
        set_stat(attacked, pid, name="bomb", start=pid)
    source = ProcessSource(cfg.load(defaults={"root": str(attacked)}))
    for t in range(3):
        (snapshot,) = source.poll(float(t))
    assert len(snapshot.processes) == 50 and len(source._known) <= 50
    assert source.drops()["processes_over_cap"] == 3 * 255
    assert {1, 980, 1024, 1100, 4242} <= {p.pid for p in snapshot.processes}
    for pid in range(20000, 20300):
        shutil.rmtree(attacked / "proc" / str(pid))
    source.poll(9.0)
    assert len(source._known) == 5


def test_a_kernel_thread_is_not_read_again_until_it_has_a_program(attacked):
    (attacked / "proc/2").mkdir()
    set_stat(attacked, 2, name="kthreadd", ppid=0, flags=0x208040)    # PF_KTHREAD, no exe
    source = ProcessSource(cfg.load(defaults={"root": str(attacked)}))
    by_pid = {p.pid: p for p in source.poll(1.0)[0].processes}
    assert (by_pid[2].name, by_pid[2].exe, by_pid[2].ppid) == ("kthreadd", None, 0)
    (attacked / "proc/2/stat").write_bytes(b"garbage")       # not read: still a kernel thread
    by_pid = {p.pid: p for p in source.poll(31.0)[0].processes}
    assert by_pid[2].name == "kthreadd" and source.full_reads == 6
    # the pid now runs a program (a usermode helper exec'd one, or the pid was reused)
    set_stat(attacked, 2, name="hotplug", ppid=2, start=9000)
    os.symlink("/tmp/hotplug", attacked / "proc/2/exe")
    (attacked / "proc/2/cmdline").write_bytes(b"/tmp/hotplug\0")
    by_pid = {p.pid: p for p in source.poll(61.0)[0].processes}
    assert (by_pid[2].name, by_pid[2].exe, by_pid[2].cmdline) == (
        "hotplug", "/tmp/hotplug", "/tmp/hotplug")
    # a user process with the flag bit unset is read each scan as before
    assert source._known.get(1).kernel_thread is False
