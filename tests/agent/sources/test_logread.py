"""The log source: given a followed file (appended, rotated, truncated), a logread stand-in that
keeps dying, stdin, or a file read once, the login lines come out as LoginAttempt events."""
import io
import os
import sys
import time
from pathlib import Path


from routerwatch.config import load
from routerwatch.sources.logread import (LineSplitter, LogSource, iter_login_attempts,
                                         next_backoff)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "logs"
NOW = 1764043891.0


def bad_password(ip, port, pid=100, user="root"):
    return ("Tue Nov 25 04:11:31 2025 authpriv.warn dropbear[%d]: Bad password attempt for '%s' "
            "from %s:%d\n" % (pid, user, ip, port))


def config_for(*overrides):
    return load(None, list(overrides))


def collect(source, want, deadline_seconds=20):
    """Drain until `want(events)` holds; the deadline only stops a broken test from hanging."""
    events = []
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        events.extend(source.drain(NOW, 5000))
        if want(events):
            return events
        time.sleep(0.05)
    return events


# ------------------------------------------------------------------ line splitting

def test_lines_are_cut_at_the_cap_and_the_rest_skipped():
    splitter = LineSplitter(8)
    assert splitter.feed(b"short\n0123456789ABCDEF\nnext\n") == [b"short", b"01234567", b"next"]
    assert splitter.cut == 1


def test_a_line_split_across_reads_is_joined():
    splitter = LineSplitter(100)
    assert splitter.feed(b"Bad pass") == []
    assert splitter.feed(b"word\nsec") == [b"Bad password"]
    assert splitter.feed(b"ond\n") == [b"second"]


def test_an_overlong_line_across_many_reads_costs_only_the_cap():
    splitter = LineSplitter(16)
    out = []
    for _ in range(1000):
        out.extend(splitter.feed(b"A" * 1000))
    out.extend(splitter.feed(b"tail\nok\n"))
    assert out == [b"A" * 16, b"ok"]
    assert len(splitter._buf) == 0


def test_restart_backoff_doubles_up_to_the_cap():
    delays, delay = [], 0.0
    for _ in range(8):
        delay = next_backoff(delay, 10)
        delays.append(delay)
    assert delays == [0.5, 1, 2, 4, 8, 10, 10, 10]


# ------------------------------------------------------------------ check-log path

def test_captured_dropbear_log_gives_every_attempt_once():
    with open(FIXTURES / "dropbear-2022.83-busybox-syslogd.log", "rb") as handle:
        events = list(iter_login_attempts(handle))
    failures = [e for e in events if e.outcome == "failure"]
    successes = [e for e in events if e.outcome == "success"]
    assert sum(e.attempts for e in failures) == 9
    assert [(e.user, e.method) for e in successes] == [("tuser", "password"), ("tuser", "pubkey")]
    # 2022.83's nonexistent-user lines carry no address: the PID's exit line supplies it
    unknown = [(e.pid, e.source_ip, e.source_port) for e in failures if e.method == "unknown_user"]
    assert unknown == [(11632, "127.0.0.1", 33084), (11649, "127.0.0.1", 35720),
                       (11783, "127.0.0.1", 53156)]
    assert {e.source_ip for e in events} == {"127.0.0.1", "::1"}


# ------------------------------------------------------------------ following a file

def test_file_follow_starts_at_the_end_and_survives_rotation_and_truncation(tmp_path):
    path = tmp_path / "messages"
    path.write_text(bad_password("192.0.2.1", 1))          # before the start: not reported
    source = LogSource(config_for("log.source=file", "log.path=%s" % path))
    try:
        with open(path, "a") as handle:
            handle.write(bad_password("192.0.2.2", 2))
        events = collect(source, lambda ev: len(ev) >= 1)
        assert [e.source_ip for e in events] == ["192.0.2.2"]

        # rotation (logread -F -S, logrotate): renamed away, a new file at the path
        os.rename(path, tmp_path / "messages.old")
        with open(tmp_path / "messages.old", "a") as handle:
            handle.write(bad_password("192.0.2.3", 3))     # late write to the old file
        path.write_text(bad_password("192.0.2.4", 4))
        events = collect(source, lambda ev: len(ev) >= 2)
        assert [e.source_ip for e in events] == ["192.0.2.3", "192.0.2.4"]

        # truncation in place, then new content shorter than what was read
        with open(path, "w") as handle:
            handle.write("")
        deadline = time.monotonic() + 20   # let the reader see the size drop before the write
        while source.truncations == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(path, "a") as handle:
            handle.write(bad_password("192.0.2.5", 5))
        events = collect(source, lambda ev: len(ev) >= 1)
        assert [e.source_ip for e in events] == ["192.0.2.5"]
        assert source.rotations == 1 and source.truncations == 1
        assert source.counters()["log_lines_recognised"] == 4
    finally:
        source.close()


