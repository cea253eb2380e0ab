"""conn.table_pressure: the conntrack table close to nf_conntrack_max.

When the table is full the kernel drops new connections ("nf_conntrack: table full, dropping
packet"): the LAN loses connectivity, and a flood from the router itself (a DDoS bot, a scanner)
is one way to get there. The evidence says whose entries fill the table. When forwarded LAN
traffic is most of it, this is about the network's load, not the router's behaviour, and the
severity stays one step lower.
"""
from dataclasses import dataclass

from ..events import ORIGIN_INBOUND, ORIGIN_ROUTER, ConntrackSnapshot
from ..options import option
from .base import Detector, DetectorConfig, Finding


@dataclass(frozen=True)
class Config(DetectorConfig):
    percent: int = option(90, 10, 100, "table fill (entries / nf_conntrack_max) that is pressure")
    high_percent: int = option(98, 10, 100, "table fill that is about to drop connections")


class ConnTablePressure(Detector):
    kind = "conn.table_pressure"
    Config = Config
    consumes = (ConntrackSnapshot,)

    def observe(self, snapshot):
        if not snapshot.max_entries or snapshot.entries <= 0:
            return []
        percent = 100.0 * snapshot.entries / snapshot.max_entries
        if percent < self.config.percent:
            return []
        router = sum(1 for flow in snapshot.flows if flow.origin == ORIGIN_ROUTER)
        inbound = sum(1 for flow in snapshot.flows if flow.origin == ORIGIN_INBOUND)
        mostly_forwarded = snapshot.forwarded * 2 >= snapshot.entries
        levels = ("low", "medium") if mostly_forwarded else ("medium", "high")
        severity = levels[1] if percent >= self.config.high_percent else levels[0]
        cause = ("mostly forwarded LAN traffic" if mostly_forwarded
                 else "mostly connections of or to the router itself")
        return [Finding(
            kind=self.kind, severity=severity,
            summary="conntrack table %.0f%% full (%d of %d entries), %s" % (
                percent, snapshot.entries, snapshot.max_entries, cause),
            evidence={"entries": snapshot.entries, "max_entries": snapshot.max_entries,
                      "percent": round(percent, 1), "forwarded": snapshot.forwarded,
                      "router_originated": router, "inbound": inbound},
            incident="table", time=snapshot.time)]


DETECTOR = ConnTablePressure
