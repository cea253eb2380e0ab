"""Scenario 2: a password spray, low and slow: many user names from many WAN addresses.

Given the router's SSH on its WAN address, when twelve WAN addresses each try two different user
names with one common password (far below the brute-force threshold per address), then the
collector stores login.spray, and no login.bruteforce names any of those addresses.
"""
import time

from router_harness import netns

SOURCES = netns.WAN_ATTACKERS[10:22]
USERS = ["admin", "user", "support", "ubnt", "guest", "test", "operator", "manager",
         "service", "oracle", "pi", "ftp", "backup", "monitor", "tech", "super",
         "sysadmin", "default", "info", "web", "mail", "www", "postgres", "git"]


def test_spray_from_many_addresses_is_reported(bench):
    started = time.time()
    for i, source in enumerate(SOURCES):
        done = bench.hydra(USERS[2 * i:2 * i + 2], ["Winter2024!"], source=source, tasks=2)
        assert "0 valid password" in done.stdout, done.stdout + done.stderr
    anomaly = bench.wait_anomaly("login.spray", since=started, timeout=120)
    ev = anomaly.evidence
    assert ev["distinct_sources"] >= 10 or ev["distinct_users"] >= 6
    assert set(ev["sources"]) & set(SOURCES)
    assert set(ev["users"]) & set(USERS)
    bench.record("spray", "login.spray", started, anomaly,
                 distinct_sources=ev["distinct_sources"], distinct_users=ev["distinct_users"])
    # two attempts per address is nobody's brute force
    time.sleep(4)
    loud = [a for a in bench.collector.anomalies(kind="login.bruteforce", since=started)
            if a.evidence.get("source_ip") in SOURCES]
    assert loud == [], [a.summary for a in loud]