def test_a_file_that_appears_later_is_read_from_its_start(tmp_path):
    path = tmp_path / "late.log"
    source = LogSource(config_for("log.source=file", "log.path=%s" % path))
    try:
        path.write_text(bad_password("192.0.2.6", 6))
        events = collect(source, lambda ev: len(ev) >= 1)
        assert [e.source_ip for e in events] == ["192.0.2.6"]
    finally:
        source.close()


def test_the_queue_is_bounded_and_drops_are_counted(tmp_path):
    path = tmp_path / "flood.log"
    path.write_text("")
    source = LogSource(config_for("log.source=file", "log.path=%s" % path, "log.queue_lines=100"))
    try:
        with open(path, "a") as handle:
            handle.write("".join(bad_password("192.0.2.7", 1000 + i, pid=1000 + i)
                                 for i in range(500)))
            handle.write("Tue Nov 25 04:11:31 2025 daemon.info procd: unrelated\n" * 50)
        deadline = time.monotonic() + 20
        while source.lines_read < 550 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert source.counters()["log_lines"] == 550
        assert source.drops()["log_queue"] == 400
        events = source.drain(NOW, 5000)
        assert [e.source_port for e in events] == list(range(1400, 1500))   # the newest kept
    finally:
        source.close()


def test_a_followed_stream_queues_only_login_lines_and_counts_every_line(tmp_path):
    """The reader thread cuts out login candidates only; lines of other daemons (a flood of
    them, one overlong) are counted but never queued, a login line split between two reads is
    joined, and an overlong login line is cut at the cap and counted as cut."""
    path = tmp_path / "mixed.log"
    path.write_text("")
    source = LogSource(config_for("log.source=file", "log.path=%s" % path,
                                  "log.max_line_bytes=256", "log.queue_lines=1000"))
    noise = "Tue Nov 25 04:11:31 2025 kern.warn kernel: [ 1.0] nf_conntrack: table full %d\n"
    long_user = "a" * 400
    try:
        with open(path, "a") as handle:
            text = "".join(noise % i for i in range(3000))      # several 64 KiB reads
            text += bad_password("192.0.2.8", 1001, pid=11)
            text += "Tue Nov 25 04:11:31 2025 daemon.info procd: %s\n" % ("x" * 5000)
            text += bad_password("192.0.2.8", 1002, pid=12, user=long_user)
            text += "".join(noise % i for i in range(3000))
            login = bad_password("192.0.2.8", 1003, pid=13)
            handle.write(text + login[:20])
            handle.flush()
            deadline = time.monotonic() + 20
            while source.lines_read < 6003 and time.monotonic() < deadline:
                time.sleep(0.05)
            handle.write(login[20:])                 # the rest of the line, in a later read
        # the cut line's end is gone: it waits for its PID's connection line, as on a router
        events = collect(source, lambda events: len(events) >= 2)
        assert [(e.source_ip, e.source_port, e.user) for e in events] == \
            [("192.0.2.8", 1001, "root"), ("192.0.2.8", 1003, "root")]
        assert source.counters()["log_lines"] == 6004
        assert source.drops()["log_lines_cut"] == 1          # the login line, not procd's
        assert source.drops()["log_queue"] == 0
    finally:
        source.close()


def test_once_reads_the_whole_file_and_stops():
    path = FIXTURES / "openwrt-23.05-dropbear-2022.82-attack.log"
    source = LogSource(config_for("log.source=file", "log.path=%s" % path), once=True)
    events = []
    while not source.exhausted:
        events.extend(source.drain(NOW, 10))
    source.close()
    with open(path, "rb") as handle:
        expected = list(iter_login_attempts(handle))
    assert [(e.source_ip, e.outcome, e.attempts) for e in events] == \
           [(e.source_ip, e.outcome, e.attempts) for e in expected]
    assert len(events) == 28


# ------------------------------------------------------------------ logread and stdin

def test_a_dying_logread_is_restarted(tmp_path):
    starts = tmp_path / "starts"
    script = tmp_path / "fake-logread"
    script.write_text(
        "#!/bin/sh\n"
        "echo started >> %s\n"
        "n=$(wc -l < %s)\n"
        "echo \"Tue Nov 25 04:11:31 2025 authpriv.warn dropbear[$n]: "
        "Bad password attempt for 'root' from 192.0.2.9:$n\"\n"
        "exit 1\n" % (starts, starts))
    script.chmod(0o755)
    source = LogSource(config_for("log.source=logread", "log.command=%s -f" % script,
                                  "log.restart_max_seconds=1"))
    try:
        events = collect(source, lambda ev: len(ev) >= 3)
    finally:
        source.close()
    assert [e.source_port for e in events[:3]] == [1, 2, 3]
    assert source.counters()["log_restarts"] >= 2
    assert len(starts.read_text().splitlines()) >= 3


