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
    assert sorted(by_pid) == [1, 980, 1024, 1100, 4242]
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


def test_psutil_procfs_path_is_restored_after_a_scan(attacked):
    before = psutil.PROCFS_PATH
    scan(attacked)
    assert psutil.PROCFS_PATH == before


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
