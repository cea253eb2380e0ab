"""conn.scan: unanswered SYNs from the router itself."""
from connfixtures import PROC_FIXTURES, agent_config, out, snapshot, syn

from routerwatch.detectors.conn_scan import Config, ConnScan
from routerwatch.sources.conntrack import ConntrackSource


def read(name):
    return ConntrackSource(agent_config(PROC_FIXTURES / name)).poll(100.0)[0]


def test_mirai_fixture_is_a_critical_telnet_scan():
    (finding,) = ConnScan(Config()).observe(read("mirai"))
    assert finding.kind == "conn.scan" and finding.severity == "critical"
    assert finding.evidence["addresses"] == finding.evidence["login_port_addresses"] >= 30
    assert set(finding.evidence["ports"]) == {"23", "2323"}
    assert "telnet/ssh scan" in finding.summary


def test_healthy_router_is_quiet():
    assert ConnScan(Config()).observe(read("healthy")) == []


def test_four_unanswered_telnet_syns_are_not_yet_a_scan_five_are():
    watch = ConnScan(Config())
    assert watch.observe(snapshot(1.0, [syn("198.51.100.%d" % i) for i in range(1, 5)])) == []
    (finding,) = watch.observe(snapshot(11.0, [syn("198.51.100.9")]))
    assert finding.evidence["login_port_addresses"] == 5


def test_generic_syn_scan_on_other_ports_is_high():
    flows = [syn("192.0.2.%d" % i, dport=8080) for i in range(1, 40)]
    (finding,) = ConnScan(Config()).observe(snapshot(1.0, flows))
    assert finding.severity == "high" and finding.evidence["login_port_addresses"] == 0


def test_answered_connections_and_forwarded_syns_do_not_count():
    answered = [out("192.0.2.%d" % i, 23) for i in range(1, 50)]
    # a LAN host's scan is forwarded traffic: the source never hands it over as a Flow
    assert ConnScan(Config()).observe(snapshot(1.0, answered, forwarded=5000)) == []


def test_old_syns_leave_the_window():
    watch = ConnScan(Config(window=60))
    watch.observe(snapshot(0.0, [syn("198.51.100.%d" % i) for i in range(1, 4)]))
    assert watch.observe(snapshot(100.0, [syn("203.0.113.%d" % i) for i in range(1, 4)])) == []
