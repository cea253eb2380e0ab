"""Scenario 7, run first: normal life raises nothing above info.

Given a freshly booted router whose owner has set a root password and an admin key (the usual
first-boot overlay: /etc/shadow, dropbear host key, authorized_keys), when a LAN client browses
"internet" hosts through the router (forwarded, masqueraded traffic) and the admin logs in once
with the right key, then the collector holds no anomaly above `info`.
"""
import threading
import time

import pytest

from router_harness import netns

pytestmark = pytest.mark.router_arches("x86_64", "mipsel")


def browse(bench, seconds, results):
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        host = netns.INTERNET_HOSTS[i % 4]
        done = bench.lan(["curl", "-s", "-m", "20", "http://%s/index.html" % host], timeout=60)
        results.append(done.returncode == 0 and "hello from the internet" in done.stdout)
        i += 1
        time.sleep(0.3)


def test_normal_life_raises_nothing_above_info(bench):
    since = bench.agent_started_at
    results = []
    client = threading.Thread(target=browse, args=(bench, 40, results))
    client.start()
    time.sleep(5)
    login = bench.admin_ssh("cat /etc/openwrt_release")
    client.join()
    assert login.returncode == 0 and "DISTRIB_ID='OpenWrt'" in login.stdout, login.stderr
    assert len(results) >= 10 and sum(results) >= 0.9 * len(results), \
        "the LAN client could not browse through the router: %d of %d" % (sum(results),
                                                                         len(results))
    # the browsing really was forwarded and masqueraded by the router
    conntrack = bench.vm.out("cat /proc/net/nf_conntrack")
    assert "src=192.0.2.100" in conntrack and "dst=%s" % netns.ROUTER_WAN in conntrack
    # two more integrity scans and many connection reads after the traffic
    time.sleep(2 * 15 + 5)
    bench.check_alive()
    # after the first scans and the browsing: what the agent costs when nothing happens
    bench.record_usage("idle", seconds=15)
    row = bench.collector.device()
    assert row is not None and row.status == "online" and row.heartbeats >= 3
    stored = bench.collector.anomalies(since=since)
    loud = [(a.kind, a.severity, a.summary) for a in stored if a.severity != "info"]
    assert loud == [], "normal life raised: %r" % (loud,)
    bench.metrics["scenarios"]["normal_life"] = {
        "requests": len(results), "info_anomalies": sorted({a.kind for a in stored})}
