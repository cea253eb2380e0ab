"""The program's sha256 in the evidence of anomalies that name a running process."""
import hashlib
import os
import subprocess
import sys
import time

from routerwatch.program_hash import ProgramHasher


def sha256_of(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_the_hash_of_a_running_program_is_its_file_hash_and_cached():
    hasher = ProgramHasher("/proc")
    expected = sha256_of(os.path.realpath("/proc/self/exe"))
    assert hasher.of_pid(os.getpid()) == expected
    assert hasher.of_pid(os.getpid()) == expected
    assert (hasher.hashed, hasher.cached) == (1, 1)


def test_a_deleted_program_is_still_hashed(tmp_path):
    program = tmp_path / "dropbearx"
    program.write_bytes(open("/bin/sleep", "rb").read())
    program.chmod(0o755)
    expected = sha256_of(program)
    child = subprocess.Popen([str(program), "30"])
    try:
        program.unlink()
        assert ProgramHasher("/proc").of_pid(child.pid) == expected
    finally:
        child.kill()
        child.wait()


def test_nothing_for_kernel_threads_missing_pids_bad_pids_and_large_files():
    hasher = ProgramHasher("/proc")
    assert hasher.of_pid(2) is None                  # kthreadd: no exe
    for pid in (0, -1, 2 ** 40, "1", None, True):
        assert hasher.of_pid(pid) is None
    assert ProgramHasher("/proc", max_bytes=16).of_pid(os.getpid()) is None


def test_the_cache_is_bounded(tmp_path):
    hasher = ProgramHasher("/proc", cache_entries=2)
    children = []
    try:
        for n in range(4):
            program = tmp_path / ("p%d" % n)
            program.write_bytes(open("/bin/sleep", "rb").read() + bytes([n]))
            program.chmod(0o755)
            children.append(subprocess.Popen([str(program), "30"]))
        digests = {hasher.of_pid(c.pid) for c in children}
        assert len(digests) == 4 and None not in digests
        assert hasher.drops()["program_hash_evicted"] == 2
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_only_kinds_naming_a_program_get_a_sha256():
    hasher = ProgramHasher("/proc")
    evidence = {"pid": os.getpid(), "port": 7777}
    added = hasher.add_to("conn.new_listener", evidence)
    assert added["sha256"] == sha256_of(os.path.realpath(sys.executable)) or \
        added["sha256"] == sha256_of(os.path.realpath("/proc/self/exe"))
    assert "sha256" not in evidence                  # a new dict, the finding's stays as it was
    assert hasher.add_to("login.bruteforce", evidence) is evidence
    assert hasher.add_to("integrity.deleted_exe", {"pid": None}) == {"pid": None}


def test_the_agent_sends_the_sha256_with_a_listener_anomaly():
    import io

    from routerwatch import config as cfg
    from routerwatch.detectors.base import Finding
    from routerwatch.runtime import Agent
    from routerwatch.sinks.stdout import StdoutSink
    agent = Agent(cfg.load(defaults={"root": "/"}), "r1", [], [], StdoutSink(io.StringIO()),
                  run_id="0123456789abcdef", started=0.0)
    finding = Finding(kind="conn.new_listener", severity="high", summary="port 7777",
                      evidence={"port": 7777, "pid": os.getpid()}, incident="tcp/7777",
                      time=1.0)
    anomaly = agent._stamp(finding, 1, 1.0)
    assert anomaly.evidence["sha256"] == sha256_of(os.path.realpath("/proc/self/exe"))
    assert "sha256" not in finding.evidence
    login = Finding(kind="login.bruteforce", severity="high", summary="x",
                    evidence={"pid": os.getpid()}, incident="a", time=1.0)
    assert "sha256" not in agent._stamp(login, 1, 1.0).evidence


def router_tree(tmp_path, links):
    """A router tree whose proc/<pid>/exe are plain symlinks, as tests/fixtures commits them."""
    tree = tmp_path / "tree"
    for pid, target in links.items():
        (tree / "proc" / str(pid)).mkdir(parents=True)
        os.symlink(target, tree / "proc" / str(pid) / "exe")
    return tree


def test_under_a_root_the_program_is_the_tree_file_the_link_names(tmp_path):
    tree = router_tree(tmp_path, {10: "/tmp/.x", 11: "/usr/bin/env", 12: "/tmp/.x (deleted)",
                                  13: "/tmp/escape", 14: "/tmp/fifo", 15: "relative/x",
                                  16: "/../../../../usr/bin/env"})
    (tree / "tmp").mkdir()
    (tree / "tmp" / ".x").write_bytes(b"\x7fELF implant")
    os.symlink("/usr/bin/env", tree / "tmp" / "escape")     # out of the tree: the host's file
    os.mkfifo(tree / "tmp" / "fifo")                         # would block an open() forever
    hasher = ProgramHasher(str(tree / "proc"), str(tree))
    assert hasher.of_pid(10) == hashlib.sha256(b"\x7fELF implant").hexdigest()
    # the host has /usr/bin/env, the tree does not: nothing, never the host's file
    for pid in (11, 12, 13, 14, 15, 16):
        assert hasher.of_pid(pid) is None, pid
    assert ProgramHasher("/proc", "/").of_pid(os.getpid()) == \
        sha256_of(os.path.realpath("/proc/self/exe"))


def test_a_program_rewritten_in_place_with_its_mtime_set_back_is_hashed_again(tmp_path):
    """Same file, same size, mtime restored (touch -d): only the ctime tells, and it must."""
    tree = router_tree(tmp_path, {10: "/tmp/.x"})
    (tree / "tmp").mkdir()
    program = tree / "tmp" / ".x"
    program.write_bytes(b"\x7fELF benign")
    hasher = ProgramHasher(str(tree / "proc"), str(tree))
    assert hasher.of_pid(10) == hashlib.sha256(b"\x7fELF benign").hexdigest()
    before = os.stat(program)
    time.sleep(0.02)        # past one tick of the clock timestamps come from (HZ >= 100)
    with open(program, "r+b") as handle:       # the same inode, the same size
        handle.write(b"\x7fELF implnt")
    os.utime(program, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(program)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == \
        (before.st_ino, before.st_size, before.st_mtime_ns)
    assert after.st_ctime_ns != before.st_ctime_ns
    assert hasher.of_pid(10) == hashlib.sha256(b"\x7fELF implnt").hexdigest()
    assert (hasher.hashed, hasher.cached) == (2, 0)
