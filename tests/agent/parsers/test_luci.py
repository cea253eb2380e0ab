"""Given LuCI's login lines (ucode dispatcher.uc of LuCI 22.03+ with "[info] ", the Lua
dispatcher of LuCI <= 21.02 without), the parser gives outcome, user and REMOTE_ADDR."""
import pytest

from routerwatch.parsers.luci import parse_message


@pytest.mark.parametrize("versions, message, expected", [
    ("ucode 22.03+", "[info] luci: failed login on / for root from 192.168.9.204",
     ("failure", "root", "192.168.9.204", "")),
    ("ucode 22.03+",
     "[info] luci: accepted login on /admin/status/overview for root from 192.0.2.1",
     ("success", "root", "192.0.2.1", "admin/status/overview")),
    ("Lua <= 21.02", "luci: failed login on / for admin from 192.0.2.2",
     ("failure", "admin", "192.0.2.2", "")),
    ("Lua <= 21.02", "luci: accepted login on /admin for root from 192.0.2.3",
     ("success", "root", "192.0.2.3", "admin")),
    ("IPv6 REMOTE_ADDR, raw", "[info] luci: failed login on / for root from 2001:db8::5",
     ("failure", "root", "2001:db8::5", "")),
    ("IPv4-mapped", "[info] luci: failed login on / for root from ::ffff:192.0.2.4",
     ("failure", "root", "192.0.2.4", "")),
    ("no user, no address", "[info] luci: failed login on / for ? from ?",
     ("failure", None, None, "")),
    ("user with spaces", "[info] luci: failed login on / for my admin from 192.0.2.5",
     ("failure", "my admin", "192.0.2.5", "")),
    ("path with spaces", "[info] luci: failed login on /admin x for root from 192.0.2.6",
     ("failure", "root", "192.0.2.6", "admin x")),
])
def test_login_lines(versions, message, expected):
    record = parse_message(message)
    assert (record.outcome, record.user, record.ip, record.path) == expected


def test_the_address_is_the_last_word_whatever_the_user_name_says():
    record = parse_message("[info] luci: failed login on / for root from 203.0.113.9 "
                           "from 192.0.2.7")
    assert record.ip == "192.0.2.7"
    assert record.user == "root from 203.0.113.9"


@pytest.mark.parametrize("message", [
    "[info] luci: failed login on / for root from 999.1.1.1",
    "[info] luci: failed login on / for root from 192.0.2.1:80",
    "[info] luci: failed login on / for root",
    "[warn] luci: failed login on / for root from 192.0.2.1",
    "uhttpd: account 'x' does not exist",
    "luci: something else entirely",
])
def test_other_lines_are_refused(message):
    assert parse_message(message) is None