def test_stdin_lines_are_read(monkeypatch):
    read_fd, write_fd = os.pipe()
    os.write(write_fd, bad_password("192.0.2.10", 10).encode())
    os.close(write_fd)
    with open(read_fd, "rb", buffering=0) as fake_stdin:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(fake_stdin)))
        source = LogSource(config_for("log.source=stdin"))
        try:
            events = collect(source, lambda ev: len(ev) >= 1)
        finally:
            source.close()
    assert [e.source_ip for e in events] == ["192.0.2.10"]


# ------------------------------------------------------------------ a machine without logread

def test_without_logread_the_roots_messages_file_is_read_and_said(tmp_path, caplog):
    (tmp_path / "var" / "log").mkdir(parents=True)
    messages = tmp_path / "var" / "log" / "messages"
    messages.write_text(bad_password("203.0.113.7", 40000) * 3)
    config = config_for("root=%s" % tmp_path, "log.command=no-such-logread-here -f")
    with caplog.at_level("WARNING", logger="routerwatch"):
        source = LogSource(config, once=True)
    events = []
    while source.unfinished:
        events.extend(source.drain(NOW, 5000))
    source.close()
    assert [e.source_ip for e in events] == ["203.0.113.7"] * 3
    assert [r.getMessage() for r in caplog.records] == [
        "no no-such-logread-here here (not OpenWrt?): reading login events from %s instead"
        % messages]


def test_without_logread_and_without_a_log_nothing_is_read_and_said(tmp_path, caplog):
    config = config_for("root=%s" % tmp_path, "log.command=no-such-logread-here -f")
    with caplog.at_level("WARNING", logger="routerwatch"):
        source = LogSource(config)          # a running agent: no thread, no restarts
    assert source.drain(NOW, 5000) == [] and source.restarts == 0
    source.close()
    assert len(caplog.records) == 1
    assert "no login events are read; --log-file FILE names a log" in caplog.records[0].getMessage()


def test_a_log_source_chosen_explicitly_has_no_fallback(tmp_path, caplog):
    path = tmp_path / "auth.log"
    path.write_text(bad_password("198.51.100.2", 1))
    (tmp_path / "var" / "log").mkdir(parents=True)
    (tmp_path / "var" / "log" / "messages").write_text(bad_password("203.0.113.7", 2))
    config = config_for("root=%s" % tmp_path, "log.source=file", "log.path=%s" % path)
    with caplog.at_level("WARNING", logger="routerwatch"):
        source = LogSource(config, once=True)
    events = []
    while source.unfinished:
        events.extend(source.drain(NOW, 5000))
    assert [e.source_ip for e in events] == ["198.51.100.2"] and not caplog.records


def test_a_missing_log_file_is_said_at_once_and_again_after_a_while(tmp_path, caplog,
                                                                      monkeypatch):
    from routerwatch.sources import logread
    monkeypatch.setattr(logread, "MISSING_LOG_REWARN_SECONDS", 0.6)
    path = tmp_path / "messages"
    with caplog.at_level("INFO", logger="routerwatch"):
        source = LogSource(config_for("log.source=file", "log.path=%s" % path))
        try:
            deadline = time.monotonic() + 20
            while len(caplog.records) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)      # many polls later: still only the two warnings
            said = [r.getMessage() for r in caplog.records]
            assert said[0] == ("log file %s: No such file or directory; no login events until "
                               "it appears" % path)
            assert said[1].startswith("log file %s still missing after " % path)
            assert len(said) == 2
            path.write_text(bad_password("203.0.113.9", 5))
            events = collect(source, lambda ev: len(ev) >= 1)
        finally:
            source.close()
    assert [e.source_ip for e in events] == ["203.0.113.9"]
    assert caplog.records[2].getMessage() == "log file %s appeared; following it" % path


# ------------------------------------------------------------------ health (Home Assistant shows it)

def test_health_names_a_quiet_a_dead_and_a_missing_log(tmp_path, monkeypatch):
    path = tmp_path / "messages"
    path.write_text("")
    source = LogSource(config_for("log.source=file", "log.path=%s" % path))
    try:
        assert source.health_problem(60) == ""
        source.last_line_at -= 61
        assert source.health_problem(60) == "no log line for 61 s"
        with path.open("a") as handle:
            handle.write(bad_password("192.0.2.11", 11))
        collect(source, lambda ev: len(ev) >= 1)
        assert source.health_problem(60) == ""
    finally:
        source.close()
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    with open(read_fd, "rb", buffering=0) as fake_stdin:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(fake_stdin)))
        source = LogSource(config_for("log.source=stdin"))
        source._thread.join(5)
        assert source.health_problem(60) == "the log stream ended"
        source.close()
    config = config_for("root=%s" % tmp_path, "log.command=no-such-logread-here -f")
    source = LogSource(config)
    assert source.health_problem(60).startswith("no log is followed")
    source.close()
