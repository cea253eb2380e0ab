"""conn.relay: outside peers connecting to a router port while the router opens outbound
connections of its own in the same period — proxy behaviour.

This is how the Quad7 SOCKS5 (TCP 11288) and the KV-botnet relays look from conntrack: INPUT
connections from the operators to one port of the router, and OUTPUT connections from the router
to third parties (login endpoints on 443). Port-forwarded LAN servers are FORWARD traffic and never
appear here. Left out so a healthy router stays quiet:
  - the router's standard services (dropbear, dnsmasq, uhttpd: 22, 53, 80, 443) as inbound ports,
    so the owner's SSH session running `opkg update` is not a relay;
  - LAN peers (private addresses, or inside the /64 of the router address they connected to), so
    a proxy the owner runs for the LAN is not reported;
  - DNS/NTP outbound, and LAN/multicast destinations.
Several inbound connections and several distinct outbound destinations are needed: the owner's
remote LuCI session on a custom port running opkg (many connections to one mirror) is not a relay.
"""
from collections import Counter
from dataclasses import dataclass

from ..bounded import BoundedDict
from ..events import ORIGIN_INBOUND, ORIGIN_ROUTER, ConntrackSnapshot
from ..options import option
from .base import Detector, DetectorConfig, Finding
from .connutil import endpoint, parse_ports, parse_services, same_link

MAX_SAMPLE = 10


@dataclass(frozen=True)
class Config(DetectorConfig):
    window: int = option(300, 10, 86400, "seconds inbound and outbound connections count as "
                         "the same period")
    min_inbound: int = option(3, 1, 100000, "inbound connections to one port from outside peers "
                              "(one SSH session is not a proxy's workload)")
    min_outbound: int = option(3, 1, 100000, "distinct destinations (address and port) the "
                               "router itself connected to in the same period: opkg fetching a "
                               "few files from one mirror is one")
    ignore_ports: str = option("22,53,80,443", why="the router's own services (dropbear, "
                               "dnsmasq, uhttpd) as inbound ports")
    ignore_services: str = option("udp/53,tcp/53,tcp/853,udp/123,udp/67,udp/547",
                                  why="outbound DNS, NTP and DHCP of the router itself")
    backdoor_ports: str = option("7777,11288,63256", why="inbound ports of known backdoor "
                                 "proxies (Quad7 SOCKS5 on 11288): critical instead of high")
    tcp_only: bool = option(True, why="proxies (SOCKS, HTTP CONNECT) take TCP; inbound UDP is "
                            "mostly VPN and DHCP")
    max_flows: int = option(16384, 64, 1000000, "inbound and outbound connections remembered "
                            "each; beyond this the oldest are forgotten")


class ConnRelay(Detector):
    kind = "conn.relay"
    Config = Config
    consumes = (ConntrackSnapshot,)

    def __init__(self, config):
        super().__init__(config)
        self.ignore_ports = parse_ports(config.ignore_ports, "conn.relay.ignore_ports")
        self.ignored = parse_services(config.ignore_services, "conn.relay.ignore_services")
        self.backdoor_ports = parse_ports(config.backdoor_ports, "conn.relay.backdoor_ports")
        self.inbound = BoundedDict(config.max_flows)    # flow key -> (last seen, flow)
        self.outbound = BoundedDict(config.max_flows)

    def _wanted_inbound(self, flow):
        if flow.unreplied or flow.dport is None or flow.dport in self.ignore_ports:
            return False
        if self.config.tcp_only and flow.proto != "tcp":
            return False
        return not flow.src in self.inside and not same_link(flow.src, flow.dst)

    def _wanted_outbound(self, flow):
        if (flow.proto, flow.dport) in self.ignored or flow.dst in self.inside:
            return False
        return flow.proto in ("tcp", "udp")

    def observe(self, snapshot):
        now = snapshot.time
        for flow in snapshot.flows:
            key = (flow.proto, flow.src, flow.sport, flow.dst, flow.dport)
            if flow.origin == ORIGIN_INBOUND and self._wanted_inbound(flow):
                self.inbound.set(key, (now, flow))
            elif flow.origin == ORIGIN_ROUTER and self._wanted_outbound(flow):
                self.outbound.set(key, (now, flow))
        outbound = _recent(self.outbound, now - self.config.window)
        inbound = _recent(self.inbound, now - self.config.window)
        destinations = Counter(endpoint(f.dst, f.dport) for f in outbound)
        if len(destinations) < self.config.min_outbound or not inbound:
            return []
        by_port = {}
        for flow in inbound:
            by_port.setdefault((flow.proto, flow.dport), []).append(flow)
        findings = []
        for (proto, port), flows in sorted(by_port.items()):
            if len(flows) < self.config.min_inbound:
                continue
            peers = Counter(f.src for f in flows)
            severity = "critical" if port in self.backdoor_ports else "high"
            findings.append(Finding(
                kind=self.kind, severity=severity,
                summary="router port %d/%s relays: %d inbound connections from %d outside peers "
                        "while the router opened %d connections to %d destinations" % (
                            port, proto, len(flows), len(peers), len(outbound),
                            len(destinations)),
                evidence={"inbound_port": port, "proto": proto,
                          "inbound_connections": len(flows),
                          "peers": [p for p, _ in peers.most_common(MAX_SAMPLE)],
                          "outbound_connections": len(outbound),
                          "outbound_destinations": [d for d, _ in
                                                    destinations.most_common(MAX_SAMPLE)],
                          "window": self.config.window},
                incident="%s/%d" % (proto, port), time=now))
        return findings

    def drops(self):
        return {"conn.relay.flows": self.inbound.evicted + self.outbound.evicted}


def _recent(table, oldest):
    """Flows seen since `oldest`; older ones are forgotten."""
    flows = []
    for key, (last, flow) in table.items():
        if last < oldest:
            table.pop(key)
        else:
            flows.append(flow)
    return flows


DETECTOR = ConnRelay
