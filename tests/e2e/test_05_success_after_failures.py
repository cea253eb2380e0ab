"""Scenario 3: failures, then a successful login with the right password.

Given the router's root password, when hydra from one WAN address tries eight wrong passwords
and then the right one (one task, in order), then hydra reports the valid password and the
collector stores login.success_after_failures (high) for that address and user root.
"""
import time

from router_harness import ROOT_PASSWORD, netns

ATTACKER = netns.WAN_ATTACKERS[30]
WRONG = ["admin", "password", "123456", "openwrt", "letmein", "qwerty", "root", "changeme"]


def test_success_after_failures_is_reported(bench):
    started = time.time()
    done = bench.hydra(["root"], WRONG + [ROOT_PASSWORD], source=ATTACKER, tasks=1,
                       extra=("-f",))
    assert "1 valid password found" in done.stdout, done.stdout + done.stderr
    anomaly = bench.wait_anomaly("login.success_after_failures", since=started,
                                 match=lambda a: a.evidence.get("source_ip") == ATTACKER,
                                 timeout=120, what="from %s" % ATTACKER)
    assert anomaly.severity == "high"
    assert anomaly.evidence["user"] == "root"
    assert anomaly.evidence["failures"] >= 5
    bench.record("success_after_failures", "login.success_after_failures", started, anomaly,
                 failures=anomaly.evidence["failures"])
