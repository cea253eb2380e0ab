"""dropbear's syslog messages (the text after "dropbear[PID]: ") -> DropbearRecord.

Format strings (formats reference 1.1, checked against mkj/dropbear src/svr-auth.c,
svr-authpasswd.c, svr-authpubkey.c, svr-authpam.c, svr-main.c, svr-session.c):

  Child connection from %s                                        all versions
  Bad password attempt for '%s' from %s                           all ("bad ..." before 0.5x)
  Too-long password attempt for '%s' from %s                      2020.79+
  Password auth succeeded for '%s' from %s[, extra auth required] all (2FA suffix 2024.84+)
  Pubkey auth succeeded for '%s' with %s key %s from %s           2020.79+ (key type added)
  Pubkey auth succeeded for '%s' with %s key %s from %s, extra auth required   2024.84+ (-t)
  Pubkey auth succeeded for '%s' with key %s from %s              <= 2019.78
  pubkey auth succeeded for '%s' with key %s from %s              0.4x-0.5x
  Pubkey auth bad signature for '%s' with key %s from %s          all ("pubkey ..." 0.4x-0.5x)
      the key is "SHA256:<base64>" since 2020.79, before that "md5 <hex:hex:..>" (or
      "sha1!! <hex:..>"): a fingerprint with a space in it
  Auth succeeded with blank password for '%s' from %s             -B
  Bad PAM password attempt for '%s' from %s / PAM auth succeeded for '%s' from %s   PAM builds
  Login attempt for nonexistent user from %s                      <= 2019.78 and 2024.86+
  Login attempt for nonexistent user                              2020.79 .. 2024.85 (no address)
  Login attempt for nonexistent user '%s' from %s                 vendor builds before 2020.79
      (seen in the field, e.g. `... user 'admin' from 198.51.100.5:5022`; upstream releases
      print no name here, so the name is client-chosen text: cleaned and clipped like any)
  Login attempt with wrong user %s from %s                        non-root server
  root login rejected | User '%s' has invalid shell, rejected | User account '%s' is locked |
  User '%s' has blank password, rejected |
  Logins are restricted to the group %s but user '%s' is not a member       (no address)
  Exit before auth from <%s>: (user '%s', %u fails): %s           2020.79+ (OpenWrt earlier)
  Exit before auth from <%s>: %s
  Exit before auth (user '%s', %u fails): Max auth tries reached - user '%s' from %s   older
  Exit before auth (user '%s', %u fails): %s / Exit before auth: %s   <= 2019.78 without
      OpenWrt's address patch (no address: the PID's connection line has it)
  Exit (%s) from <%s>: %s  /  Early exit[ from <%s>]: %s

The user names dropbear prints are the passwd entry's (pw_name), but a line can be forged with
logger(1), so every field is parsed as hostile: patterns anchored at both ends, addresses taken
from the end of the line (or from the fixed "from <" slot right after dropbear's own prefix, which
comes before any client-chosen text), numbers bounded.
"""
import re
from functools import lru_cache
from typing import NamedTuple, Optional

from .login_address import MAX_USER_CHARS, clean_user, split_host_port

CONNECTION = "connection"      # a TCP connection was accepted (address, no outcome yet)
FAILURE = "failure"            # one failed authentication attempt
SUCCESS = "success"
EXIT_BEFORE_AUTH = "exit_before_auth"   # the connection ended unauthenticated (summary line)
SESSION_END = "session_end"    # the connection ended after auth, or before the session began

# "(user 'x', N fails)" is dropbear's own counter, bounded by its max auth tries (-T, at most a
# few hundred in practice); a forged line must not stand for millions of failures
MAX_FAILS = 1000


class DropbearRecord(NamedTuple):
    kind: str
    method: str                 # password | pubkey | unknown_user | root_rejected | ... | ""
    user: Optional[str]         # cleaned (clipped, control characters escaped)
    ip: Optional[str]           # normalised; None when the line carries no address
    port: Optional[int]
    fails: Optional[int] = None     # EXIT_BEFORE_AUTH: dropbear's failure count, when printed
    port_cut: bool = False          # the 2026.94 bracketed form: the port lost its last digits


_ADDR = r"(?P<addr>[^\s<>]{1,80})"
_USER = r"'(?P<user>.*)'"

_JOURNAL_PREFIX = re.compile(r"\A\[\d{1,10}\] [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ")

