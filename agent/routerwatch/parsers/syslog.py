"""Split one syslog line into (time, facility, priority, tag, pid, message).

Shapes understood (see the formats reference, section 1.2):

  OpenWrt logread   Tue Nov 25 04:11:31 2025 authpriv.warn dropbear[11628]: msg
                    Tue Nov 25 04:11:31 2025 [1764043891.123] authpriv.warn dropbear[11628]: msg
                    Tue Nov 25 04:11:31 2025 kern.info kernel: [   12.345678] msg
  busybox syslogd   Nov 25 04:11:31 vm authpriv.warn dropbear[11628]: msg     (also "<N>", and -S
                    without host and fac.prio)
  rsyslog           Nov 25 04:11:31 host dropbear[123]: msg
                    2025-11-25T04:11:31.123456+01:00 host dropbear[123]: msg

Times: logread's ctime() and the yearless stamps are the router's local time, converted with
time.mktime (reads the TZ rules, never the clock). Yearless stamps take their year from a
reference (year, month) the caller passes in, so the parser never reads the clock itself.
"""
import re
import time
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple, Optional

MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

# The header after the stamp: a host (busybox, rsyslog; never in logread), an optional "fac.prio"
# or "<N>" (logread, busybox), then "tag[pid]: " or "tag: ". A host cannot contain '[' or ':', so
# "dropbear[1]: ..." (busybox -S, no host) is never taken for a host name.
_HOST = r"(?:(?P<host>[^\s\[\]:]{1,255}) )?"
_REST = (r"(?:(?P<fac>[a-z0-9]{1,16}|<unknown>)\.(?P<prio>[a-z]{1,8}|<unknown>) |<\d{1,3}> )?"
         r"(?:(?P<tag>[^\s\[\]:]{1,64})(?:\[(?P<pid>\d{1,10})\])?: )?"
         r"(?P<msg>.*)\Z")

_CLOCK = r"(?P<hh>\d\d):(?P<mm>\d\d):(?P<ss>\d\d)"
LOGREAD_RE = re.compile(
    r"\A[A-Z][a-z]{2} (?P<mon>[A-Z][a-z]{2}) (?P<day>[ \d]\d) " + _CLOCK
    + r" (?P<year>\d{4}) (?:\[(?P<epoch>\d{1,12})\.(?P<ms>\d{3})\] )?" + _REST, re.S)
YEARLESS_RE = re.compile(
    r"\A(?P<mon>[A-Z][a-z]{2}) (?P<day>[ \d]\d) " + _CLOCK + " " + _HOST + _REST, re.S)
RFC3339_RE = re.compile(
    r"\A(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) "
    + _HOST + _REST, re.S)


# The common case, logread with a tag: the same grammar as LOGREAD_RE with the tag required, so a
# line costs one match and one groups() call. A line it does not match goes the general way; one
# it matches, LOGREAD_RE would read the same. LOGREAD_HEAD, everything before the tag, is also the
# start of parsers/login_line.py's regex, which reads a login line in one match.
LOGREAD_HEAD = (
    r"\A(?P<stamp>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}) "
    r"(?:\[(?P<epoch>\d{1,12})\.(?P<ms>\d{3})\] )?"
    r"(?:(?P<fac>[a-z0-9]{1,16}|<unknown>)\.(?P<prio>[a-z]{1,8}|<unknown>) |<\d{1,3}> )?")
LOGREAD_FAST_RE = re.compile(
    LOGREAD_HEAD + r"([^\s\[\]:]{1,64})(?:\[(\d{1,10})\])?: (.*)\Z", re.S)
_STAMPS = {}                  # "Tue Nov 25 04:11:31 2025" -> epoch: lines of one second share it
MAX_STAMPS = 256


def logread_time(stamp, epoch, ms):
    """Epoch of LOGREAD_FAST_RE's time groups: the [epoch.ms] logd adds (-t), else the stamp."""
    if epoch:
        return int(epoch) + int(ms) / 1000.0
    return _logread_stamp(stamp)


def _logread_stamp(stamp):
    when = _STAMPS.get(stamp)
    if when is None:
        when = _local_time(int(stamp[20:24]), stamp[4:7], stamp[8:10], stamp[11:13],
                           stamp[14:16], stamp[17:19])
        if len(_STAMPS) >= MAX_STAMPS:
            _STAMPS.clear()
        _STAMPS[stamp] = when
    return when


_STAMP_RE = re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\Z")


_MIDDLES = {}                 # "authpriv.warn dropbear[11628]" -> ("dropbear", 11628), or False
MAX_MIDDLES = 256


