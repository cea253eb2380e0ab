"""ListenerSource: listening sockets from /proc/net/{tcp,tcp6,udp,udp6}, owners via /proc/<pid>/fd."""
import os

from connfixtures import PROC_FIXTURES, agent_config, copy_tree

from routerwatch.sources.sockets import ListenerSource


def poll(root, byteorder="little", *overrides):
    source = ListenerSource(agent_config(root, *overrides), byteorder=byteorder)
    (snapshot,) = source.poll(500.0)
    return source, snapshot


def by_port(snapshot):
    return {(s.proto, s.port, s.address): s for s in snapshot.sockets}


def test_healthy_router_listeners_with_their_owners():
    _, snap = poll(PROC_FIXTURES / "healthy")
    found = by_port(snap)
    assert found[("tcp", 22, "0.0.0.0")].process == "dropbear"
    assert found[("tcp", 22, "0.0.0.0")].exe == "/usr/sbin/dropbear"
    assert found[("tcp6", 443, "::")].process == "uhttpd"
    assert found[("udp", 53, "192.168.1.1")].process == "dnsmasq"
    assert found[("udp6", 53, "fdca:ffee:babe::1")].pid == 1100
    assert found[("udp", 123, "0.0.0.0")].process == "ntpd"
    # the LAN SSH session (state 01) is not a listener
    assert ("tcp", 22, "192.168.1.1") not in found
    assert snap.time == 500.0 and len(snap.sockets) == 15


def test_quad7_listeners_on_7777_and_11288_belong_to_the_binary_in_tmp():
    _, snap = poll(PROC_FIXTURES / "socks_relay")
    found = by_port(snap)
    for port in (7777, 11288):
        sock = found[("tcp", port, "0.0.0.0")]
        assert (sock.pid, sock.process, sock.exe) == (2345, "xlogin", "/tmp/xlogin")


def test_deleted_executable_keeps_the_kernels_marker():
    _, snap = poll(PROC_FIXTURES / "mirai")
    assert by_port(snap)[("tcp", 23, "0.0.0.0")].exe == "/tmp/dvrHelper (deleted)"


def test_raw_sockets_come_with_their_protocol_and_holder():
    _, healthy = poll(PROC_FIXTURES / "healthy")
    assert {(s.proto, s.protocol, s.process) for s in healthy.raw_sockets} == {
        ("raw", 1, "dnsmasq"), ("raw6", 58, "odhcpd")}
    _, infected = poll(PROC_FIXTURES / "mirai")
    (scanner,) = [s for s in infected.raw_sockets if s.protocol == 6]
    assert (scanner.proto, scanner.pid, scanner.exe) == ("raw", 3333, "/tmp/dvrHelper (deleted)")
    # raw sockets are not listeners: the listening sockets are the same 15 as without them
    assert len(healthy.sockets) == 15


def test_big_endian_router_files_decode_with_byteorder_big():
    _, snap = poll(PROC_FIXTURES / "bigendian", "big")
    found = by_port(snap)
    assert ("tcp", 7777, "0.0.0.0") in found and ("tcp", 53, "192.168.1.1") in found
    assert ("udp6", 53, "fdca:ffee:babe::1") in found
    assert found[("tcp", 11288, "0.0.0.0")].process is None     # no /proc/<pid> in that tree


def test_owners_are_remembered_and_only_new_inodes_walk_proc(tmp_path):
    root = copy_tree("healthy", tmp_path)
    source = ListenerSource(agent_config(root), byteorder="little")
    source.poll(1.0)
    source.poll(2.0)
    assert source.counters()["listener_owner_walks"] == 1
    # a new listener appears: one more walk finds its owner
    tcp = root / "proc" / "net" / "tcp"
    row = tcp.read_text().splitlines()[1].replace("00000000:0016", "00000000:1E61").replace(
        " 2101 ", " 9999 ")
    tcp.write_text(tcp.read_text() + row + "\n")
    (root / "proc" / "4242" / "fd").mkdir(parents=True)
    (root / "proc" / "4242" / "comm").write_text("sh\n")
    os.symlink("socket:[9999]", root / "proc" / "4242" / "fd" / "5")
    snap = source.poll(3.0)[0]
    assert by_port(snap)[("tcp", 7777, "0.0.0.0")].process == "sh"
    assert source.counters()["listener_owner_walks"] == 2


def test_no_permission_to_read_fds_leaves_owner_unknown(tmp_path):
    root = copy_tree("healthy", tmp_path)
    for pid_dir in (root / "proc").iterdir():
        if pid_dir.name.isdigit():
            for link in (pid_dir / "fd").iterdir():
                link.unlink()
    _, snap = poll(root)
    assert all(s.process is None and s.pid is None for s in snap.sockets)
    assert len(snap.sockets) == 15


def test_bad_rows_are_counted_and_listeners_capped(tmp_path):
    root = copy_tree("healthy", tmp_path)
    tcp = root / "proc" / "net" / "tcp"
    tcp.write_text(tcp.read_text() + "   9: this is not a socket row\n")
    source, snap = poll(root, "little", "connections.max_listeners=16")
    assert source.counters()["listener_unparsed"] == 1
    assert len(snap.sockets) == 15 and source.drops()["listeners"] == 0
    source, snap = poll(copy_tree("socks_relay", tmp_path / "b"), "little",
                        "connections.max_listeners=16")
    assert len(snap.sockets) == 16 and source.drops()["listeners"] == 1


def test_missing_ipv6_files_are_not_an_error(tmp_path):
    root = copy_tree("healthy", tmp_path)
    (root / "proc" / "net" / "tcp6").unlink()
    (root / "proc" / "net" / "udp6").unlink()
    _, snap = poll(root)
    assert {s.proto for s in snap.sockets} == {"tcp", "udp"}


def test_no_readable_socket_file_gives_no_snapshot_rather_than_an_empty_baseline(tmp_path):
    source = ListenerSource(agent_config(tmp_path), byteorder="little")
    assert source.poll(1.0) == []
    assert source.counters()["listener_unreadable"] == 1


def _native_row(address, port, byteorder):
    """A LISTEN row of /proc/net/tcp as a kernel of that byte order prints it."""
    import ipaddress
    word = int.from_bytes(ipaddress.IPv4Address(address).packed, byteorder)
    return ("   0: %08X:%04X 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
            "        0 4242 1 0000000000000000 100 0 0 10 0\n" % (word, port))


def test_the_agent_takes_the_byte_order_from_the_running_system(tmp_path):
    """Built the way the agent builds its sources (config only: no file name, no option says
    the byte order), the source reads rows in the order of the interpreter it runs in, which
    on a router is the kernel's own CPU; the e2e test on the s390x guest proves it on a
    big-endian kernel."""
    import sys

    from routerwatch.sources import build_sources
    net = tmp_path / "proc" / "net"
    net.mkdir(parents=True)
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
    (net / "tcp").write_text(header + _native_row("198.51.100.2", 7777, sys.byteorder))
    config = agent_config(tmp_path)
    (source,) = [s for s in build_sources(config) if isinstance(s, ListenerSource)]
    assert source.byteorder == sys.byteorder
    (snapshot,) = source.poll(1.0)
    assert [(s.proto, s.address, s.port) for s in snapshot.sockets] == [
        ("tcp", "198.51.100.2", 7777)]
    # the other order would have read the same row as a different address
    other = "big" if sys.byteorder == "little" else "little"
    (wrong,) = ListenerSource(config, byteorder=other).poll(1.0)
    assert [s.address for s in wrong.sockets] == ["2.100.51.198"]
