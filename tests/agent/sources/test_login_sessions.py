"""Given the dropbear lines of one connection (one PID), the correlation names the address of
lines that carry none and counts every failure once."""
from routerwatch.parsers.dropbear import parse_message
from routerwatch.sources.login_sessions import LoginSessions


def run(lines, sessions=None):
    sessions = LoginSessions() if sessions is None else sessions
    events = []
    for t, (pid, message) in enumerate(lines):
        record = parse_message(message)
        assert record is not None, message
        events.extend(sessions.feed(float(t), pid, record))
    return events, sessions


def test_nonexistent_user_takes_the_address_of_its_connection():
    events, _ = run([(5, "Child connection from 203.0.113.7:40000"),
                     (5, "Login attempt for nonexistent user"),
                     (5, "Exit before auth from <203.0.113.7:40000>: Exited normally")])
    assert [(e.method, e.source_ip, e.source_port, e.attempts) for e in events] == [
        ("unknown_user", "203.0.113.7", 40000, 1)]


def test_without_the_connection_line_the_exit_line_names_the_address():
    events, _ = run([(6, "root login rejected"),
                     (6, "Exit before auth from <198.51.100.4:50000>: Exited normally")])
    assert [(e.method, e.source_ip, e.time) for e in events] == [
        ("root_rejected", "198.51.100.4", 0.0)]


def test_exit_count_adds_only_what_was_not_counted_line_by_line():
    events, _ = run([(7, "Child connection from 203.0.113.7:40001"),
                     (7, "Bad password attempt for 'root' from 203.0.113.7:40001"),
                     (7, "Bad password attempt for 'root' from 203.0.113.7:40001"),
                     (7, "Exit before auth from <203.0.113.7:40001>: (user 'root', 5 fails): "
                         "Max auth tries reached - user 'root'")])
    assert [(e.method, e.attempts) for e in events] == [
        ("password", 1), ("password", 1), ("max_tries", 3)]
    assert sum(e.attempts for e in events) == 5


def test_exit_count_equal_to_the_lines_seen_adds_nothing():
    events, _ = run([(8, "Bad password attempt for 'root' from 203.0.113.7:40002"),
                     (8, "Exit before auth from <203.0.113.7:40002>: (user 'root', 1 fails): "
                         "Exited normally")])
    assert sum(e.attempts for e in events) == 1


def test_max_tries_of_an_invalid_user_counts_once_per_connection():
    events, _ = run([(9, "Child connection from 203.0.113.7:40003"),
                     (9, "Login attempt for nonexistent user"),
                     (9, "Exit before auth from <203.0.113.7:40003>: Max auth tries reached - "
                         "user 'is invalid'"),
                     (10, "Child connection from 203.0.113.7:40004"),
                     (10, "Exit before auth from <203.0.113.7:40004>: Max auth tries reached - "
                          "user 'is invalid'")])
    assert [(e.pid, e.method, e.attempts) for e in events] == [
        (9, "unknown_user", 1), (10, "max_tries", 1)]


def test_a_cut_2026_94_port_is_taken_from_the_connection_line():
    events, _ = run([(11, "Child connection from [2001:db8::1]:54321"),
                     (11, "Bad password attempt for 'root' from [2001:db8::1]:543")])
    assert [(e.source_ip, e.source_port) for e in events] == [("2001:db8::1", 54321)]


def test_a_recycled_pid_starts_a_new_connection():
    events, _ = run([(12, "Child connection from 203.0.113.7:1111"),
                     (12, "Child connection from 198.51.100.9:2222"),
                     (12, "root login rejected")])
    assert [e.source_ip for e in events] == ["198.51.100.9"]


def test_waiting_lines_come_out_without_address_at_a_flush():
    events, sessions = run([(13, "Login attempt for nonexistent user")])
    assert events == []
    flushed = sessions.flush()
    assert [(e.method, e.source_ip) for e in flushed] == [("unknown_user", None)]


def test_tracked_connections_are_capped_and_evictions_counted():
    sessions = LoginSessions(cap=16)
    lines = [(pid, "Child connection from 192.0.2.1:%d" % pid) for pid in range(1000, 1100)]
    run(lines, sessions)
    assert len(sessions) == 16
    assert sessions.evicted == 84
