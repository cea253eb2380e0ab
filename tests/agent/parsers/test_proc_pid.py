"""/proc/<pid>/stat, status and cmdline -> name, parent, start time, where argv lies, real uid,
command line; the process chooses its comm and argv, so every byte is hostile."""
from hypothesis import given, settings, strategies as st

from routerwatch.parsers.proc_pid import (MAX_NAME_CHARS, PidStat, full_name, parse_cmdline,
                                          parse_real_uid, parse_stat)

# what Linux 5.x prints for a busybox ash on 32-bit MIPS (52 fields)
ASH = (b"1712 (ash) S 1 1712 1712 34816 1840 4194560 1012 6218 0 2 31 18 10 7 20 0 1 0 2671 "
       b"1327104 221 2147483647 4194304 4929760 2142272032 0 0 0 0 3686404 134302727 0 0 0 "
       b"17 0 0 0 0 0 0 5006016 5007368 5025792 2142273330 2142273335 2142273335 2142273519 0\n")


def stat_line(pid, comm, ppid, start, image=(0, 0, 0, 0)):
    fields = ["0"] * 49
    fields[0], fields[18] = str(ppid), str(start)
    fields[44:48] = [str(v) for v in image]
    return b"%d (%s) S %s\n" % (pid, comm, " ".join(fields).encode())


def test_a_real_stat_line():
    assert parse_stat(ASH) == PidStat(name="ash", ppid=1, start_ticks=2671,
                                      image=(2142273330, 2142273335, 2142273335, 2142273519))


def test_a_kernel_thread_is_told_by_its_flags():
    kworker = (b"41 (kworker/0:2-events) I 2 0 0 0 -1 69238880 0 0 0 0 0 17 0 0 20 0 1 0 613 0 0 "
               b"4294967295 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
    assert parse_stat(kworker).kernel_thread is True and parse_stat(ASH).kernel_thread is False


def test_an_old_kernel_without_the_argv_fields():
    old = b" ".join(ASH.split()[:44]) + b"\n"
    assert parse_stat(old) == PidStat(name="ash", ppid=1, start_ticks=2671, image=())


def test_a_comm_with_parentheses_spaces_and_bad_bytes_ends_at_the_last_parenthesis():
    parsed = parse_stat(stat_line(7, b"x) R 99 (y \xff", 3, 42))
    assert (parsed.name, parsed.ppid, parsed.start_ticks) == ("x) R 99 (y \udcff", 3, 42)


def test_malformed_stat_lines_are_refused():
    for bad in (b"", b"\n", b"12 (x) S\n", b"12 (x) S 1 2 3\n", b"12 x S 1 " + b"0 " * 30,
                stat_line(1, b"x", -1, 5), b"12 (x) S 1 - " + b"0 " * 30 + b"\n",
                b"abc (x) S " + b"1 " * 50 + b"\n", ASH.replace(b" 2671 ", b" 26-71 ")):
        assert parse_stat(bad) is None, bad


def test_real_uid_from_status():
    status = b"Name:\tdnsmasq\nUmask:\t0022\nState:\tS\nUid:\t453\t453\t453\t453\nGid:\t453\n"
    assert parse_real_uid(status) == 453
    assert parse_real_uid(b"Name:\tx\n") is None
    assert parse_real_uid(b"Uid:\t-1\t0\n") is None
    assert parse_real_uid(b"Uid:\n") is None


def test_command_lines():
    assert parse_cmdline(b"/usr/sbin/dropbear\0-F\0-P\0/var/run/dropbear.pid\0") == (
        "/usr/sbin/dropbear -F -P /var/run/dropbear.pid")
    assert parse_cmdline(b"") == ""
    assert parse_cmdline(b"nginx: worker process") == "nginx: worker process"   # rewritten argv
    assert parse_cmdline(b"\xff\0a\0\0") == "\udcff a "


def test_a_cut_name_is_completed_from_argv0():
    assert full_name("routerwatch-age", b"/usr/bin/routerwatch-agent\0-c\0") == "routerwatch-agent"
    assert full_name("routerwatch-age", b"python3\0/usr/bin/routerwatch-agent\0") == (
        "routerwatch-age")
    assert full_name("sh", b"/bin/something-else\0") == "sh"
    assert full_name("a" * 15, b"a" * 500) == "a" * MAX_NAME_CHARS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_refused(data):
    parsed = parse_stat(data)
    assert parsed is None or (parsed.ppid >= 0 and len(parsed.name) <= MAX_NAME_CHARS)
    uid = parse_real_uid(data)
    assert uid is None or uid >= 0
    assert isinstance(parse_cmdline(data), str)
    assert isinstance(full_name("x" * 15, data), str)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=15), st.integers(0, 2 ** 31), st.integers(0, 2 ** 40))
def test_any_comm_is_read_back_whole(comm, ppid, start):
    parsed = parse_stat(stat_line(4242, comm, ppid, start))
    assert parsed == PidStat(name=comm.decode("utf-8", "surrogateescape"), ppid=ppid,
                             start_ticks=start, image=(0, 0, 0, 0))
