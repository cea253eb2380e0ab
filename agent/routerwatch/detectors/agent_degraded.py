"""agent.degraded: a watcher that could read its source cannot any more, for longer than a few of
its intervals: alive and heartbeating, but blind.

An attacker with root need not kill the agent: stopping logd (`/etc/init.d/log stop`), unloading
conntrack, or unmounting the overlay leaves it running with nothing to read; before this only
counters in the heartbeat moved. The runtime sends a SourceHealth event whenever a source's
ability to read changes; this detector raises one high finding per outage (naming the watcher,
the source and the error) once the outage has lasted `intervals` reads and at least
`min_seconds`, and an info finding when it ends, with how long it lasted.

Only a source that has read successfully in this run can be degraded: a router without conntrack
(a dumb access point without firewall) or without an overlay (an ext4 image) is not blind, it has
nothing there to watch. Outages are keyed by watcher and source, so one flapping source cannot
hide another's.
"""
from dataclasses import dataclass

from ..events import SourceHealth
from ..options import option
from .base import Detector, DetectorConfig, Finding


@dataclass(frozen=True)
class Config(DetectorConfig):
    intervals: int = option(3, 1, 1000, "reads in a row that must fail before the watcher "
                            "counts as blind: one failed read is a file caught mid-change")
    min_seconds: int = option(60, 1, 86400, "shortest outage reported, also for the log stream "
                              "(which has no interval): logread restarts within seconds")


class _Outage:
    __slots__ = ("since", "error", "interval", "reported")

    def __init__(self, since, error, interval):
        self.since = since
        self.error = error
        self.interval = interval
        self.reported = False


class AgentDegraded(Detector):
    kind = "agent.degraded"
    Config = Config
    consumes = (SourceHealth,)

    def __init__(self, config):
        super().__init__(config)
        self._worked = set()        # (watcher, source) that read successfully at least once
        self._outages = {}          # (watcher, source) -> _Outage; a handful of sources at most

    def observe(self, event):
        key = (event.watcher, event.source)
        if event.error is None:
            self._worked.add(key)
            outage = self._outages.pop(key, None)
            if outage is None or not outage.reported:
                return []
            return [self._finding(key, outage, event.time, recovered=True)]
        if key not in self._worked:
            return []
        outage = self._outages.get(key)
        if outage is None:
            self._outages[key] = _Outage(event.time, event.error, event.interval)
        else:
            outage.error = event.error      # the newest reason; the outage goes on
        return self.tick(event.time)

    def tick(self, now):
        findings = []
        for key, outage in self._outages.items():
            if outage.reported:
                continue
            if now - outage.since >= max(self.config.intervals * outage.interval,
                                         self.config.min_seconds):
                outage.reported = True
                findings.append(self._finding(key, outage, now, recovered=False))
        return findings

    def _finding(self, key, outage, now, recovered):
        watcher, source = key
        lasted = round(max(0.0, now - outage.since), 1)
        evidence = {"watcher": watcher, "source": source, "error": outage.error,
                    "since": outage.since, "seconds": lasted, "recovered": recovered}
        if recovered:
            summary = "the %s watcher reads its source again after %.0f s blind (%s)" % (
                watcher, lasted, outage.error)
            severity = "info"
        else:
            summary = "the %s watcher cannot read its source for %.0f s: %s" % (
                watcher, lasted, outage.error)
            severity = "high"
            if outage.interval:
                evidence["interval"] = outage.interval
        incident = "%s/%s@%s%s" % (watcher, source, outage.since,
                                    "/recovered" if recovered else "")
        return Finding(kind=self.kind, severity=severity, summary=summary, evidence=evidence,
                       incident=incident, time=now)


DETECTOR = AgentDegraded
