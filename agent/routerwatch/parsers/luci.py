"""LuCI's login lines -> LuciRecord.

openwrt/luci modules/luci-base/ucode/dispatcher.uc session_setup() (LuCI 22.03+):
    syslog("info", "luci: accepted login on /%s for %s from %s")    -> stderr "[info] luci: ..."
    syslog("info", "luci: failed login on /%s for %s from %s")
The Lua dispatcher (LuCI <= 21.02, luci-lua-runtime) writes the same text to stderr without the
"[info] " prefix. procd logs uhttpd's stderr as daemon.err "uhttpd[PID]: ...". The path is the
request path, the user is the posted luci_username (or "?"), the address is REMOTE_ADDR (or "?"):
raw, no port, IPv6 without brackets. rpcd's session.login (JSON-RPC /ubus) logs nothing.

The user name is client-chosen and unquoted, so the address is the last word of the line and the
user is everything between the first " for " and the last " from ".
"""
import re
from typing import NamedTuple, Optional

from .login_address import clean_user, normalise_ip

# Group names start with "luci_" so that parsers/login_line.py can embed the pattern in a regex
# of the whole line; record_of() reads a match of either.
MESSAGE_PATTERN = (
    r"(?P<luci>(?:\[info\] )?luci: (?P<luci_outcome>accepted|failed) login on /(?P<luci_path>.*?)"
    r" for (?P<luci_user>.*) from (?P<luci_addr>[^\s]{1,80}))")
MESSAGE_RE = re.compile(MESSAGE_PATTERN + r"\Z", re.S)     # match() anchors the start


class LuciRecord(NamedTuple):
    outcome: str                # "success" | "failure"
    user: Optional[str]         # None for "?"
    ip: Optional[str]           # None for "?"
    path: str


def parse_message(message):
    """LuciRecord for one log message (text after "tag[pid]: "), or None."""
    if "luci: " not in message[:14]:
        return None
    m = MESSAGE_RE.match(message)
    if m is None:
        return None
    return record_of(m)


def record_of(m):
    """LuciRecord of a match of MESSAGE_PATTERN (alone or inside a longer regex), or None when
    the address slot holds something that is no address."""
    addr = m.group("luci_addr")
    if addr == "?":
        ip = None
    else:
        ip = normalise_ip(addr)
        if ip is None:
            return None     # something in the address slot that is no address: refuse the line
    user = m.group("luci_user")
    outcome = "success" if m.group("luci_outcome") == "accepted" else "failure"
    return LuciRecord(outcome, None if user == "?" else clean_user(user), ip,
                      m.group("luci_path")[:128])


_CUT_RE = re.compile(r"\A(?:\[info\] )?luci: (?P<outcome>accepted|failed) login on /")


def parse_cut_message(message):
    """LuciRecord without user and address for a message whose end was cut off, or None: a
    client must not hide its failures behind user names longer than the log keeps."""
    m = _CUT_RE.match(message)
    if m is None:
        return None
    return LuciRecord("success" if m.group("outcome") == "accepted" else "failure", None, None, "")
