"""Conntrack tables and /proc trees in the kernel's exact format, for tests and benchmarks.

The home router every table belongs to (documentation addresses only):
    WAN   203.0.113.7 (PPPoE), 2001:db8:0:1::2        LAN  192.168.1.1, 2001:db8:1:100::1,
    ULA   fdca:ffee:babe::1, link-local fe80::1       LAN clients 192.168.1.100-249 and
    2001:db8:1:100::/64; "the internet" is 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and
    2001:db8:f000::/36.

    python3 bench/gen_conntrack.py ROOT 65536          write a healthy busy table under ROOT/proc
    python3 bench/gen_conntrack.py ROOT 65536 --time   ... and time ConntrackSource.poll() on it

Lines follow /proc/net/nf_conntrack (openwrt-formats.md 2.1): "%-8s %u %-8s %u " l3/l4 names,
timeout (absent when offloaded), TCP state, the original tuple with packets/bytes (acct is on on
OpenWrt), [UNREPLIED], the reply tuple, [OFFLOAD]/[ASSURED], mark, zone, delta-time, use.
"""
import argparse
import ipaddress
import os
import random
import sys
import time

WAN4, LAN4 = "203.0.113.7", "192.168.1.1"
WAN6, LAN6, ULA6, LL6 = "2001:db8:0:1::2", "2001:db8:1:100::1", "fdca:ffee:babe::1", "fe80::1"
UPSTREAM_DNS = ("198.51.100.53", "198.51.100.54")
NTP_SERVERS = ("192.0.2.123", "198.51.100.123", "203.0.113.123", "192.0.2.124")
L4 = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "gre": 47}


def _v6(text):
    """%pI6: the full, uncompressed form the kernel prints."""
    return ipaddress.IPv6Address(text).exploded


def entry(proto, src, dst, sport=None, dport=None, reply_src=None, reply_dst=None,
          reply_sport=None, reply_dport=None, state=None, timeout=None, unreplied=False,
          status=None, age=None, icmp=None, packets=(3, 180, 2, 120)):
    """One nf_conntrack line. reply_* default to the mirrored original (no NAT).
    status: None | "ASSURED" | "OFFLOAD" | "HW_OFFLOAD"; offloaded flows print no timeout."""
    v6 = ":" in src
    reply_src = reply_src or dst
    reply_dst = reply_dst or src
    reply_sport = dport if reply_sport is None else reply_sport
    reply_dport = sport if reply_dport is None else reply_dport
    if timeout is None:
        timeout = {"tcp": 7439 if state == "ESTABLISHED" else 119}.get(proto, 59)
    addr = _v6 if v6 else str
    parts = ["%-8s %u %-8s %u " % ("ipv6" if v6 else "ipv4", 10 if v6 else 2, proto, L4[proto])]
    if status not in ("OFFLOAD", "HW_OFFLOAD"):
        parts.append("%d " % timeout)
    if proto == "tcp":
        parts.append("%s " % (state or "ESTABLISHED"))

    def tup(s, d, sp, dp, n_packets, n_bytes, reply):
        text = "src=%s dst=%s " % (addr(s), addr(d))
        if proto in ("tcp", "udp"):
            text += "sport=%d dport=%d " % (sp, dp)
        elif proto in ("icmp", "icmpv6"):
            kind, ident = icmp or ((8, 0x1234) if proto == "icmp" else (128, 0x1234))
            if reply:
                kind = {8: 0, 128: 129}.get(kind, kind)
            text += "type=%d code=0 id=%d " % (kind, ident)
        elif proto == "gre":
            text += "srckey=0x0 dstkey=0x0 "
        return text + "packets=%d bytes=%d " % (n_packets, n_bytes)

    parts.append(tup(src, dst, sport, dport, packets[0], packets[1], False))
    if unreplied:
        parts.append("[UNREPLIED] ")
    parts.append(tup(reply_src, reply_dst, reply_sport, reply_dport,
                     0 if unreplied else packets[2], 0 if unreplied else packets[3], True))
    if status:
        parts.append("[%s] " % status)
    parts.append("mark=0 zone=0 ")
    if age is not None:
        parts.append("delta-time=%d " % age)
    parts.append("use=2")
    return "".join(parts) + "\n"


# --------------------------------------------------------------------------- address pools

def internet4(rng):
    while True:
        net = rng.choice(("192.0.2.", "198.51.100.", "203.0.113."))
        address = net + str(rng.randint(1, 254))
        if address not in (WAN4,) + UPSTREAM_DNS + NTP_SERVERS:
            return address


def internet6(rng):
    return "2001:db8:f%03x::%x" % (rng.randint(0, 0xfff), rng.randint(1, 0xffff))


def lan4(rng):
    return "192.168.1.%d" % rng.randint(100, 249)


def lan6(rng):
    return "2001:db8:1:100:%x:%x:%x:%x" % tuple(rng.randint(1, 0xffff) for _ in range(4))


# --------------------------------------------------------------------------- healthy traffic

