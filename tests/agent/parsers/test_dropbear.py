"""Given a dropbear message (the text after "dropbear[PID]: "), the parser names what happened,
to whom and from where. Each line below is a format string of the dropbear version named beside
it (mkj/dropbear src/svr-*.c, see the formats reference 1.1) filled in with test values."""
import pytest

from routerwatch.parsers.dropbear import (CONNECTION, EXIT_BEFORE_AUTH, FAILURE, SESSION_END,
                                          SUCCESS, parse_message)

KEY = "SHA256:F0uwIzlhno8yKkDmOHl+Y52pLytTJe2kdMEdP1P9B5k"

# (versions the line was matched against, message, (kind, method, user, ip, port, fails))
CASES = [
    ("2020.79-2026.94", "Child connection from 192.0.2.1:33070",
     (CONNECTION, "", None, "192.0.2.1", 33070, None)),
    ("2026.94", "Child connection from [2001:db8::1]:54321",
     (CONNECTION, "", None, "2001:db8::1", 54321, None)),
    ("2022.83 captured", "Bad password attempt for 'tuser' from 127.0.0.1:33070",
     (FAILURE, "password", "tuser", "127.0.0.1", 33070, None)),
    ("2022.83 captured", "Bad password attempt for 'tuser' from ::1:45012",
     (FAILURE, "password", "tuser", "::1", 45012, None)),
    ("<=2026.93", "Bad password attempt for 'root' from 2001:db8::5:40022",
     (FAILURE, "password", "root", "2001:db8::5", 40022, None)),
    ("2026.94 (port cut)", "Bad password attempt for 'root' from [2001:db8::1]:543",
     (FAILURE, "password", "root", "2001:db8::1", None, None)),
    ("2026.94 (port cut)", "Bad password attempt for 'root' from [2001:db8::1]:",
     (FAILURE, "password", "root", "2001:db8::1", None, None)),
    ("0.5x (fail2ban sample)", "bad password attempt for 'root' from 198.51.100.87:5543",
     (FAILURE, "password", "root", "198.51.100.87", 5543, None)),
    ("2020.79+", "Too-long password attempt for 'root' from 192.0.2.1:1",
     (FAILURE, "password", "root", "192.0.2.1", 1, None)),
    ("PAM builds", "Bad PAM password attempt for 'root' from 192.0.2.1:2",
     (FAILURE, "password", "root", "192.0.2.1", 2, None)),
    ("2022.83 captured", "Password auth succeeded for 'tuser' from 127.0.0.1:33098",
     (SUCCESS, "password", "tuser", "127.0.0.1", 33098, None)),
    ("2024.84+ (-t 2FA)",
     "Password auth succeeded for 'root' from 192.0.2.1:3, extra auth required",
     (SUCCESS, "password_partial", "root", "192.0.2.1", 3, None)),
    ("2022.83 captured", "Pubkey auth succeeded for 'tuser' with ssh-ed25519 key %s from "
                         "127.0.0.1:53166" % KEY,
     (SUCCESS, "pubkey", "tuser", "127.0.0.1", 53166, None)),
    ("2020.79+", "Pubkey auth bad signature for 'root' with key %s from 192.0.2.1:4" % KEY,
     (FAILURE, "pubkey", "root", "192.0.2.1", 4, None)),
    ("-B", "Auth succeeded with blank password for 'root' from 192.0.2.1:5",
     (SUCCESS, "blank_password", "root", "192.0.2.1", 5, None)),
    ("2020.79-2024.85 (no address)", "Login attempt for nonexistent user",
     (FAILURE, "unknown_user", None, None, None, None)),
    ("2024.86+", "Login attempt for nonexistent user from 192.0.2.1:6",
     (FAILURE, "unknown_user", None, "192.0.2.1", 6, None)),
    ("old (fail2ban sample)", "login attempt for nonexistent user from ::ffff:198.51.100.215:60495",
     (FAILURE, "unknown_user", None, "198.51.100.215", 60495, None)),
    ("non-root server", "Login attempt with wrong user nobody from 192.0.2.1:7",
     (FAILURE, "wrong_user", "nobody", "192.0.2.1", 7, None)),
    ("-w", "root login rejected", (FAILURE, "root_rejected", None, None, None, None)),
    ("all", "User 'daemon' has invalid shell, rejected",
     (FAILURE, "invalid_shell", "daemon", None, None, None)),
    ("all", "User account 'ftp' is locked", (FAILURE, "locked", "ftp", None, None, None)),
    ("all", "User 'guest' has blank password, rejected",
     (FAILURE, "blank_password", "guest", None, None, None)),
    ("-G", "Logins are restricted to the group admin but user 'bob' is not a member",
     (FAILURE, "group_restricted", "bob", None, None, None)),
    ("2022.83 captured", "Exit before auth from <127.0.0.1:33070>: (user 'tuser', 1 fails): "
                         "Exited normally",
     (EXIT_BEFORE_AUTH, "exit", "tuser", "127.0.0.1", 33070, 1)),
    ("2022.83 captured", "Exit before auth from <127.0.0.1:40640>: (user 'tuser', 3 fails): "
                         "Max auth tries reached - user 'tuser'",
     (EXIT_BEFORE_AUTH, "max_tries", "tuser", "127.0.0.1", 40640, 3)),
    ("2022.83 captured", "Exit before auth from <127.0.0.1:53156>: Max auth tries reached - "
                         "user 'is invalid'",
     (EXIT_BEFORE_AUTH, "max_tries", None, "127.0.0.1", 53156, None)),
    ("2022.83 captured", "Exit before auth from <127.0.0.1:33084>: Exited normally",
     (EXIT_BEFORE_AUTH, "exit", None, "127.0.0.1", 33084, None)),
    ("2026.94 (port cut)", "Exit before auth from <[2001:db8::1]:>: (user 'root', 2 fails): "
                           "Max auth tries reached - user 'root'",
     (EXIT_BEFORE_AUTH, "max_tries", "root", "2001:db8::1", None, 2)),
    ("<2020.79 (fail2ban sample)", "Exit before auth (user 'root', 10 fails): Max auth tries "
                                   "reached - user 'root' from 1.2.3.4:60588",
     (EXIT_BEFORE_AUTH, "max_tries", "root", "1.2.3.4", 60588, 10)),
    ("2022.83 captured", "Exit (tuser) from <127.0.0.1:33098>: Disconnect received",
     (SESSION_END, "", "tuser", "127.0.0.1", 33098, None)),
    ("2022.83 captured", "Early exit: Terminated by signal",
     (SESSION_END, "", None, None, None, None)),
    # releases before 2020.79 and vendor builds (mkj/dropbear history of svr-auth.c,
    # svr-authpubkey.c, svr-session.c; the fixture dropbear-formats-by-release.log has them all)
    ("vendor builds <2020.79", "Login attempt for nonexistent user 'admin' from "
                               "198.51.100.5:5022",
     (FAILURE, "unknown_user", "admin", "198.51.100.5", 5022, None)),
    ("vendor builds <2020.79 (hostile name)", "Login attempt for nonexistent user 'x' from "
                                              "10.0.0.1:22' from 198.51.100.5:5022",
     (FAILURE, "unknown_user", "x' from 10.0.0.1:22", "198.51.100.5", 5022, None)),
    ("<=2019.78 (md5 fingerprint)", "Pubkey auth succeeded for 'root' with key md5 "
                                    "0f:1e:2d:3c:4b:5a:69:78:87:96:a5:b4:c3:d2:e1:f0 from "
                                    "192.168.1.20:50001",
     (SUCCESS, "pubkey", "root", "192.168.1.20", 50001, None)),
    ("0.4x-0.5x", "pubkey auth succeeded for 'root' with key md5 0f:1e:2d from 192.0.2.1:9",
     (SUCCESS, "pubkey", "root", "192.0.2.1", 9, None)),
    ("<=2019.78 (sha1 fingerprint)", "Pubkey auth bad signature for 'root' with key sha1!! "
                                     "0f:1e:2d:3c from 192.0.2.1:10",
     (FAILURE, "pubkey", "root", "192.0.2.1", 10, None)),
    ("0.4x-0.5x", "pubkey auth bad signature for 'root' with key md5 0f:1e from 192.0.2.1:11",
     (FAILURE, "pubkey", "root", "192.0.2.1", 11, None)),
    ("2024.84+ (-t 2FA)", "Pubkey auth succeeded for 'root' with ssh-ed25519 key %s from "
                          "192.0.2.1:12, extra auth required" % KEY,
     (SUCCESS, "pubkey_partial", "root", "192.0.2.1", 12, None)),
    ("<=2019.78 without OpenWrt's patch", "Exit before auth (user 'root', 5 fails): "
                                          "Exited normally",
     (EXIT_BEFORE_AUTH, "exit", "root", None, None, 5)),
    ("<=2019.78 without OpenWrt's patch", "Exit before auth: Max auth tries reached - user "
                                          "'is invalid' from 203.0.113.20:51000",
     (EXIT_BEFORE_AUTH, "max_tries", None, "203.0.113.20", 51000, None)),
    ("<=2019.78 without OpenWrt's patch", "Exit before auth: Disconnect received",
     (EXIT_BEFORE_AUTH, "exit", None, None, None, None)),
    ("0.4x-0.5x", "exit before auth (user 'root', 1 fails): Exited normally",
     (EXIT_BEFORE_AUTH, "exit", "root", None, None, 1)),
    ("journal (-E, fail2ban gh-3597)", "[825] Jul 10 23:53:52 Bad password attempt for 'root' "
                                       "from 1.2.3.4:52289",
     (FAILURE, "password", "root", "1.2.3.4", 52289, None)),
]