# Every message pattern, in the order they are tried, becomes one alternative of MESSAGE_PATTERN:
# alternative N is the group "dN" and its fields are "dN_addr", "dN_user", ... (a regex may name
# a group once), so one match reads a message and the name of the group that closed last
# (m.lastgroup) says which pattern it was. The alternatives are tried in order and the first that
# reads the whole message wins, so the order below is the order of precedence.
_ALTERNATIVES = []            # regex text of each alternative
_MEANING = {}                 # "dN" -> (kind, method, addr, user, fails, reason group names)
_FIELDS = ("addr", "user", "fails", "reason")


def _add(pattern, kind, method):
    name = "d%d" % len(_ALTERNATIVES)
    named = re.sub(r"\(\?P<(%s)>" % "|".join(_FIELDS), r"(?P<%s_\1>" % name, pattern)
    # the name is an empty group at the end, not one around the pattern: an alternative that
    # starts with a literal is skipped at its first character (the regex engine checks that
    # before entering it), so the ~30 alternatives cost little more than the one that matches
    _ALTERNATIVES.append("%s(?P<%s>)" % (named, name))
    _MEANING[name] = (kind, method) + tuple(
        "%s_%s" % (name, field) if "(?P<%s>" % field in pattern else None for field in _FIELDS)


_add(r"Child connection from " + _ADDR, CONNECTION, "")
for _text in ("Bad password", "bad password"):
    _add(_text + r" attempt for " + _USER + r" from " + _ADDR, FAILURE, "password")
_add(r"Bad PAM password attempt for " + _USER + r" from " + _ADDR, FAILURE, "password")
_add(r"Too-long password attempt for " + _USER + r" from " + _ADDR, FAILURE, "password")
_add(r"Password auth succeeded for " + _USER + r" from " + _ADDR
     + r", extra auth required", SUCCESS, "password_partial")
_add(r"Password auth succeeded for " + _USER + r" from " + _ADDR, SUCCESS, "password")
_add(r"password auth succeeded for " + _USER + r" from " + _ADDR, SUCCESS, "password")
_add(r"PAM auth succeeded for " + _USER + r" from " + _ADDR, SUCCESS, "password")
_add(r"Auth succeeded with blank password for " + _USER + r" from " + _ADDR,
     SUCCESS, "blank_password")
# a key fingerprint: "SHA256:<base64>" (2020.79+), "md5 <hex:..>" or "sha1!! <hex:..>" before
_KEY = r"(?:[^\s']{1,128}|md5 [0-9a-f:]{1,64}|sha1!! [0-9a-f:]{1,80})"
_add(r"Pubkey auth succeeded for " + _USER + r" with [^\s']{1,64} key " + _KEY
     + r" from " + _ADDR + r", extra auth required", SUCCESS, "pubkey_partial")
_add(r"Pubkey auth succeeded for " + _USER + r" with (?:[^\s']{1,64} )?key " + _KEY
     + r" from " + _ADDR, SUCCESS, "pubkey")
_add(r"pubkey auth succeeded for " + _USER + r" with key " + _KEY + r" from " + _ADDR,
     SUCCESS, "pubkey")
for _text in ("Pubkey", "pubkey"):
    _add(_text + r" auth bad signature for " + _USER + r" with key " + _KEY + r" from "
         + _ADDR, FAILURE, "pubkey")
for _text in ("Login", "login"):
    _add(_text + r" attempt for nonexistent user(?: from " + _ADDR + r")?",
         FAILURE, "unknown_user")
    _add(_text + r" attempt for nonexistent user " + _USER + r" from " + _ADDR,
         FAILURE, "unknown_user")
_add(r"Login attempt with wrong user (?P<user>.*) from " + _ADDR, FAILURE, "wrong_user")
_add(r"root login rejected", FAILURE, "root_rejected")
_add(r"User " + _USER + r" has invalid shell, rejected", FAILURE, "invalid_shell")
_add(r"User " + _USER + r" has blank password, rejected", FAILURE, "blank_password")
_add(r"User account " + _USER + r" is locked", FAILURE, "locked")
_add(r"Logins are restricted to the group [^']* but user " + _USER
     + r" is not a member", FAILURE, "group_restricted")
