"""The agent reads /proc/net in the byte order of the kernel it runs on.

/proc/net/{tcp,udp,raw}[6] print each address as the kernel's in-memory u32 words in hex, so the
same 198.51.100.2 reads 026433C6 on a little-endian router and C6336402 on a big-endian one
(ath79 MIPS; s390x stands in for it here). On the big-endian router:

Given listeners opened in the router on addresses whose bytes differ in every position (TCP and
UDP, IPv4 and IPv6), raw sockets, and connections from the WAN side to two of those listeners,
when the agent's own sources poll once in the router (no byte order passed: they take it from
the running system), then they see the same sockets busybox netstat decodes, at the addresses
they were opened on, the raw sockets by protocol, and conntrack's flows as `conntrack -L` lists
them, classified as inbound (the router's own addresses read right); the live agent reports the
listener on the backdoor port 7777 to the collector, and `routerwatch-agent --once` prints it.
"""
import ipaddress
import json
import sys
import time
from pathlib import Path

import pytest

from router_harness import netns

pytestmark = pytest.mark.router_arches("s390x")

PORTS = {"tcp4": 40961, "tcp4_lo": 40962, "udp4": 40963, "tcp6": 40964, "udp6": 40965,
         "backdoor": 7777}
OPENER = """\
import socket, time
held = []
def bind(family, kind, address, port, proto=0):
    s = socket.socket(family, kind, proto)
    if kind != socket.SOCK_RAW:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, port))
    if kind == socket.SOCK_STREAM:
        s.listen(8)
    held.append(s)
bind(socket.AF_INET, socket.SOCK_STREAM, "{wan}", {tcp4})
bind(socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1", {tcp4_lo})
bind(socket.AF_INET, socket.SOCK_DGRAM, "{lan}", {udp4})
bind(socket.AF_INET6, socket.SOCK_STREAM, "{wan6}", {tcp6})
bind(socket.AF_INET6, socket.SOCK_DGRAM, "::1", {udp6})
bind(socket.AF_INET, socket.SOCK_STREAM, "{wan}", {backdoor})
bind(socket.AF_INET, socket.SOCK_RAW, "{wan}", 0, socket.IPPROTO_UDP)
bind(socket.AF_INET6, socket.SOCK_RAW, "::", 0, socket.IPPROTO_ICMPV6)
print("ready", flush=True)
time.sleep(900)
""".format(wan=netns.ROUTER_WAN, lan=netns.ROUTER_LAN, wan6=netns.ROUTER_WAN6, **PORTS)
EXPECTED = {("tcp", netns.ROUTER_WAN, PORTS["tcp4"]), ("tcp", "127.0.0.1", PORTS["tcp4_lo"]),
            ("udp", netns.ROUTER_LAN, PORTS["udp4"]), ("tcp6", netns.ROUTER_WAN6, PORTS["tcp6"]),
            ("udp6", "::1", PORTS["udp6"]), ("tcp", netns.ROUTER_WAN, PORTS["backdoor"])}
PROBE = Path(__file__).resolve().parent / "guest_socket_probe.py"


def hex_word(address, big_endian):
    """How the kernel prints an IPv4 address in /proc/net/tcp on a CPU of that byte order."""
    packed = ipaddress.IPv4Address(address).packed
    return (packed if big_endian else packed[::-1]).hex().upper()


def netstat_sockets(text):
    """{(proto, address, port)} of the listening rows of busybox `netstat -antuw` (TCP in
    LISTEN, UDP and raw without a peer; Debian's busybox has no wide -W); tcp6/udp6 named by
    the address (busybox may name both families tcp/udp), raw rows as (raw|raw6, None,
    protocol)."""
    found = set()
    for line in text.splitlines():
        words = line.split()
        if len(words) < 5 or words[0] not in ("tcp", "udp", "raw", "tcp6", "udp6", "raw6"):
            continue
        if words[0].startswith("tcp") and "LISTEN" not in words[5:]:
            continue
        if not words[0].startswith("tcp") and not words[4].endswith(":*"):
            continue
        address, _, port = words[3].rpartition(":")
        address = ipaddress.ip_address(address)
        proto = words[0].rstrip("6") + ("6" if address.version == 6 else "")
        if proto.startswith("raw"):
            found.add((proto, None, int(port)))
        else:
            found.add((proto, str(address), int(port)))
    return found


def conntrack_flows(text):
    """{(proto, src, sport, dst, dport)} of `conntrack -L` lines (original direction)."""
    flows = set()
    for line in text.splitlines():
        words = line.split()
        if not words or words[0] not in ("tcp", "udp"):
            continue
        fields = {}
        for word in words:
            key, _, value = word.partition("=")
            if value and key not in fields:        # the first src=/dst= are the original's
                fields[key] = value
        flows.add((words[0], str(ipaddress.ip_address(fields["src"])), int(fields["sport"]),
                   str(ipaddress.ip_address(fields["dst"])), int(fields["dport"])))
    return flows


