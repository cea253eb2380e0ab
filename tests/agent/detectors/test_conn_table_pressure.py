"""conn.table_pressure: the conntrack table close to nf_conntrack_max."""
from connfixtures import PROC_FIXTURES, agent_config, gen, out, snapshot, syn

from routerwatch.detectors.conn_table_pressure import Config, ConnTablePressure
from routerwatch.sources.conntrack import ConntrackSource


def test_healthy_fixture_far_below_max_is_quiet():
    snap = ConntrackSource(agent_config(PROC_FIXTURES / "healthy")).poll(1.0)[0]
    assert ConnTablePressure(Config()).observe(snap) == []


def test_table_90_percent_full_of_forwarded_traffic_is_low_and_says_so(tmp_path):
    gen.write_tree(str(tmp_path), gen.healthy_lines(925), max_entries=1024)
    snap = ConntrackSource(agent_config(tmp_path)).poll(1.0)[0]
    (finding,) = ConnTablePressure(Config()).observe(snap)
    assert finding.severity == "low" and "forwarded" in finding.summary
    assert (finding.evidence["entries"], finding.evidence["max_entries"]) == (925, 1024)
    assert finding.evidence["percent"] == 90.3


def test_table_filled_by_the_routers_own_syns_is_high():
    flows = [syn("198.51.100.%d" % (i % 250 + 1), sport=40000 + i) for i in range(1010)]
    (finding,) = ConnTablePressure(Config()).observe(snapshot(1.0, flows, forwarded=10,
                                                              max_entries=1024))
    assert finding.severity == "high" and finding.evidence["router_originated"] == 1010


def test_below_the_threshold_or_max_unknown_is_quiet():
    flows = [out("198.51.100.1", 443, sport=40000 + i) for i in range(80)]
    assert ConnTablePressure(Config()).observe(snapshot(1.0, flows, max_entries=100)) == []
    assert ConnTablePressure(Config()).observe(snapshot(1.0, flows, max_entries=None)) == []
    assert ConnTablePressure(Config(percent=80)).observe(snapshot(1.0, flows, max_entries=100))
