"""The connection watcher end to end: fixture /proc trees through ConntrackSource and
ListenerSource, the loop and every conn.* detector."""
import io
import random

from connfixtures import PROC_FIXTURES, agent_config, copy_tree, gen

from routerwatch import contract
from routerwatch.detectors import detector_classes
from routerwatch.runtime import Agent
from routerwatch.sinks.stdout import StdoutSink
from routerwatch.sources.conntrack import ConntrackSource
from routerwatch.sources.sockets import ListenerSource


def watcher(root):
    config = agent_config(root)
    classes = detector_classes()
    detectors = [classes[kind](cfg) for kind, cfg in config.detectors.items()
                 if kind.startswith("conn.")]
    assert len(detectors) == 7
    sources = [ConntrackSource(config), ListenerSource(config, byteorder="little")]
    return Agent(config, "r1", sources, detectors, StdoutSink(io.StringIO()),
                 run_id="0123456789abcdef", started=0.0)


def own_traffic(now, rng):
    """The router's own connections at time `now` on a healthy router, with consistent
    delta-time: NTP every 1024 s from port 123 (pool servers rotate), DNS forwarded upstream a
    few times per poll, the owner's SSH session and LuCI page loads from the LAN."""
    lines = []
    k = int(now // 1024)
    if now - k * 1024 < 60:
        server = gen.NTP_SERVERS[k % len(gen.NTP_SERVERS)]
        lines.append(gen.entry("udp", gen.WAN4, server, 123, 123, age=int(now - k * 1024)))
    for _ in range(3):
        lines.append(gen.entry("udp", gen.WAN4, rng.choice(gen.UPSTREAM_DNS),
                               rng.randint(32768, 60999), 53, age=rng.randint(0, 9)))
    lines.append(gen.entry("tcp", "192.168.1.20", gen.LAN4, 50122, 22, status="ASSURED",
                           age=int(now)))
    lines.append(gen.entry("tcp", "192.168.1.20", gen.LAN4, rng.randint(32768, 60999), 443,
                           status="ASSURED", age=rng.randint(0, 9)))
    lines.append(gen.entry("udp", gen.WAN6, "2001:db8:f000::123", 123, 123,
                           age=int(now % 60)))
    return lines


def test_busy_routers_forwarded_traffic_raises_no_conn_anomaly(tmp_path):
    """Thousands of masqueraded and routed IPv6 flows, port forwards, LAN DNS to the router,
    the router's own DNS and NTP, over two hours of polls: nothing."""
    root = copy_tree("healthy", tmp_path)
    forwarded_and_lan = gen.healthy_lines(3000, seed=11)[len(gen.router_own_lines()):]
    table = root / "proc" / "net" / "nf_conntrack"
    agent = watcher(root)
    rng = random.Random(3)
    produced = []
    for poll in range(120):
        now = 60.0 * poll
        if poll % 30 == 0:   # LAN traffic churns: new flows, other clients and servers
            forwarded_and_lan = gen.healthy_lines(3000, seed=poll)[len(gen.router_own_lines()):]
        table.write_text("".join(own_traffic(now, rng) + forwarded_and_lan))
        produced += agent.step(now, force_poll=True)
    assert [a.kind for a in produced if a.kind.startswith("conn.")] == []
    snapshot = agent.sources[0].poll(now)[0]
    assert snapshot.forwarded > 2500 and snapshot.unparsed == 0


def test_quad7_router_raises_listener_and_relay_anomalies_on_the_first_scan():
    agent = watcher(PROC_FIXTURES / "socks_relay")
    produced = agent.step(100.0, force_poll=True)
    kinds = sorted((a.kind, a.severity) for a in produced if a.kind.startswith("conn."))
    assert kinds == [("conn.new_listener", "critical"), ("conn.new_listener", "critical"),
                     ("conn.relay", "critical")]
    for anomaly in produced:     # what reaches the collector passes its strict decoder
        assert contract.decode(contract.encode(anomaly), "anomaly") == anomaly


def test_mirai_router_raises_scan_and_listener_anomalies():
    agent = watcher(PROC_FIXTURES / "mirai")
    produced = agent.step(100.0, force_poll=True)
    kinds = sorted(a.kind for a in produced if a.kind.startswith("conn."))
    assert kinds == ["conn.new_listener", "conn.raw_socket", "conn.scan"]
    for anomaly in produced:
        assert contract.decode(contract.encode(anomaly), "anomaly") == anomaly


def test_fanout_router_raises_fanout_and_every_anomaly_passes_the_contract():
    agent = watcher(PROC_FIXTURES / "fanout")
    produced = agent.step(100.0, force_poll=True)
    assert [a.kind for a in produced] == ["conn.fanout"]
    assert contract.decode(contract.encode(produced[0]), "anomaly") == produced[0]