def masqueraded_tcp(rng):
    client, server, port = lan4(rng), internet4(rng), rng.randint(32768, 60999)
    status = rng.choice(("ASSURED", "ASSURED", "ASSURED", "OFFLOAD"))
    return entry("tcp", client, server, port, rng.choice((443, 443, 80, 993, 5222)),
                 reply_dst=WAN4, reply_dport=rng.randint(1024, 65535), status=status,
                 age=rng.randint(0, 7000))


def masqueraded_udp(rng):
    client, server = lan4(rng), internet4(rng)
    return entry("udp", client, server, rng.randint(32768, 60999), rng.choice((443, 3478, 53)),
                 reply_dst=WAN4, reply_dport=rng.randint(1024, 65535),
                 status=rng.choice((None, "ASSURED")), age=rng.randint(0, 170))


def routed_ipv6(rng):
    proto = rng.choice(("tcp", "tcp", "udp"))
    return entry(proto, lan6(rng), internet6(rng), rng.randint(32768, 60999),
                 rng.choice((443, 443, 80)), status="ASSURED", age=rng.randint(0, 7000))


def port_forward(rng):
    """WAN:8080 -> 192.168.1.50:80 (DNAT: the reply comes from the internal host)."""
    peer = internet4(rng)
    sport = rng.randint(1024, 65535)
    return entry("tcp", peer, WAN4, sport, 8080, reply_src="192.168.1.50", reply_dst=peer,
                 reply_sport=80, reply_dport=sport, status="ASSURED", age=rng.randint(0, 600))


def port_forward_ipv6(rng):
    """IPv6 'port forward' = a firewall rule allowing WAN->LAN host: plain routed, no NAT."""
    return entry("tcp", internet6(rng), "2001:db8:1:100::50", rng.randint(1024, 65535), 443,
                 status="ASSURED", age=rng.randint(0, 600))


def forwarded_ping(rng):
    return entry("icmp", lan4(rng), internet4(rng), reply_dst=WAN4,
                 icmp=(8, rng.randint(1, 65535)), timeout=29, age=rng.randint(0, 29))


def lan_dns_to_router(rng):
    """LAN clients asking dnsmasq: inbound to the router."""
    return entry("udp", lan4(rng), LAN4, rng.randint(32768, 60999), 53, status="ASSURED",
                 timeout=rng.randint(1, 179), age=rng.randint(0, 60))


HEALTHY_MIX = ((masqueraded_tcp, 62), (masqueraded_udp, 12), (routed_ipv6, 14),
               (port_forward, 2), (port_forward_ipv6, 1), (forwarded_ping, 2),
               (lan_dns_to_router, 7))


def router_own_lines():
    """What a healthy router itself has in its table: DNS upstream, NTP, dropbear and LuCI
    sessions from the LAN, DHCPv6, loopback chatter."""
    return [
        entry("udp", WAN4, UPSTREAM_DNS[0], 41234, 53, status="ASSURED", age=12),
        entry("udp", WAN4, UPSTREAM_DNS[1], 52007, 53, age=3),
        entry("udp", WAN4, NTP_SERVERS[0], 123, 123, age=20),
        entry("udp", _compress(WAN6), "2001:db8:f000::123", 123, 123, age=40),
        entry("tcp", "192.168.1.20", LAN4, 50122, 22, status="ASSURED", age=1800),
        entry("tcp", "192.168.1.20", LAN4, 50310, 443, status="ASSURED", age=30),
        entry("tcp", "192.168.1.20", LAN4, 50311, 80, state="TIME_WAIT", timeout=100,
              status="ASSURED", age=31),
        entry("tcp", "2001:db8:1:100::20", LAN6, 50400, 443, status="ASSURED", age=25),
        entry("udp", "fe80::20", "ff02::1:2", 546, 547, unreplied=True, age=5),
        entry("udp", "127.0.0.1", "127.0.0.1", 59720, 53, unreplied=True),
        entry("icmpv6", LL6, "fe80::20", icmp=(128, 77), timeout=29, age=2),
    ]


def _compress(text):
    return str(ipaddress.ip_address(text))


def healthy_lines(n, seed=0):
    """A busy home router's table of n entries: the router's own few, the rest forwarded
    (masqueraded, routed IPv6, port forwards) and LAN DNS queries to the router."""
    rng = random.Random(seed)
    lines = router_own_lines()[:n]
    makers = [maker for maker, weight in HEALTHY_MIX for _ in range(weight)]
    while len(lines) < n:
        lines.append(rng.choice(makers)(rng))
    return lines


# --------------------------------------------------------------------------- attacks

def mirai_scan_lines(count=40, seed=1):
    """Router-originated SYNs to random addresses on 23 (every tenth 2323), unanswered."""
    rng = random.Random(seed)
    sport = 41000     # Mirai keeps one random source port for the whole run
    return [entry("tcp", WAN4, internet4(rng), sport, 2323 if i % 10 == 9 else 23,
                  state="SYN_SENT", timeout=118, unreplied=True, age=rng.randint(0, 2),
                  packets=(1, 40, 0, 0)) for i in range(count)]


