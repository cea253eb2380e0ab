"""Given a syslog line in one of the shapes a router or a log server writes, the header splits
into time, facility, priority, tag, pid and message; anything else is refused."""
import time

import pytest

from routerwatch.parsers.syslog import infer_year, parse_line


def local(year, month, day, hh, mm, ss):
    return time.mktime((year, month, day, hh, mm, ss, 0, 0, -1))


@pytest.mark.parametrize("line, fields", [
    # OpenWrt logread (ubox log/logread.c): ctime, fac.prio, tag[pid]
    ("Tue Nov 25 04:11:31 2025 authpriv.warn dropbear[11628]: Bad password attempt",
     ("authpriv", "warn", "dropbear", 11628, "Bad password attempt")),
    # the day of ctime() is space-padded
    ("Tue Nov  4 04:11:31 2025 daemon.err uhttpd[1861]: [info] luci: failed login",
     ("daemon", "err", "uhttpd", 1861, "[info] luci: failed login")),
    # kernel lines: " kernel:" after the priority, the kernel's own [uptime] stays in the text
    ("Tue Nov 25 04:11:31 2025 kern.info kernel: [   12.345678] br-lan: entered forwarding",
     ("kern", "info", "kernel", None, "[   12.345678] br-lan: entered forwarding")),
    # hostapd has no [pid]
    ("Tue Nov 25 04:11:31 2025 daemon.notice hostapd: wlan0: AP-DISABLED",
     ("daemon", "notice", "hostapd", None, "wlan0: AP-DISABLED")),
    # busybox syslogd: yearless stamp, host, fac.prio
    ("Nov 25 04:11:31 vm authpriv.warn dropbear[11628]: Bad password attempt",
     ("authpriv", "warn", "dropbear", 11628, "Bad password attempt")),
    # busybox syslogd -S: no host, no fac.prio
    ("Nov 25 04:11:31 dropbear[1252]: login attempt",
     (None, None, "dropbear", 1252, "login attempt")),
    # rsyslog traditional
    ("Nov 25 04:11:31 gw dropbear[123]: Child connection", (None, None, "dropbear", 123,
                                                           "Child connection")),
    # a message without a tag keeps its whole text
    ("Nov 25 04:11:24 vm syslog.info syslogd started: BusyBox v1.35.0",
     ("syslog", "info", None, None, "syslogd started: BusyBox v1.35.0")),
])
def test_header_fields(line, fields):
    record = parse_line(line, 2025, 11)
    assert (record.facility, record.priority, record.tag, record.pid, record.message) == fields


def test_logread_time_is_the_routers_local_time():
    record = parse_line("Tue Nov 25 04:11:31 2025 authpriv.warn dropbear[1]: x")
    assert record.time == local(2025, 11, 25, 4, 11, 31)


def test_logread_t_stamp_is_taken_as_the_time():
    record = parse_line("Tue Nov 25 04:11:31 2025 [1764043891.250] authpriv.warn dropbear[1]: x")
    assert record.time == 1764043891.25
    assert record.tag == "dropbear" and record.message == "x"


def test_rfc3339_stamp_with_offset():
    record = parse_line("2025-11-25T04:11:31.500000+01:00 gw dropbear[7]: Child connection")
    assert record.time == 1764040291.5
    assert (record.tag, record.pid) == ("dropbear", 7)


def test_yearless_stamp_takes_the_year_passed_in():
    record = parse_line("Nov 25 04:11:31 vm authpriv.warn dropbear[1]: x", 2031, 12)
    assert record.time == local(2031, 11, 25, 4, 11, 31)


def test_december_lines_read_in_january_belong_to_the_previous_year():
    assert infer_year("Dec", 2026, 1) == 2025
    assert infer_year("Jan", 2026, 1) == 2026
    record = parse_line("Dec 31 23:59:59 vm authpriv.warn dropbear[1]: x", 2026, 1)
    assert record.time == local(2025, 12, 31, 23, 59, 59)


@pytest.mark.parametrize("line", [
    "",
    "garbage",
    "Tue Nov 25 04:11:31 authpriv.warn dropbear[1]: no year",
    "Foo 25 04:11:31 vm authpriv.warn dropbear[1]: bad month",
    "Nov 25 25:11:31 vm authpriv.warn dropbear[1]: bad hour",
    "Nov 32 04:11:31 vm authpriv.warn dropbear[1]: bad day",
    "2025-13-45T04:11:31Z gw dropbear[1]: bad date",
])
def test_lines_in_no_known_shape_are_refused(line):
    assert parse_line(line, 2025, 11) is None
