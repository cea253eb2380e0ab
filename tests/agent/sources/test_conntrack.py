"""ConntrackSource: one read of nf_conntrack per poll, each entry sorted by who originated it."""
from connfixtures import PROC_FIXTURES, agent_config, copy_tree, gen

from routerwatch.events import ORIGIN_INBOUND, ORIGIN_ROUTER
from routerwatch.sources.conntrack import ConntrackSource


def poll(root, *overrides, now=1000.0):
    source = ConntrackSource(agent_config(root, *overrides))
    snapshots = source.poll(now)
    assert len(snapshots) == 1
    return source, snapshots[0]


def write(tmp_path, lines, max_entries=65536):
    gen.write_tree(str(tmp_path), lines, max_entries=max_entries)
    return tmp_path


def test_healthy_fixture_keeps_router_and_inbound_flows_and_counts_the_forwarded():
    source, snap = poll(PROC_FIXTURES / "healthy")
    assert snap.entries == 240 and snap.max_entries == 65536 and snap.unparsed == 0
    origins = {flow.origin for flow in snap.flows}
    assert origins == {ORIGIN_ROUTER, ORIGIN_INBOUND}
    # loopback chatter (127.0.0.1 -> 127.0.0.1) is neither kept nor counted as forwarded
    assert snap.forwarded + len(snap.flows) == snap.entries - 1
    assert source.counters()["conntrack_entries"] == 240


def test_each_kind_of_entry_is_classified(tmp_path):
    lines = [
        gen.entry("udp", gen.WAN4, "198.51.100.53", 41234, 53),                        # router
        gen.entry("tcp", "192.168.1.20", gen.LAN4, 50122, 22, status="ASSURED"),       # inbound
        gen.entry("tcp", "192.168.1.100", "198.51.100.9", 50000, 443,                  # masq
                  reply_dst=gen.WAN4, reply_dport=61000),
        gen.entry("tcp", "198.51.100.20", gen.WAN4, 40000, 8080,                       # DNAT
                  reply_src="192.168.1.50", reply_sport=80),
        gen.entry("tcp", "2001:db8:1:100::10", "2001:db8:f000::1", 50000, 443),         # routed v6
        gen.entry("tcp", "192.168.1.100", "198.51.100.80", 50001, 80,                   # redirect
                  reply_src=gen.LAN4, reply_sport=3128),
        gen.entry("tcp", "2001:db8:1:100::20", gen.LAN6, 50400, 443),                   # inbound v6
    ]
    _, snap = poll(write(tmp_path, lines))
    kept = {(f.src, f.dport): f.origin for f in snap.flows}
    assert kept == {(gen.WAN4, 53): ORIGIN_ROUTER, ("192.168.1.20", 22): ORIGIN_INBOUND,
                    ("192.168.1.100", 80): ORIGIN_INBOUND,
                    ("2001:db8:1:100::20", 443): ORIGIN_INBOUND}
    assert snap.forwarded == 3 and snap.entries == 7
    router = next(f for f in snap.flows if f.origin == ORIGIN_ROUTER)
    assert (router.proto, router.dst, router.reply_dst) == ("udp", "198.51.100.53", gen.WAN4)


def test_ipv6_flows_come_out_with_compressed_addresses(tmp_path):
    _, snap = poll(write(tmp_path, [gen.entry("tcp", gen.WAN6, "2001:db8:f000::5", 40000, 443,
                                              age=12)]))
    (flow,) = snap.flows
    assert (flow.src, flow.dst, flow.age, flow.origin) == (gen.WAN6, "2001:db8:f000::5", 12,
                                                           ORIGIN_ROUTER)


def test_router_addresses_from_config_count_as_the_routers(tmp_path):
    line = gen.entry("tcp", "198.51.100.99", "192.0.2.50", 40000, 443)
    _, before = poll(write(tmp_path, [line]))
    _, after = poll(tmp_path, "router_addresses=198.51.100.99")
    assert before.forwarded == 1 and not before.flows
    assert after.forwarded == 0 and after.flows[0].origin == ORIGIN_ROUTER


def test_bad_lines_are_counted_not_fatal(tmp_path):
    good = gen.entry("udp", gen.WAN4, "198.51.100.53", 41234, 53)
    lines = [good, "garbage\n", good.replace("dst=198.51.100.53", "dst=198.51.100.999"),
             good.replace("udp      17", "udp      99")]
    source, snap = poll(write(tmp_path, lines))
    assert snap.entries == 4 and snap.unparsed == 3 and len(snap.flows) == 1
    assert source.counters()["conntrack_unparsed"] == 3


def test_table_and_max_are_read_again_each_poll(tmp_path):
    root = write(tmp_path, gen.healthy_lines(50), max_entries=64)
    source = ConntrackSource(agent_config(root))
    assert source.poll(1.0)[0].entries == 50
    write(tmp_path, gen.healthy_lines(60), max_entries=128)
    snap = source.poll(2.0)[0]
    assert (snap.entries, snap.max_entries, snap.time) == (60, 128, 2.0)


def test_kept_flows_are_capped_and_the_excess_counted(tmp_path):
    lines = gen.fanout_lines(100)
    source, snap = poll(write(tmp_path, lines), "connections.max_flows=64")
    assert len(snap.flows) == 64 and snap.entries == 100
    assert source.drops() == {"conntrack_flows": 36}


def test_unreadable_table_still_reports_the_kernel_count(tmp_path):
    root = copy_tree("healthy", tmp_path)
    (root / "proc" / "net" / "nf_conntrack").unlink()
    source, snap = poll(root)
    assert (snap.entries, snap.flows, snap.max_entries) == (240, (), 65536)
    assert source.counters()["conntrack_unreadable"] == 1


def test_busy_table_of_64k_entries_is_read_in_one_poll(tmp_path):
    _, snap = poll(write(tmp_path, gen.healthy_lines(65536, seed=5)))
    assert snap.entries == 65536 and snap.unparsed == 0
    # a busy router's table is overwhelmingly forwarded traffic, only counted
    assert snap.forwarded > 0.85 * snap.entries
    assert all(f.origin in (ORIGIN_ROUTER, ORIGIN_INBOUND) for f in snap.flows)