def split_logread(line):
    """(time, tag, pid, message) of a login line in logread's usual shape
    ("Tue Nov 25 04:11:31 2025 authpriv.warn dropbear[11628]: ..."), read with string
    operations and two caches instead of a regex; None when the line is in any other shape (the
    caller then asks parse_line, which reads it the same way when it is this shape). Under
    attack every second line is a login line: the lines of one second share their stamp, and
    those of one connection their "fac.prio tag[pid]", so both are mostly one dict lookup."""
    end = line.find(": ", 25)
    if end < 0:
        return None
    stamp = line[:24]
    when = _STAMPS.get(stamp)     # holds only stamps _STAMP_RE or LOGREAD_FAST_RE accepted
    if when is None:
        if not _STAMP_RE.match(stamp):
            return None
        when = _logread_stamp(stamp)
        if when is None:
            return None
    if line[24:25] != " ":
        return None
    middle = line[25:end]
    known = _MIDDLES.get(middle)
    if known is None:
        known = _tag_and_pid(middle)
        if len(_MIDDLES) >= MAX_MIDDLES:
            _MIDDLES.clear()
        _MIDDLES[middle] = known
    if not known:
        return None
    return when, known[0], known[1], line[end + 2:]


# "authpriv.warn dropbear[11628]": fac.prio (as in LOGREAD_HEAD), a login tag, an optional PID
_MIDDLE_RE = re.compile(r"(?:[a-z0-9]{1,16}|<unknown>)\.(?:[a-z]{1,8}|<unknown>) "
                        r"(dropbear|uhttpd)(?:\[([0-9]{1,10})\])?\Z")


def _tag_and_pid(middle):
    """("dropbear", 11628) of "authpriv.warn dropbear[11628]" (a login tag, logread's shape),
    or False."""
    m = _MIDDLE_RE.match(middle)
    if m is None:
        return False
    tag, pid = m.groups()
    return tag, int(pid) if pid else None


class SyslogLine(NamedTuple):
    time: float                 # seconds since the epoch
    facility: Optional[str]     # "authpriv", "daemon" ... None when the format has none
    priority: Optional[str]     # "warn", "err", "info" ...
    tag: Optional[str]          # "dropbear", "uhttpd", "kernel" ...; None when absent
    pid: Optional[int]
    message: str


@lru_cache(maxsize=256)
def _local_minute(year, month, day, hour, minute):
    """Epoch of a local-time minute; cached because one minute of log shares it."""
    try:
        return time.mktime((year, month, day, hour, minute, 0, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


def _local_time(year, mon, day, hh, mm, ss):
    month = MONTHS.get(mon)
    if month is None:
        return None
    day, hour, minute, second = int(day), int(hh), int(mm), int(ss)
    if not (1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        return None
    base = _local_minute(year, month, day, hour, minute)
    return None if base is None else base + second


def infer_year(month_name, reference_year, reference_month):
    """Year of a yearless stamp read at (reference_year, reference_month): a month later than
    the reference belongs to the previous year (December lines read in January)."""
    month = MONTHS.get(month_name, 1)
    return reference_year - 1 if month > reference_month else reference_year


def _record(m, when):
    pid = m.group("pid")
    return SyslogLine(when, m.group("fac"), m.group("prio"), m.group("tag"),
                      int(pid) if pid else None, m.group("msg"))


def parse_line(line, reference_year=1970, reference_month=12):
    """SyslogLine for one line (without its newline), or None when it is in no known shape."""
    first = line[:1]
    if first.isdigit():
        m = RFC3339_RE.match(line)
        if m is None:
            return None
        try:
            when = datetime.fromisoformat(m.group("stamp").replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
        return _record(m, when)
    if line[3:4] == " " and line[7:8] == " " and line[4:5].isupper():
        # "Tue Nov 25 ..." (logread): the fifth character starts the month name
        m = LOGREAD_FAST_RE.match(line)
        if m is not None:
            stamp, epoch, ms, fac, prio, tag, pid, message = m.groups()
            when = logread_time(stamp, epoch, ms)
            if when is None:
                return None
            return SyslogLine(when, fac, prio, tag, int(pid) if pid else None, message)
        m = LOGREAD_RE.match(line)
        if m is None:
            return None
        if m.group("epoch"):
            when = int(m.group("epoch")) + int(m.group("ms")) / 1000.0
        else:
            when = _local_time(int(m.group("year")), m.group("mon"), m.group("day"),
                               m.group("hh"), m.group("mm"), m.group("ss"))
            if when is None:
                return None
        return _record(m, when)
    m = YEARLESS_RE.match(line)
    if m is None:
        return None
    year = infer_year(m.group("mon"), reference_year, reference_month)
    when = _local_time(year, m.group("mon"), m.group("day"), m.group("hh"), m.group("mm"),
                       m.group("ss"))
    if when is None:
        return None
    return _record(m, when)
