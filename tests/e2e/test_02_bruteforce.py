"""Scenario 1: hydra brute-forces the router's dropbear from the WAN side.

Given the router's SSH open on its WAN address, when hydra tries 40 passwords for root from one
WAN address, then the collector stores login.bruteforce naming that address and user root; the
same over IPv6 (dropbear writes "address:port", and IPv6 addresses are full of colons).
The agent's memory and CPU are sampled while the attack runs.
"""
import threading
import time

import pytest

from router_harness import netns

pytestmark = pytest.mark.router_arches("x86_64", "mipsel")

ATTACKER = netns.WAN_ATTACKERS[0]
PASSWORDS = ["admin", "123456", "password", "root", "12345", "toor", "1234", "openwrt"] + [
    "guess%02d" % i for i in range(32)]


def test_hydra_bruteforce_is_reported(bench):
    results = {}
    started = time.time()
    attack = threading.Thread(target=lambda: results.update(
        done=bench.hydra(["root"], PASSWORDS, source=ATTACKER, tasks=4)))
    attack.start()
    time.sleep(3)
    bench.record_usage("under_attack", seconds=8)
    anomaly = bench.wait_anomaly("login.bruteforce", since=started,
                                 match=lambda a: a.evidence.get("source_ip") == ATTACKER,
                                 timeout=180, what="from %s" % ATTACKER)
    attack.join(300)
    done = results["done"]
    assert "0 valid password" in done.stdout, done.stdout + done.stderr
    assert anomaly.evidence["users"] == ["root"]
    assert anomaly.evidence["failures"] >= anomaly.evidence["threshold"]
    assert anomaly.severity in ("medium", "high")
    bench.record("bruteforce", "login.bruteforce", started, anomaly,
                 failures_in_first_report=anomaly.evidence["failures"])


def test_hydra_bruteforce_over_ipv6_is_reported(bench):
    attacker = netns.WAN_ATTACKERS6[0]
    started = time.time()
    done = bench.hydra(["root"], PASSWORDS[:20], source=attacker, tasks=4)
    assert "0 valid password" in done.stdout, done.stdout + done.stderr
    anomaly = bench.wait_anomaly("login.bruteforce", since=started,
                                 match=lambda a: a.evidence.get("source_ip") == attacker,
                                 timeout=180, what="from %s" % attacker)
    assert anomaly.evidence["users"] == ["root"]
    assert anomaly.evidence["source"].startswith("2001:db8:1:")     # grouped by /64
    bench.record("bruteforce_ipv6", "login.bruteforce", started, anomaly)
