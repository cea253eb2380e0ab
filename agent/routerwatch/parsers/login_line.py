"""One whole log line about a login -> (time, pid, DropbearRecord | LuciRecord).

parse() reads any syslog shape the way the pieces do one after the other: parsers/syslog.py
splits the line, then dropbear.py or luci.py read the message (dropbear's for the tag
"dropbear", LuCI's for any other tag). Under attack every second line is a login line, so the
usual shape, logread's "<stamp> <fac.prio> dropbear[PID]: <message>" (or
"uhttpd[PID]: luci: ..."), is first read the quick way (parse_usual): the head from
syslog.split_logread's caches (stamps, "fac.prio tag[pid]"), the message by the same message
parsers, whose dropbear one caches repeated messages. A line the quick way does not read goes
the general way; one it reads, the general way reads the same
(tests/agent/parsers/test_login_line.py checks this on arbitrary lines).
"""
from . import dropbear, luci
from .syslog import parse_line, split_logread

DROPBEAR = "dropbear"
LUCI = "luci"

def parse_usual(line):
    fields = split_logread(line)
    if fields is None:
        return None
    when, tag, pid, message = fields
    if tag == "dropbear":
        record = dropbear.parse_message(message)
        service = DROPBEAR
    else:
        record = luci.parse_message(message)
        service = LUCI
    if record is None:
        return None
    return when, pid, service, record


def parse_general(line, reference_year=1970, reference_month=12, cut=False):
    """(time, pid, service, record) of a login line in any syslog shape, or None. cut: the end of
    the line may be lost (a line at the length cap): then a message whose end does not parse is
    still read for what its beginning says (dropbear/luci parse_cut_message)."""
    fields = parse_line(line, reference_year, reference_month)
    if fields is None:
        return None
    message = fields.message
    if fields.tag == "dropbear":
        service, module = DROPBEAR, dropbear
    else:
        service, module = LUCI, luci
    record = module.parse_message(message)
    if record is None and cut:
        record = module.parse_cut_message(message)
    if record is None:
        return None
    return fields.time, fields.pid, service, record


def parse(line, reference_year=1970, reference_month=12, cut=False):
    """(time, pid, service, record) of one login line (without its newline), or None. A cut
    line is read whole first too: a message that parses needs no guess about its lost end."""
    fields = parse_usual(line)
    if fields is not None:
        return fields
    return parse_general(line, reference_year, reference_month, cut)