# "(user '%s', %u fails)": the name is non-greedy here because the reason after it can hold
# client-chosen text ("Incompatible remote version '%s'") that might imitate ", 99 fails): "
for _text in ("Exit", "exit"):
    _add(_text + r" before auth from <" + _ADDR + r">: (?:\(user '(?P<user>.*?)', "
         r"(?P<fails>\d{1,10}) fails\): )?(?P<reason>.*)", EXIT_BEFORE_AUTH, "")
    _add(_text + r" before auth(?: \(user '(?P<user>.*?)', (?P<fails>\d{1,10}) fails\))?: "
         r"(?P<reason>Max auth tries reached - user '.*') from " + _ADDR, EXIT_BEFORE_AUTH, "")
    # without an address (tried after the two above): the PID's connection line names it
    _add(_text + r" before auth(?: \(user '(?P<user>.*?)', (?P<fails>\d{1,10}) fails\))?: "
         r"(?P<reason>.*)", EXIT_BEFORE_AUTH, "")
_add(r"Exit \((?P<user>[^)]*)\)(?: from <" + _ADDR + r">)?: .*", SESSION_END, "")
_add(r"exit after auth \((?P<user>[^)]*)\)(?: from <" + _ADDR + r">)?: .*",
     SESSION_END, "")
_add(r"Early exit(?: from <" + _ADDR + r">)?: .*", SESSION_END, "")

MAX_TRIES_PREFIX = "Max auth tries reached"

# One alternation of every pattern: embedded in a larger regex (parsers/login_line.py reads a
# whole logread line with it) or alone, as MESSAGE_RE; record_of() reads a match of either.
MESSAGE_PATTERN = "(?:" + "|".join(_ALTERNATIVES) + ")"
MESSAGE_RE = re.compile(MESSAGE_PATTERN + r"\Z", re.S)     # match() anchors the start


# The lines of one connection repeat word for word ("Bad password attempt for 'root' from
# 198.51.100.7:40112" up to -T times), and a record is immutable: a small cache spares the
# regex most of an attack. Bounded: 256 messages of at most a few hundred bytes.
@lru_cache(maxsize=256)
def parse_message(message):
    """DropbearRecord for one dropbear message, or None when it is not about logins."""
    m = MESSAGE_RE.match(message)
    if m is None:
        if message[:1] != "[":
            return None
        # dropbear -E under a journal: "[825] Jul 10 23:53:52 Bad password attempt ..."
        prefix = _JOURNAL_PREFIX.match(message)
        if prefix is None:
            return None
        m = MESSAGE_RE.match(message, prefix.end())
        if m is None:
            return None
    return record_of(m)


_new_record = tuple.__new__      # DropbearRecord without its Python-level __new__ (per line)


def record_of(m):
    """DropbearRecord of a match of MESSAGE_PATTERN (alone or inside a longer regex), or None
    when its address slot holds something that is no address."""
    kind, method, addr, user, fails, reason = _MEANING[m.lastgroup]
    ip = port = None
    port_cut = False
    if addr is not None:
        if user is not None:
            addr, user = m.group(addr, user)
        else:
            addr = m.group(addr)
    elif user is not None:
        user = m.group(user)
    if addr is not None:
        parsed = split_host_port(addr)
        if parsed is None:
            return None     # an address slot holding something that is no address: refuse
        ip, port, bracketed = parsed
        # only "Child connection" prints the bracketed form in full (formats reference 1.1)
        if bracketed and kind != CONNECTION:
            port_cut = True
            port = None
    if user is not None and len(user) > MAX_USER_CHARS:
        user = clean_user(user)
    if fails is not None:
        fails = m.group(fails)
        if fails is not None:
            fails = min(int(fails), MAX_FAILS)
    if kind == EXIT_BEFORE_AUTH:
        method = "max_tries" if m.group(reason).startswith(MAX_TRIES_PREFIX) else "exit"
    return _new_record(DropbearRecord, (kind, method, user, ip, port, fails, port_cut))


# What a line cut short (by logd's 1024-byte cap or the reader's) still tells: its beginning is
# dropbear's own text, so the kind of attempt is known even though the end (address) is lost.
_CUT_PREFIXES = (
    ("Bad password attempt for '", FAILURE, "password"),
    ("Too-long password attempt for '", FAILURE, "password"),
    ("Pubkey auth bad signature for '", FAILURE, "pubkey"),
    ("Login attempt with wrong user ", FAILURE, "wrong_user"),
    ("Password auth succeeded for '", SUCCESS, "password"),
    ("Pubkey auth succeeded for '", SUCCESS, "pubkey"),
    ("Login attempt for nonexistent user '", FAILURE, "unknown_user"),
)


def parse_cut_message(message):
    """DropbearRecord without address for a message whose end was cut off, or None."""
    for prefix, kind, method in _CUT_PREFIXES:
        if message.startswith(prefix):
            return DropbearRecord(kind, method, None, None, None)
    return None
