"""conn.scan: the router itself sending unanswered SYNs to many addresses.

A scanner's probes sit in the conntrack table as router-originated `SYN_SENT [UNREPLIED]` entries
(raw-socket SYNs included: they pass OUTPUT like any packet) for up to two minutes. Mirai probes
random addresses on 23, every tenth on 2323, later variants on 22: a few unanswered SYNs to those
ports from the router itself are already telling, so they have their own, lower threshold.
A healthy router's own connections get answered (or refused, which is a reply too).
"""
from collections import Counter
from dataclasses import dataclass

from ..bounded import BoundedDict
from ..events import ORIGIN_ROUTER, ConntrackSnapshot
from ..options import option
from .base import Detector, DetectorConfig, Finding
from .connutil import parse_ports

MAX_SAMPLE = 10


@dataclass(frozen=True)
class Config(DetectorConfig):
    threshold: int = option(32, 2, 1000000, "distinct addresses with unanswered SYNs from the "
                            "router in the window; a dead upstream or two is normal, dozens is not")
    login_ports: str = option("23,2323,22", why="telnet and ssh: what Mirai-style bots scan for "
                              "weak passwords")
    login_threshold: int = option(5, 1, 1000000, "distinct addresses with unanswered SYNs to the "
                                  "login ports that make a Mirai-style scan")
    window: int = option(120, 10, 86400, "seconds an unanswered SYN counts (conntrack keeps "
                         "SYN_SENT entries 120 s)")
    max_targets: int = option(16384, 64, 1000000,
                              "scanned addresses remembered; beyond this the oldest are forgotten")


class ConnScan(Detector):
    kind = "conn.scan"
    Config = Config
    consumes = (ConntrackSnapshot,)

    def __init__(self, config):
        super().__init__(config)
        self.login_ports = parse_ports(config.login_ports, "conn.scan.login_ports")
        self.targets = BoundedDict(config.max_targets)   # dst -> (last seen, Counter of ports)

    def observe(self, snapshot):
        now = snapshot.time
        for flow in snapshot.flows:
            if (flow.origin != ORIGIN_ROUTER or flow.proto != "tcp" or not flow.unreplied
                    or flow.state not in ("SYN_SENT", "SYN_SENT2")):
                continue
            seen = self.targets.get(flow.dst)
            ports = seen[1] if seen else set()
            if len(ports) < 16:
                ports.add(flow.dport)
            self.targets.set(flow.dst, (now, ports))
        oldest = now - self.config.window
        recent = []
        for dst, (last, ports) in self.targets.items():
            if last < oldest:
                self.targets.pop(dst)
            else:
                recent.append((dst, ports))
        login = [dst for dst, ports in recent if ports & self.login_ports]
        if len(login) >= self.config.login_threshold:
            severity, what = "critical", "telnet/ssh scan"
        elif len(recent) >= self.config.threshold:
            severity, what = "high", "SYN scan"
        else:
            return []
        port_counts = Counter(port for _, ports in recent for port in ports)
        return [Finding(
            kind=self.kind, severity=severity,
            summary="%s from the router itself: unanswered SYNs to %d addresses in %d s "
                    "(%d on %s)" % (what, len(recent), self.config.window, len(login),
                                    "/".join(str(p) for p in sorted(self.login_ports))),
            evidence={"addresses": len(recent), "login_port_addresses": len(login),
                      "window": self.config.window,
                      "ports": {str(p): n for p, n in port_counts.most_common(8)},
                      "sample": [dst for dst, _ in recent[-MAX_SAMPLE:]]},
            incident="router", time=now)]

    def drops(self):
        return {"conn.scan.targets": self.targets.evicted}


DETECTOR = ConnScan