@pytest.mark.parametrize("versions, message, expected", CASES,
                         ids=["%s: %s" % (c[0], c[1][:40]) for c in CASES])
def test_every_known_format(versions, message, expected):
    record = parse_message(message)
    assert record is not None, "not recognised (%s)" % versions
    assert (record.kind, record.method, record.user, record.ip, record.port,
            record.fails) == expected


def test_2026_94_cut_ports_are_marked():
    assert parse_message("Bad password attempt for 'root' from [2001:db8::1]:543").port_cut
    assert not parse_message("Child connection from [2001:db8::1]:54321").port_cut
    assert not parse_message("Bad password attempt for 'root' from 192.0.2.1:5").port_cut


@pytest.mark.parametrize("message", [
    "Running in background",
    "Not backgrounding",
    "Failed listening on '22': Error listening: Address already in use",
    "User root executing login shell",
    "Bad password attempt for 'root' from 999.1.1.1:22",        # no such IPv4 address
    "Bad password attempt for 'root' from 192.0.2.1:70000",     # no such port
    "Bad password attempt for 'root' from 192.0.2.1",           # the port is missing
    "Bad password attempt for 'root' from 192.0.2.1:22 again",  # trailing text
    "Bad password attempt for root from 192.0.2.1:22",          # no quotes
    "Child connection from example.org:22",                     # names are never logged
    "Login attempt for nonexistent user 'admin' from example.org:22",
    "Pubkey auth succeeded for 'root' with key md5 0f 1e from 192.0.2.1:1",
    "Exit before auth from <a b>: Exited normally",
])
def test_other_or_malformed_messages_are_refused(message):
    assert parse_message(message) is None


def test_exit_count_is_bounded():
    record = parse_message("Exit before auth from <192.0.2.1:1>: (user 'root', 4000000000 fails)"
                           ": Exited normally")
    assert record.fails == 1000
