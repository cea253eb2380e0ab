"""conn.beacon: the router itself connecting to one destination again and again at a steady
interval — how implants check in with their controller.

Regularity is judged from the start times of distinct flows: start = snapshot time - delta-time
when the kernel keeps timestamps (nf_conntrack_timestamp=1), otherwise the time a flow was first
seen (accurate to one poll interval, hence jitter_seconds). Flows that start together (a client
opening two connections at once) count as one check-in, and so do flows following each other
closer than that (a chatty client is one long burst, not a clock). A flow that lives on is one
start, not many: a persistent connection is not a beacon.

What a healthy OpenWrt router does on a clock, and why it stays quiet:
  - sysntpd/ntpd asks its pool servers every 2^n s (up to 1024 s) from port 123: udp/123 ignored;
  - dnsmasq forwards LAN clients' periodic lookups upstream: udp/53 and tcp/53, tcp/853 ignored;
  - DHCP/DHCPv6 clients renew at half the lease: udp/67, udp/547 ignored;
  - this agent's own MQTT connection reconnecting while the broker is down: tcp/1883, tcp/8883;
  - mwan3/watchcat health pings: ICMP is not considered (protocols option).
Owner-installed periodic jobs (ddns-scripts checking the WAN address every 10 minutes) are
added to ignore_destinations or ignore_services.
"""
from collections import deque
from dataclasses import dataclass

from ..bounded import BoundedDict
from ..events import ORIGIN_ROUTER, ConntrackSnapshot
from ..options import option
from .base import Detector, DetectorConfig, Finding
from .connutil import (endpoint, normalised_addresses, parse_services,
                       parse_words)


@dataclass(frozen=True)
class Config(DetectorConfig):
    min_connections: int = option(6, 3, 64, "regularly spaced connection starts needed (five "
                                  "equal intervals are not chance)")
    min_interval: int = option(20, 1, 86400, "shorter intervals are chatty clients, not "
                               "check-ins (and below the poll resolution)")
    max_interval: int = option(21600, 60, 604800, "longer intervals are not judged (the history "
                               "would have to span days)")
    jitter: float = option(0.1, 0.0, 1.0, "how far an interval may stray from the median, as a "
                           "share of it")
    jitter_seconds: int = option(15, 0, 3600, "how far in seconds at least (a first-seen time "
                                 "is only as exact as the poll interval)")
    ignore_services: str = option(
        "udp/53,tcp/53,tcp/853,udp/123,udp/67,udp/547,tcp/1883,tcp/8883",
        why="the router's own DNS, NTP, DHCP and this agent's MQTT, which are periodic by design")
    ignore_destinations: str = option("", why="addresses whose periodic contact is expected "
                                      "(the DDNS provider, a monitoring server)")
    protocols: str = option("tcp,udp", why="ICMP is left out: mwan3 and watchcat ping on a clock")
    count_lan: bool = option(False, why="also judge LAN and link-local destinations")
    history: int = option(12, 3, 256, "connection starts kept per destination")
    max_destinations: int = option(2048, 16, 1000000, "destinations remembered; beyond this "
                                   "the least recent are forgotten")
    max_flows: int = option(16384, 64, 1000000, "flows remembered to tell a new one from one "
                            "still open")


class ConnBeacon(Detector):
    kind = "conn.beacon"
    Config = Config
    consumes = (ConntrackSnapshot,)

    def __init__(self, config):
        super().__init__(config)
        self.ignored = parse_services(config.ignore_services, "conn.beacon.ignore_services")
        self.ignored_destinations = frozenset(
            normalised_addresses(config.ignore_destinations, "conn.beacon.ignore_destinations"))
        self.protocols = parse_words(config.protocols)
        self.flows = BoundedDict(config.max_flows)              # 5-tuple -> [start, last seen]
        # (proto, dst, dport) -> [deque of check-in starts, start of the latest flow]
        self.starts = BoundedDict(config.max_destinations)
        self.previous = None                                    # time of the previous snapshot

    def _wanted(self, flow):
        if flow.origin != ORIGIN_ROUTER or flow.proto not in self.protocols:
            return False
        if (flow.proto, flow.dport) in self.ignored or flow.dst in self.ignored_destinations:
            return False
        return self.config.count_lan or not flow.dst in self.inside

    def observe(self, snapshot):
        now = snapshot.time
        findings = []
        tolerance = max(2, self.config.jitter_seconds)
        for flow in snapshot.flows:
            if not self._wanted(flow):
                continue
            key = (flow.proto, flow.src, flow.sport, flow.dst, flow.dport)
            start = now - flow.age if flow.age is not None else now
            known = self.flows.get(key)
            if known is not None:
                gone_between = self.previous is not None and known[1] < self.previous
                restarted = flow.age is not None and abs(start - known[0]) > 2
                if not gone_between and not restarted:
                    known[1] = now
                    continue
            self.flows.set(key, [start, now])
            destination = (flow.proto, flow.dst, flow.dport)
            track = self.starts.setdefault(
                destination, lambda: [deque(maxlen=self.config.history), None])
            starts, last = track
            track[1] = start
            if last is not None and abs(start - last) <= tolerance:
                continue       # part of the same check-in, or continuous chatter
            starts.append(start)
            finding = self._judge(destination, starts, now)
            if finding is not None:
                findings.append(finding)
        self.previous = now
        return findings

    def _judge(self, destination, starts, now):
        need = self.config.min_connections
        if len(starts) < need:
            return None
        recent = sorted(starts)[-need:]
        intervals = [b - a for a, b in zip(recent, recent[1:])]
        median = sorted(intervals)[len(intervals) // 2]
        if not self.config.min_interval <= median <= self.config.max_interval:
            return None
        allowed = max(self.config.jitter * median, self.config.jitter_seconds)
        if any(abs(interval - median) > allowed for interval in intervals):
            return None
        proto, dst, dport = destination
        target = endpoint(dst, dport)
        return Finding(
            kind=self.kind, severity="medium",
            summary="the router itself connects to %s/%s every %d s (%d regular connections)" % (
                target, proto, round(median), len(recent)),
            evidence={"destination": dst, "port": dport, "proto": proto,
                      "interval": round(median, 1),
                      "intervals": [round(i, 1) for i in intervals],
                      "connections": len(recent)},
            incident="%s/%s" % (target, proto), time=now)

    def drops(self):
        return {"conn.beacon.flows": self.flows.evicted,
                "conn.beacon.destinations": self.starts.evicted}


DETECTOR = ConnBeacon
