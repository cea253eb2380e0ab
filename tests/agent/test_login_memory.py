"""Memory stays flat under a login flood: given 600,000 log lines (10,000 lines/s for a minute of
log time, random source addresses and user names) through the whole login path - syslog and
dropbear/LuCI parsing, per-PID correlation and the four login detectors - the memory held after
the second half is not larger than after the first half beyond a small bound: every table is
capped, so once the caps are reached nothing grows."""
import gc
import random
import time
import tracemalloc

import pytest

from routerwatch.detectors.login_bruteforce import Config as BruteforceConfig
from routerwatch.detectors.login_bruteforce import LoginBruteforce
from routerwatch.detectors.login_new_source import Config as NewSourceConfig
from routerwatch.detectors.login_new_source import LoginNewSource
from routerwatch.detectors.login_spray import Config as SprayConfig
from routerwatch.detectors.login_spray import LoginSpray
from routerwatch.detectors.login_success_after_failures import Config as SuccessConfig
from routerwatch.detectors.login_success_after_failures import LoginSuccessAfterFailures
from routerwatch.sources.logread import LoginLines

LINES = 600_000
PER_SECOND = 10_000
START = 1764043200           # Tue Nov 25 04:00:00 2025 UTC
GROWTH_BOUND = 256 * 1024    # bytes; an unbounded table would grow by tens of megabytes


def flood(first, count, rng):
    stamps = {}
    for i in range(first, first + count):
        second = i // PER_SECOND
        stamp = stamps.get(second)
        if stamp is None:
            stamp = stamps[second] = time.strftime(
                "%a %b %d %H:%M:%S %Y", time.localtime(START + second)).encode()
        if rng.random() < 0.2:
            ip = "2001:db8:%x:%x::%x" % (rng.getrandbits(16), rng.getrandbits(16),
                                         rng.getrandbits(16))
        else:
            ip = "%d.%d.%d.%d" % (rng.getrandbits(8), rng.getrandbits(8), rng.getrandbits(8),
                                  rng.getrandbits(8))
        user = "u%08x" % rng.getrandbits(32)
        pid = 1000 + i // 5
        port = 1024 + rng.getrandbits(15)
        kind = i % 10
        if kind == 0:
            msg = "authpriv.info dropbear[%d]: Child connection from %s:%d" % (pid, ip, port)
        elif kind in (1, 2):
            msg = "authpriv.warn dropbear[%d]: Bad password attempt for '%s' from %s:%d" % (
                pid, user, ip, port)
        elif kind == 3:
            msg = "authpriv.warn dropbear[%d]: Login attempt for nonexistent user" % pid
        elif kind == 4:
            msg = ("authpriv.info dropbear[%d]: Exit before auth from <%s:%d>: (user '%s', 3 "
                   "fails): Max auth tries reached - user '%s'" % (pid, ip, port, user, user))
        elif kind == 5:
            msg = "daemon.err uhttpd[1861]: [info] luci: failed login on / for %s from %s" % (
                user, ip)
        elif kind == 6:
            msg = "authpriv.notice dropbear[%d]: Password auth succeeded for 'root' from %s:%d" % (
                pid, ip, port)
        elif kind == 7:
            msg = "daemon.err uhttpd[1861]: [info] luci: accepted login on / for root from %s" % ip
        else:
            msg = "daemon.info procd: Instance %d is running" % i
        yield stamp + b" " + msg.encode()


def run(lines, detectors, first, count, rng):
    reference = (2025, 11)
    events = 0
    for raw in flood(first, count, rng):
        for event in lines.feed(raw, reference):
            events += 1
            for detector in detectors:
                detector.observe(event)
        if first % PER_SECOND == 0:
            for detector in detectors:
                detector.tick(START + first // PER_SECOND)
        first += 1
    return events


@pytest.mark.slow
def test_a_minute_of_10k_lines_per_second_keeps_memory_flat():
    rng = random.Random(7)
    lines = LoginLines()
    detectors = [LoginBruteforce(BruteforceConfig()), LoginSpray(SprayConfig()),
                 LoginSuccessAfterFailures(SuccessConfig()), LoginNewSource(NewSourceConfig())]
    half = LINES // 2
    tracemalloc.start()
    try:
        first_events = run(lines, detectors, 0, half, rng)
        gc.collect()
        after_first, _ = tracemalloc.get_traced_memory()
        second_events = run(lines, detectors, half, half, rng)
        gc.collect()
        after_second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the flood really went through the whole path
    assert first_events > LINES // 4 and second_events > LINES // 4
    assert lines.recognised == LINES * 8 // 10      # kinds 0-7 of every ten lines
    assert detectors[0].drops()["login.bruteforce.sources"] > 0     # caps were reached
    print("\nlogin flood: traced %d bytes after the first half, %d after the second (%+d)"
          % (after_first, after_second, after_second - after_first))
    assert after_second - after_first < GROWTH_BOUND, (after_first, after_second)
