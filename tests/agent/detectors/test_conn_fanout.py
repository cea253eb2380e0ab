"""conn.fanout: the router itself reaching many distinct destinations in a window."""
from connfixtures import PROC_FIXTURES, agent_config, out, snapshot

from routerwatch.detectors.conn_fanout import Config, ConnFanout
from routerwatch.sources.conntrack import ConntrackSource


def read(name, now=100.0):
    return ConntrackSource(agent_config(PROC_FIXTURES / name)).poll(now)[0]


def hosts(count, start=1, port=80):
    return [out("198.51.100.%d" % (start + i) if start + i < 255 else
                "203.0.113.%d" % (start + i - 254 + 10), port) for i in range(count)]


def test_fanout_fixture_raises_medium_with_the_destinations_as_evidence():
    (finding,) = ConnFanout(Config()).observe(read("fanout"))
    assert finding.kind == "conn.fanout" and finding.severity == "medium"
    assert finding.evidence["destinations"] == 100
    assert finding.evidence["top_services"] == {"tcp/80": 100}
    assert len(finding.evidence["sample"]) == 10 and finding.incident == "router"


def test_healthy_router_is_quiet():
    assert ConnFanout(Config()).observe(read("healthy")) == []


def test_destinations_accumulate_over_polls_within_the_window():
    watch = ConnFanout(Config(threshold=20, window=60))
    assert watch.observe(snapshot(0.0, hosts(10))) == []
    (finding,) = watch.observe(snapshot(30.0, hosts(10, start=20)))
    assert finding.evidence["destinations"] == 20
    # 100 s later the first ten are out of the window
    assert watch.observe(snapshot(130.0, hosts(5, start=40))) == []


def test_dns_ntp_and_lan_destinations_do_not_count():
    dns = [out("198.51.100.%d" % i, 53, "udp") for i in range(1, 100)]
    ntp = [out("192.0.2.%d" % i, 123, "udp", sport=123) for i in range(1, 100)]
    lan = [out("192.168.1.%d" % i, 68, "udp", src="192.168.1.1") for i in range(2, 200)]
    assert ConnFanout(Config()).observe(snapshot(1.0, dns + ntp + lan)) == []


def test_high_above_the_high_threshold():
    flows = hosts(200) + [out("192.0.2.%d" % i, 23) for i in range(1, 200)]
    (finding,) = ConnFanout(Config(high_threshold=300)).observe(snapshot(1.0, flows))
    assert finding.severity == "high" and finding.evidence["destinations"] >= 300


def test_destination_table_is_bounded():
    watch = ConnFanout(Config(max_destinations=64, threshold=1000))
    watch.observe(snapshot(1.0, hosts(100)))
    assert watch.drops() == {"conn.fanout.destinations": 36}
