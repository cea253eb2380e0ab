"""What every detector shares: the Finding it emits and the incident gate that rate-limits them.

A detector module defines one class with:
    kind     the dotted anomaly kind, e.g. "login.bruteforce" (module name: login_bruteforce.py)
    Config   a frozen dataclass of its thresholds (fields made with options.option(), each with
             its default and the reason); `enabled` and `cooldown` come from DetectorConfig
    consumes a tuple of event types (routerwatch.events) it wants
    observe(event) -> list[Finding]   called for each event of those types
    tick(now) -> list[Finding]        optional, called once per loop (windows that close by time)
    drops() -> dict[str, int]         optional, counts of what its bounded state threw away

Detectors never see the clock except through event.time / now, so tests need no sleeps.
"""
from dataclasses import dataclass
from typing import Optional

from ..bounded import BoundedDict
from ..options import option


@dataclass(frozen=True)
class DetectorConfig:
    enabled: bool = option(True, why="turn this detector off without touching the others")
    cooldown: int = option(900, 0, 86400,
                           "seconds during which repeats of one incident are counted, not sent")


@dataclass(frozen=True)
class Finding:
    """A detector's verdict before it is numbered and stamped into a contract Anomaly."""
    kind: str
    severity: str            # info | low | medium | high | critical
    summary: str             # one line, for people
    evidence: dict           # JSON-able, bounded (use contract.clip on attacker-chosen text)
    incident: str            # what makes two findings "the same incident" (e.g. the source address)
    time: float
    cooldown: Optional[int] = None   # set by the runtime from the detector's config


class Detector:
    kind = ""
    Config = DetectorConfig
    consumes = ()

    def __init__(self, config):
        self.config = config

    def observe(self, event):
        return []

    def tick(self, now):
        return []

    def drops(self):
        return {}


@dataclass
class _Incident:
    first: float
    last_sent: float
    suppressed: int = 0
    pending: Optional[Finding] = None


class IncidentGate:
    """Once per incident: the first finding passes, repeats within the cool-down are counted.

    When the cool-down of an incident with counted repeats runs out, the latest repeat is sent
    with count = repeats, so the collector learns how long the incident went on.
    """

    # each incident may hold its latest Finding (evidence up to a few kB): 1024 keeps it to a few MB
    def __init__(self, cap=1024):
        self._incidents = BoundedDict(cap)

    @property
    def evicted(self):
        return self._incidents.evicted

    def admit(self, finding, cooldown):
        """Returns (finding, count) to send now, or None when it is a counted repeat."""
        key = (finding.kind, finding.incident)
        incident = self._incidents.get(key)
        if incident is None or finding.time - incident.last_sent >= cooldown:
            count = 1 + (incident.suppressed if incident else 0)
            self._incidents.set(key, _Incident(first=finding.time, last_sent=finding.time))
            return finding, count
        incident.suppressed += 1
        incident.pending = finding
        return None

    def expire(self, now, cooldown_of):
        """Findings whose cool-down ended with repeats pending: [(finding, count)]."""
        out = []
        for key, incident in self._incidents.items():
            if incident.pending is None:
                continue
            if now - incident.last_sent >= cooldown_of(key[0]):
                out.append((incident.pending, incident.suppressed))
                incident.last_sent = now
                incident.suppressed = 0
                incident.pending = None
        return out