def socks_relay_lines(seed=2):
    """Operators connect to the SOCKS5 on WAN:11288; the router connects out to 443."""
    rng = random.Random(seed)
    lines = []
    for i in range(4):
        peer = ("198.51.100.66", "198.51.100.67")[i % 2]
        lines.append(entry("tcp", peer, WAN4, 40000 + i, 11288, status="ASSURED",
                           age=60 - i * 10, packets=(40, 4000, 38, 52000)))
    for i in range(6):
        lines.append(entry("tcp", WAN4, "203.0.113.%d" % (200 + i), rng.randint(32768, 60999),
                           443, status="ASSURED", age=55 - i * 8, packets=(30, 5000, 28, 9000)))
    return lines


def fanout_lines(count=100, seed=3):
    """The router itself opening connections to many distinct hosts (answered: not a scan)."""
    rng = random.Random(seed)
    seen, lines = set(), []
    while len(lines) < count:
        dst = internet4(rng)
        if dst in seen:
            continue
        seen.add(dst)
        lines.append(entry("tcp", WAN4, dst, rng.randint(32768, 60999), 80, state="TIME_WAIT",
                           timeout=100, status="ASSURED", age=rng.randint(0, 200)))
    return lines


# --------------------------------------------------------------------------- /proc trees

# The kernel prints the same trie for its Main and Local tables on a router this simple.
_FIB_TABLE = """\
  +-- 0.0.0.0/0 3 0 6
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.168.1.0/24 2 0 2
        +-- 192.168.1.0/31 1 0 0
           |-- 192.168.1.0
              /24 link UNICAST
           |-- 192.168.1.1
              /32 host LOCAL
        |-- 192.168.1.255
           /32 link BROADCAST
     |-- 203.0.113.1
        /32 link UNICAST
     |-- 203.0.113.7
        /32 host LOCAL
"""
FIB_TRIE = "Main:\n" + _FIB_TABLE + "Local:\n" + _FIB_TABLE


def if_inet6_text():
    rows = ((WAN6, 11, 64, 0x00, 0x80, "pppoe-wan"), ("fe80::2", 11, 64, 0x20, 0x80, "pppoe-wan"),
            (LAN6, 5, 64, 0x00, 0x80, "br-lan"), (ULA6, 5, 60, 0x00, 0x80, "br-lan"),
            (LL6, 5, 64, 0x20, 0x80, "br-lan"), ("::1", 1, 128, 0x10, 0x80, "lo"))
    return "".join("%s %02x %02x %02x %02x %8s\n" % (
        ipaddress.IPv6Address(a).packed.hex(), i, p, s, f, name) for a, i, p, s, f, name in rows)


def write_tree(root, lines, max_entries=65536):
    """root/proc/net/{nf_conntrack,fib_trie,if_inet6} and the netfilter counters."""
    net = os.path.join(root, "proc", "net")
    netfilter = os.path.join(root, "proc", "sys", "net", "netfilter")
    os.makedirs(net, exist_ok=True)
    os.makedirs(netfilter, exist_ok=True)
    with open(os.path.join(net, "nf_conntrack"), "w") as handle:
        handle.writelines(lines)
    with open(os.path.join(net, "fib_trie"), "w") as handle:
        handle.write(FIB_TRIE)
    with open(os.path.join(net, "if_inet6"), "w") as handle:
        handle.write(if_inet6_text())
    with open(os.path.join(netfilter, "nf_conntrack_count"), "w") as handle:
        handle.write("%d\n" % len(lines))
    with open(os.path.join(netfilter, "nf_conntrack_max"), "w") as handle:
        handle.write("%d\n" % max_entries)


def time_poll(root, repeats=7):
    """Wall-clock median/min and CPU median milliseconds of ConntrackSource.poll() at root."""
    from routerwatch.config import load
    from routerwatch.sources.conntrack import ConntrackSource
    source = ConntrackSource(load(defaults={"root": root}))
    timings, cpu = [], []
    snapshot = None
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        snapshot = source.poll(0.0)[0]
        timings.append((time.perf_counter() - started) * 1000.0)
        cpu.append((time.process_time() - cpu_started) * 1000.0)
    timings.sort()
    cpu.sort()
    return {"entries": snapshot.entries, "kept_flows": len(snapshot.flows),
            "forwarded": snapshot.forwarded, "unparsed": snapshot.unparsed,
            "median_ms": round(timings[len(timings) // 2], 2), "min_ms": round(timings[0], 2),
            "median_cpu_ms": round(cpu[len(cpu) // 2], 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="directory to write ROOT/proc/... under")
    parser.add_argument("entries", type=int, nargs="?", default=16384)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time", action="store_true", help="time ConntrackSource.poll()")
    args = parser.parse_args(argv)
    write_tree(args.root, healthy_lines(args.entries, args.seed),
               max_entries=max(65536, args.entries * 2))
    if args.time:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "agent"))
        print(time_poll(args.root))


if __name__ == "__main__":
    main()