def connect_from_wan(bench, address, port):
    """A TCP connection from the WAN namespace, held open for a while in the background."""
    code = ("import socket, time; s = socket.create_connection((%r, %d), 10); time.sleep(60)"
            % (address, port))
    return bench.net.popen("wan", [sys.executable, "-c", code])


def test_agent_reads_sockets_and_conntrack_in_the_kernels_byte_order(bench):
    arch = bench.arch
    vm = bench.vm
    assert vm.out("python3 -c 'import sys; print(sys.byteorder)'").strip() == (
        "big" if arch.big_endian else "little")
    vm.write_file("/tmp/e2e-opener.py", OPENER)
    vm.write_file("/tmp/e2e-probe.py", PROBE.read_text())
    started = time.time()
    opener = vm.spawn("exec python3 /tmp/e2e-opener.py", log="/tmp/e2e-opener.log")
    clients = []
    try:
        vm.wait_for("grep -q ready /tmp/e2e-opener.log", timeout=120)
        # the kernel's own text: proves which byte order this run is about
        tcp = vm.out("cat /proc/net/tcp")
        assert "%s:%04X" % (hex_word(netns.ROUTER_WAN, arch.big_endian), PORTS["tcp4"]) in tcp
        clients = [connect_from_wan(bench, netns.ROUTER_WAN, PORTS["tcp4"]),
                   connect_from_wan(bench, netns.ROUTER_WAN6, PORTS["tcp6"])]
        vm.wait_for("conntrack -L -p tcp 2>/dev/null | grep -q 'dport=%d' && "
                    "conntrack -L -f ipv6 -p tcp 2>/dev/null | grep -q 'dport=%d'"
                    % (PORTS["tcp4"], PORTS["tcp6"]), timeout=60)

        # the .ipk keeps the agent in /usr/lib/routerwatch (its launcher puts that on sys.path)
        report = json.loads(vm.out("PYTHONPATH=/usr/lib/routerwatch python3 /tmp/e2e-probe.py",
                                   timeout=300))
        assert report["byteorder"] == ("big" if arch.big_endian else "little")
        agent = {(proto, address, port) for proto, address, port, _ in report["listeners"]}
        netstat = netstat_sockets(vm.out("netstat -antuw"))
        ours = {row for row in netstat if row[2] in PORTS.values() and row[1] is not None}
        assert EXPECTED <= agent, "agent: %s" % sorted(agent)
        assert ours == EXPECTED, "netstat: %s" % sorted(ours)
        # every TCP listener busybox shows, the agent shows, and no other
        assert {r for r in agent if r[0].startswith("tcp")} == \
            {r for r in netstat if r[0].startswith("tcp")}
        raw_agent = {(proto, protocol) for proto, protocol, _ in report["raw"]}
        raw_netstat = {(proto, port) for proto, address, port in netstat if address is None}
        assert {("raw", 17), ("raw6", 58)} <= raw_agent
        assert raw_agent == raw_netstat, "agent %s, netstat %s" % (raw_agent, raw_netstat)

        listed = conntrack_flows(vm.out("conntrack -L 2>/dev/null; conntrack -L -f ipv6 "
                                        "2>/dev/null; true"))
        wanted = {f for f in listed if f[4] in (PORTS["tcp4"], PORTS["tcp6"])}
        assert len(wanted) == 2, listed
        seen = {(p, s, sp, d, dp): origin for p, s, sp, d, dp, origin in report["flows"]}
        for flow in wanted:
            assert seen.get(flow) == "inbound", "conntrack -L %s; agent %s" % (flow, seen)

        found = bench.wait_anomaly("conn.new_listener", since=started,
                                   match=lambda a: a.evidence.get("port") == PORTS["backdoor"],
                                   timeout=180, what="for port 7777")
        assert netns.ROUTER_WAN in json.dumps(found.evidence)
        bench.record("byte_order", "conn.new_listener/7777", started, found)

        vm.write_file("/tmp/e2e-once.json", json.dumps({"device_id": "once-check"}))
        rc, out, err = vm.sh("routerwatch-agent --once --config /tmp/e2e-once.json "
                             "--set state_dir=/tmp/e2e-once-state", timeout=600)
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        backdoor = [a for a in lines if a.get("kind") == "conn.new_listener"
                    and a.get("evidence", {}).get("port") == PORTS["backdoor"]]
        assert rc == 1 and backdoor, "rc %s\n%s%s" % (rc, out, err)
        assert netns.ROUTER_WAN in json.dumps(backdoor[0]["evidence"])
    finally:
        for client in clients:
            client.kill()
            client.wait()
        vm.sh("kill %d; rm -rf /tmp/e2e-opener.py /tmp/e2e-probe.py /tmp/e2e-once*" % opener)
