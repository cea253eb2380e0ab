"""Scenario 4: a CovertNetwork-1658 (Quad7) style implant.

Given a router where an intruder dropped a SOCKS5 proxy in /tmp and started it on TCP 11288
next to a shell listener on TCP 7777 (the xlogin pattern), when three WAN peers relay HTTP
requests through the proxy to seventy different "internet" hosts, then the collector stores
conn.new_listener (high or worse) for 11288 and for 7777, conn.relay for the proxy port, and
conn.fanout for the router's own connections to many destinations.
"""
import concurrent.futures
import time

import pytest

from router_harness import netns

pytestmark = pytest.mark.router_arches("x86_64", "mipsel")

PEERS = netns.WAN_ATTACKERS[35:38]
TARGETS = netns.INTERNET_HOSTS[:70]


def relay(bench, peer, target):
    done = bench.wan(["curl", "-s", "-m", "20", "--interface", peer, "--socks5",
                      "%s:11288" % netns.ROUTER_WAN, "http://%s/index.html" % target], timeout=60)
    return done.returncode == 0 and "hello from the internet" in done.stdout


def test_socks_implant_on_backdoor_ports_is_reported(bench):
    bench.vm.out("cp /usr/bin/microsocks /tmp/.xs && chmod 755 /tmp/.xs")
    started = time.time()
    proxy = bench.vm.spawn("exec /tmp/.xs -i 0.0.0.0 -p 11288", log="/tmp/.xs.log")
    shell = bench.vm.spawn("exec telnetd -F -p 7777 -l /bin/sh")
    try:
        bench.vm.wait_for("netstat -ltn | grep -q ':11288 ' && netstat -ltn | grep -q ':7777 '",
                          timeout=30)
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda i: relay(bench, PEERS[i % 3], TARGETS[i]),
                                    range(len(TARGETS))))
        assert sum(results) >= 65, "the proxy relayed only %d of %d" % (sum(results), len(results))
        for port in (11288, 7777):
            found = bench.wait_anomaly("conn.new_listener", since=started,
                                       match=lambda a, p=port: a.evidence.get("port") == p,
                                       timeout=90, what="for port %d" % port)
            assert found.severity in ("high", "critical")
            bench.record("covert_proxy", "conn.new_listener/%d" % port, started, found)
        relayed = bench.wait_anomaly("conn.relay", since=started,
                                     match=lambda a: a.evidence.get("inbound_port") == 11288,
                                     timeout=90, what="for port 11288")
        assert set(relayed.evidence["peers"]) <= set(PEERS) and relayed.evidence["peers"]
        bench.record("covert_proxy", "conn.relay", started, relayed,
                     outbound_connections=relayed.evidence["outbound_connections"])
        fanout = bench.wait_anomaly("conn.fanout", since=started, timeout=90)
        assert fanout.evidence["destinations"] >= 64
        bench.record("covert_proxy", "conn.fanout", started, fanout,
                     destinations=fanout.evidence["destinations"])
    finally:
        bench.vm.sh("kill %d %d; rm -f /tmp/.xs" % (proxy, shell))
