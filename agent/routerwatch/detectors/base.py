"""What every detector shares: the Finding it emits and the incident gate that rate-limits them.

A detector module defines one class with:
    kind     the dotted anomaly kind, e.g. "login.bruteforce" (module name: login_bruteforce.py)
    Config   a frozen dataclass of its thresholds (fields made with options.option(), each with
             its default and the reason); `enabled` and `cooldown` come from DetectorConfig
    consumes a tuple of event types (routerwatch.events) it wants
    observe(event) -> list[Finding]   called for each event of those types
    tick(now) -> list[Finding]        optional, called once per loop (windows that close by time)
    drops() -> dict[str, int]         optional, counts of what its bounded state threw away
    final(finding) -> Finding         optional, the finding with the incident's state as it is
                                      now: --once sends each incident once, at the end

    inside                            the owner's side (inside.Inside): `address in self.inside`;
                                      the runtime replaces it when the LAN networks change

Detectors never see the clock except through event.time / now, so tests need no sleeps.

A config reload (SIGHUP) builds every detector again from the new config and then calls
adopt(previous) with the instance it replaces, so that only the options change: what the old one
learned (baselines, windows, seen sources, histories) is carried over. adopt needs nothing from
the detector: whatever differs from a fresh instance built from the old config is learned state
and is kept; whatever does not (values derived from options, empty tables) comes from the new
config. A bounded table keeps its entries under the new cap.
"""
from dataclasses import dataclass
from typing import Optional

from ..bounded import BoundedDict
from ..inside import NOWHERE
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
    inside = NOWHERE      # until the router's LAN networks are read

    def __init__(self, config):
        self.config = config

    def observe(self, event):
        return []

    def tick(self, now):
        return []

    def drops(self):
        return {}

    def adopt(self, previous):
        """Take over what `previous` (this kind, built from the config before a reload) learned."""
        pristine = vars(type(previous)(previous.config))
        mine = vars(self)
        for name, value in list(vars(previous).items()):
            if name == "config":
                continue
            if name in pristine and same_state(pristine[name], value):
                continue        # untouched since it was built: the new config's value stands
            if isinstance(value, BoundedDict) and isinstance(mine.get(name), BoundedDict):
                value.resize(mine[name].cap)
            setattr(self, name, value)


def same_state(a, b):
    """True when two attribute values are equal; anything that cannot be compared counts as
    different, so that it is carried over rather than forgotten."""
    if isinstance(a, BoundedDict):
        return a.same_as(b)
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001 - a value whose == fails is simply not known to be equal
        return False


@dataclass
class _Incident:
    first: float               # event time of the incident's first finding
    last_sent: float           # event time of the finding sent last
    sent_at: float             # the loop's time when it was sent
    suppressed: int = 0
    pending: Optional[Finding] = None


class IncidentGate:
    """Once per incident: the first finding passes, repeats within the cool-down are counted.

    The cool-down runs by event time: a repeat passes when its own time is `cooldown` after the
    finding sent last, and the counted repeats of an incident are sent (the latest, with
    count = repeats, so the collector learns how long it went on) once the newest event time the
    gate has seen is `cooldown` past it - so a replayed day of log is gated as it was lived. In a
    live run the loop's clock ends a cool-down too, for an incident that simply went quiet.

    hold=True (--once, a replay of a whole log): nothing is sent while the log is read; flush()
    gives each incident once, its latest finding (final count and time span) with the number of
    findings it folds.
    """

    # each incident may hold its latest Finding (evidence up to a few kB): 1024 keeps it to a few MB
    def __init__(self, cap=1024, hold=False):
        self._incidents = BoundedDict(cap)
        self.hold = hold
        self._latest = None         # the newest event time admitted

    @property
    def evicted(self):
        return self._incidents.evicted

    def admit(self, finding, cooldown, now=None):
        """[(finding, count)] to send now: empty for a counted repeat; held findings come out
        only when the table is full (the least recent incident makes room) or at flush()."""
        key = (finding.kind, finding.incident)
        if self._latest is None or finding.time > self._latest:
            self._latest = finding.time
        incidents = self._incidents
        incident = incidents.get(key)
        if self.hold:
            out = []
            if incident is None:
                if len(incidents) >= incidents.cap:
                    out = self._release(incidents.pop(incidents.oldest()[0]))
                incident = _Incident(first=finding.time, last_sent=finding.time, sent_at=0.0)
                incidents.set(key, incident)
            incident.suppressed += 1
            incident.pending = finding
            return out
        sent_at = finding.time if now is None else now
        if incident is None or finding.time - incident.last_sent >= cooldown:
            count = 1 + (incident.suppressed if incident else 0)
            incidents.set(key, _Incident(first=finding.time, last_sent=finding.time,
                                         sent_at=sent_at))
            return [(finding, count)]
        incident.suppressed += 1
        incident.pending = finding
        return []

    def expire(self, now, cooldown_of):
        """Findings whose cool-down ended with repeats pending: [(finding, count)]."""
        if self.hold:
            return []
        out = []
        latest = self._latest
        for key, incident in self._incidents.items():
            if incident.pending is None:
                continue
            cooldown = cooldown_of(key[0])
            if latest - incident.last_sent >= cooldown or now - incident.sent_at >= cooldown:
                out.append((incident.pending, incident.suppressed))
                incident.last_sent = max(incident.pending.time, incident.last_sent)
                incident.sent_at = now
                incident.suppressed = 0
                incident.pending = None
        return out

    def flush(self):
        """Every held incident once, oldest first: [(finding, count)]; the table is emptied."""
        out = []
        for key, incident in self._incidents.items():
            self._incidents.pop(key)
            out.extend(self._release(incident))
        return out

    @staticmethod
    def _release(incident):
        if incident.pending is None:
            return []
        return [(incident.pending, incident.suppressed)]
