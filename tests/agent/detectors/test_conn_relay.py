"""conn.relay: outside peers connected to a router port while the router connects out."""
from connfixtures import LAN4, PROC_FIXTURES, agent_config, inbound, out, snapshot

from routerwatch.detectors.conn_relay import Config, ConnRelay
from routerwatch.sources.conntrack import ConntrackSource


def read(name):
    return ConntrackSource(agent_config(PROC_FIXTURES / name)).poll(100.0)[0]


def outbound(count, port=443):
    return [out("203.0.113.%d" % (200 + i), port, sport=50000 + i) for i in range(count)]


def test_socks5_on_11288_relaying_to_443_is_critical_with_peers_and_destinations():
    (finding,) = ConnRelay(Config()).observe(read("socks_relay"))
    assert finding.kind == "conn.relay" and finding.severity == "critical"
    evidence = finding.evidence
    assert (evidence["inbound_port"], evidence["proto"]) == (11288, "tcp")
    assert sorted(evidence["peers"]) == ["198.51.100.66", "198.51.100.67"]
    assert evidence["inbound_connections"] == 4
    assert "203.0.113.200:443" in evidence["outbound_destinations"]
    assert evidence["outbound_connections"] == 6
    assert finding.incident == "tcp/11288"


def test_healthy_router_is_quiet():
    assert ConnRelay(Config()).observe(read("healthy")) == []


def test_proxy_on_an_unlisted_port_is_high():
    flows = [inbound("198.51.100.%d" % i, 1080, sport=40000 + i) for i in range(3)] + outbound(3)
    (finding,) = ConnRelay(Config()).observe(snapshot(1.0, flows))
    assert finding.severity == "high" and finding.evidence["inbound_port"] == 1080


def test_owner_ssh_session_running_opkg_update_is_not_a_relay():
    ssh = [inbound("198.51.100.5", 22, sport=40000 + i) for i in range(3)]
    opkg = [out("198.51.100.200", 443, sport=50000 + i) for i in range(6)]
    assert ConnRelay(Config()).observe(snapshot(1.0, ssh + opkg)) == []


def test_lan_clients_using_a_proxy_on_the_router_are_not_reported():
    ipv4 = [inbound("192.168.1.%d" % i, 3128, dst=LAN4, sport=40000 + i) for i in range(100, 105)]
    # a LAN client with a global IPv6 address, inside the router's LAN /64
    ipv6 = [inbound("2001:db8:1:100::%x" % i, 3128, dst="2001:db8:1:100::1", sport=40000 + i)
            for i in range(1, 6)]
    assert ConnRelay(Config()).observe(snapshot(1.0, ipv4 + ipv6 + outbound(10))) == []


def test_one_inbound_connection_or_too_few_outbound_is_not_enough():
    watch = ConnRelay(Config())
    assert watch.observe(snapshot(1.0, [inbound("198.51.100.7", 1080)] + outbound(5))) == []
    many_in = [inbound("198.51.100.7", 1081, sport=40000 + i) for i in range(5)]
    assert ConnRelay(Config()).observe(snapshot(1.0, many_in + outbound(2))) == []


def test_unanswered_inbound_means_nothing_listened():
    flows = [inbound("198.51.100.%d" % i, 1080, unreplied=True) for i in range(5)] + outbound(5)
    assert ConnRelay(Config()).observe(snapshot(1.0, flows)) == []


def test_inbound_and_outbound_pair_across_polls_within_the_window():
    watch = ConnRelay(Config(window=120))
    assert watch.observe(snapshot(0.0, [inbound("198.51.100.%d" % i, 1080, sport=40000 + i)
                                        for i in range(3)])) == []
    assert len(watch.observe(snapshot(60.0, outbound(3)))) == 1
    short = ConnRelay(Config(window=30))
    short.observe(snapshot(0.0, [inbound("198.51.100.%d" % i, 1080, sport=40000 + i)
                                 for i in range(3)]))
    assert short.observe(snapshot(60.0, outbound(3))) == []


def test_remote_luci_on_a_custom_port_running_opkg_against_one_mirror_is_not_a_relay():
    browser = [inbound("198.51.100.5", 8443, sport=40000 + i) for i in range(6)]
    opkg = [out("198.51.100.200", 443, sport=50000 + i) for i in range(8)]
    assert ConnRelay(Config()).observe(snapshot(1.0, browser + opkg)) == []
