"""A login line is read the same whichever way it goes: parse_usual (logread's usual shape, string
operations and caches) gives either nothing or exactly what parse_general (the syslog header
regexes, then the dropbear or LuCI message parser) gives, for lines built from real formats with
hostile fields and for arbitrary text."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routerwatch.parsers.login_line import parse, parse_general, parse_usual

STAMPS = ["Tue Nov 25 04:11:31 2025", "Sat Feb 29 23:59:60 2024", "Mon Jan  5 00:00:00 2026",
          "Tue Nov 25 4:11:31 2025", "tue Nov 25 04:11:31 2025", "Tue Foo 25 04:11:31 2025",
          "Tue Nov 32 04:11:31 2025", "Tue Nov 25 24:11:31 2025", "Tue Nov 25 04:11:31 25"]
MIDDLES = ["authpriv.warn", "authpriv.info", "daemon.err", "<unknown>.<unknown>", "<13>", "",
           "[1764043891.123] authpriv.warn", "AUTHPRIV.warn", "authpriv.", "a.b c.d"]
TAGS = ["dropbear[1804]", "dropbear", "dropbear[]", "dropbear[12345678901]", "dropbear[1x]",
        "dropbear[١٢]", "uhttpd[2]", "uhttpd", "luci", "sshd[3]", "dropbear[1] x", "drop bear[1]"]
USERS = st.one_of(st.sampled_from(["root", "admin", "", "' from 192.0.2.9:22", "a' from <x>: ",
                                   "x\\y", "\udcff", "naïve", "a\x00b", "r" * 70]),
                  st.text(max_size=20))
ADDRS = st.one_of(st.sampled_from(["203.0.113.182:42450", "2001:db8::5:40022",
                                   "[2001:db8::1]:543", "[2001:db8::1]:", "::ffff:198.51.100.2:1",
                                   "999.1.1.1:22", "192.0.2.1", "192.0.2.1:99999", "?",
                                   "fe80::1%br-lan:22", "203.0.113.9"]),
                  st.text(alphabet="0123456789abcdef:.[]%", max_size=24))
MESSAGES = st.one_of(
    st.builds(lambda u, a: "Bad password attempt for '%s' from %s" % (u, a), USERS, ADDRS),
    st.builds(lambda a: "Child connection from %s" % a, ADDRS),
    st.builds(lambda u, a, n: "Exit before auth from <%s>: (user '%s', %s fails): Exited normally"
              % (a, u, n), ADDRS, USERS, st.sampled_from(["3", "10", "99999999999", "x"])),
    st.builds(lambda a: "Login attempt for nonexistent user from %s" % a, ADDRS),
    st.just("Login attempt for nonexistent user"),
    st.builds(lambda u, a: "Login attempt for nonexistent user '%s' from %s" % (u, a), USERS,
              ADDRS),
    st.builds(lambda u, a: "Pubkey auth succeeded for '%s' with ssh-ed25519 key SHA256:abc from %s"
              % (u, a), USERS, ADDRS),
    st.builds(lambda u, a: "Password auth succeeded for '%s' from %s" % (u, a), USERS, ADDRS),
    st.builds(lambda a: "Exit (root) from <%s>: Disconnect received" % a, ADDRS),
    st.builds(lambda p, u, a: "%sluci: failed login on /cgi-bin/luci for %s from %s" % (p, u, a),
              st.sampled_from(["", "[info] ", "[warn] "]), USERS, ADDRS),
    st.builds(lambda u, a: "luci: accepted login on / for %s from %s" % (u, a), USERS, ADDRS),
    st.builds(lambda j, m: j + m, st.sampled_from(["[825] Jul 10 23:53:52 ", "[x] "]),
              st.just("Bad password attempt for 'root' from 192.0.2.1:2")),
    st.text(max_size=60),
)


def _agree(line):
    usual = parse_usual(line)
    general = parse_general(line, 2025, 11)
    if usual is not None:
        assert usual == general, line
        assert type(usual[3]) is type(general[3])
    assert parse(line, 2025, 11) == general


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(STAMPS), st.sampled_from(MIDDLES), st.sampled_from(TAGS), MESSAGES,
       st.sampled_from([" ", "  ", ""]), st.sampled_from([": ", ":", ": : "]))
def test_the_usual_shape_reads_as_the_general_parser_does(stamp, middle, tag, message, gap,
                                                          colon):
    head = stamp + gap + (middle + " " if middle else "") + tag
    _agree(head + colon + message)


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=160))
def test_arbitrary_text_after_a_real_stamp_reads_the_same(text):
    _agree("Tue Nov 25 04:11:31 2025 " + text)
    _agree("Tue Nov 25 04:11:31 2025 authpriv.warn dropbear[7]: " + text)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_lines_read_the_same(line):
    _agree(line)


@pytest.mark.parametrize("line", [
    "Tue Nov 25 04:11:31 2025 authpriv.warn dropbear[1804]: Bad password attempt for 'root' "
    "from 203.0.113.182:42450",
    "Tue Nov 25 04:11:31 2025 authpriv.info dropbear[1804]: Child connection from "
    "203.0.113.182:42450",
    "Tue Nov 25 04:11:31 2025 daemon.err uhttpd[2]: luci: failed login on / for root from "
    "203.0.113.9",
])
def test_the_commonest_lines_take_the_usual_way(line):
    """The usual shape is what a router under attack writes: if these stopped taking the quick
    way, check-log would be as slow as before without any test failing."""
    assert parse_usual(line) is not None
    _agree(line)
