#!/usr/bin/env python3
"""Write a small login attack into a log file the way an OpenWrt router's `logread -f -F` would:
a brute force on dropbear (and LuCI) from one address, a password spray from many addresses, and
a brute force that finally guesses the root password. Benign lines are mixed in.

    python3 demo/attack_replay.py --out /tmp/demo/messages [--duration 20]

Lines are stamped when they are written (logd stamps messages on arrival), spread over
--duration seconds (0: all at once). Addresses are from the documentation ranges only.
"""
import argparse
import os
import sys
import time

BRUTE_SOURCE = "203.0.113.7"          # tries root many times: login.bruteforce
SPRAY_SOURCES = ["198.51.100.%d" % n for n in range(10, 22)]   # once each: login.spray
WINNER_SOURCE = "192.0.2.50"          # fails six times, then gets in: success_after_failures
SPRAY_USERS = ("admin", "root", "ubnt", "support", "user", "guest", "operator", "telecomadmin",
               "supervisor", "default", "service", "tech")

# what the agent should report for this replay with its default thresholds: (kind, source)
EXPECTED = (
    ("login.bruteforce", BRUTE_SOURCE),
    ("login.bruteforce", WINNER_SOURCE),    # six failures from outside: fail2ban's maxretry is 5
    ("login.spray", None),
    ("login.success_after_failures", WINNER_SOURCE),
    ("login.new_source", WINNER_SOURCE),    # info: the first login an agent ever sees
)


class Replay:
    def __init__(self):
        self.pid = 2100
        self.port = 40000
        self.steps = []            # (facility.priority, message) in order

    def _connection(self):
        self.pid += 1
        self.port += 7
        return self.pid, self.port

    def benign(self, text, where="daemon.info"):
        self.steps.append((where, text))

    def bad_password(self, user, source):
        pid, port = self._connection()
        self.steps += [
            ("authpriv.info", "dropbear[%d]: Child connection from %s:%d" % (pid, source, port)),
            ("authpriv.warn", "dropbear[%d]: Bad password attempt for '%s' from %s:%d"
             % (pid, user, source, port)),
            ("authpriv.info", "dropbear[%d]: Exit before auth from <%s:%d>: (user '%s', 1 fails)"
             ": Exited normally" % (pid, source, port, user)),
        ]

    def nonexistent_user(self, source):
        pid, port = self._connection()
        self.steps += [
            ("authpriv.info", "dropbear[%d]: Child connection from %s:%d" % (pid, source, port)),
            ("authpriv.warn", "dropbear[%d]: Login attempt for nonexistent user from %s:%d"
             % (pid, source, port)),
            ("authpriv.info", "dropbear[%d]: Exit before auth from <%s:%d>: Exited normally"
             % (pid, source, port)),
        ]

    def luci_failure(self, user, source):
        self.steps.append(("daemon.err", "uhttpd[1711]: [info] luci: failed login on / for %s "
                           "from %s" % (user, source)))

    def success(self, user, source):
        pid, port = self._connection()
        self.steps += [
            ("authpriv.info", "dropbear[%d]: Child connection from %s:%d" % (pid, source, port)),
            ("authpriv.notice", "dropbear[%d]: Password auth succeeded for '%s' from %s:%d"
             % (pid, user, source, port)),
        ]


def scenario():
    r = Replay()
    r.benign("dnsmasq-dhcp[1520]: DHCPACK(br-lan) 192.168.1.23 3c:22:fb:10:20:30 laptop")
    r.benign("kernel: [ 8123.456789] br-lan: port 2(lan2) entered forwarding state", "kern.info")
    for n in range(24):                                   # 1. brute force from one address
        if n % 8 == 7:
            r.luci_failure("root", BRUTE_SOURCE)
        else:
            r.bad_password("root", BRUTE_SOURCE)
    r.benign("dnsmasq[1520]: query[A] openwrt.org from 192.168.1.23")
    for source, user in zip(SPRAY_SOURCES, SPRAY_USERS):  # 2. spray: one try per address
        if user == "root":
            r.bad_password(user, source)
        else:
            r.nonexistent_user(source)
    r.benign("netifd: Network device 'wan' link is up", "daemon.notice")
    for _ in range(6):                                    # 3. ... until a password works
        r.bad_password("root", WINNER_SOURCE)
    r.success("root", WINNER_SOURCE)
    r.benign("dropbear[%d]: Exit (root) from <%s:%d>: Disconnect received"
             % (r.pid, WINNER_SOURCE, r.port), "authpriv.info")
    return r.steps


def logread_line(when, where, message):
    """`logread` output: ctime stamp (space-padded day), facility.priority, message."""
    return "%s %s %s\n" % (time.ctime(when), where, message)


def replay(path, duration, clock=time.time, sleep=time.sleep, stop=lambda: False):
    """Append the scenario to `path`, spread over `duration` seconds. Returns lines written."""
    steps = scenario()
    pause = duration / len(steps) if duration > 0 else 0.0
    written = 0
    with open(path, "a", encoding="utf-8") as handle:
        for where, message in steps:
            if stop():
                break
            handle.write(logread_line(clock(), where, message))
            handle.flush()
            written += 1
            if pause:
                sleep(pause)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="log file to append to (created if absent)")
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds to spread the attack over (default 20, 0 = at once)")
    args = parser.parse_args(argv)
    if not 0 <= args.duration <= 3600:
        parser.error("--duration must be 0-3600 seconds")
    try:
        written = replay(args.out, args.duration)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print("attack_replay: cannot write %s: %s" % (args.out, exc.strerror), file=sys.stderr)
        return 3
    print("attack_replay: wrote %d lines to %s" % (written, os.path.abspath(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
