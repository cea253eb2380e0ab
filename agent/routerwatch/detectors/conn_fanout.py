"""conn.fanout: the router itself talking to many distinct outside destinations in a window.

A home router's own traffic reaches a handful of hosts (its DNS upstreams, NTP servers, the
package mirror); a scanner, a spraying proxy or a DDoS bot reaches hundreds. Only
router-originated flows count (forwarded LAN traffic never does); DNS and NTP are left out because
a router running a recursive resolver (unbound) legitimately asks many servers, and LAN/multicast
destinations (DHCP, mDNS, the router's own LAN clients) are left out by default.
"""
from collections import Counter
from dataclasses import dataclass

from ..bounded import BoundedDict
from ..events import ORIGIN_ROUTER, ConntrackSnapshot
from ..options import option
from .base import Detector, DetectorConfig, Finding
from .connutil import parse_services

MAX_SAMPLE = 10


@dataclass(frozen=True)
class Config(DetectorConfig):
    threshold: int = option(64, 2, 1000000, "distinct destinations in the window that make a "
                            "fan-out; a healthy router's own traffic reaches under a dozen")
    high_threshold: int = option(512, 2, 1000000, "distinct destinations that make it high "
                                 "(Mirai scans at 160 SYN/s: thousands a minute)")
    window: int = option(300, 10, 86400, "seconds a destination counts after it was last seen")
    ignore_services: str = option(
        "udp/53,tcp/53,tcp/853,udp/123", why="the router's own resolver and time sync: a "
        "recursive resolver or NTP pool legitimately reach many servers")
    count_lan: bool = option(False, why="also count LAN, link-local and multicast destinations "
                             "(off: the router serves its LAN clients)")
    max_destinations: int = option(16384, 64, 1000000,
                                   "destinations remembered; beyond this the oldest are forgotten")


class ConnFanout(Detector):
    kind = "conn.fanout"
    Config = Config
    consumes = (ConntrackSnapshot,)

    def __init__(self, config):
        super().__init__(config)
        self.ignored = parse_services(config.ignore_services, "conn.fanout.ignore_services")
        self.destinations = BoundedDict(config.max_destinations)   # dst -> (last seen, proto, port)

    def observe(self, snapshot):
        now = snapshot.time
        for flow in snapshot.flows:
            if flow.origin != ORIGIN_ROUTER or (flow.proto, flow.dport) in self.ignored:
                continue
            if not self.config.count_lan and flow.dst in self.inside:
                continue
            self.destinations.set(flow.dst, (now, flow.proto, flow.dport))
        oldest = now - self.config.window
        recent = []
        for dst, seen in self.destinations.items():
            if seen[0] < oldest:
                self.destinations.pop(dst)
            else:
                recent.append((dst, seen))
        if len(recent) < self.config.threshold:
            return []
        ports = Counter("%s/%s" % (seen[1], seen[2]) if seen[2] is not None else seen[1]
                        for _, seen in recent)
        severity = "high" if len(recent) >= self.config.high_threshold else "medium"
        sample = [dst for dst, _ in recent[-MAX_SAMPLE:]]
        return [Finding(
            kind=self.kind, severity=severity,
            summary="the router itself contacted %d distinct destinations in %d s (top: %s)" % (
                len(recent), self.config.window,
                ", ".join("%s x%d" % pair for pair in ports.most_common(3))),
            evidence={"destinations": len(recent), "window": self.config.window,
                      "sample": sample, "top_services": dict(ports.most_common(5))},
            incident="router", time=now)]

    def drops(self):
        return {"conn.fanout.destinations": self.destinations.evicted}


DETECTOR = ConnFanout
