"""The fleet detections: what one router cannot see and the fleet can. One module per kind,
registered here like the agent's detectors; the Fleet runner feeds them what ingest stores and
turns their findings into the collector's own anomalies (origin `collector`), raised once per
incident and then updated by count.

All their state is in the store (stores/fleet_sql.py), so collectors sharing one database share
the fleet picture, and one of them raises each incident.
"""
from routerwatch.contract import Anomaly, validate

from .base import FLEET_DEVICE, FleetDetector, FleetFinding, FleetResolution, describe_options
from .campaign import Campaign
from .firmware_outlier import FirmwareOutlier
from .implant import Implant

# how often the sightings past every window are deleted (seconds)
FORGET_EVERY = 3600.0


def fleet_detector_classes():
    """{kind: class} of every fleet detector."""
    return {cls.kind: cls for cls in (Campaign, Implant, FirmwareOutlier)}


class Fleet:
    """`next_anomaly_id()` gives (run, seq) for a new collector anomaly (the collector's run
    and its own numbering, shared with agent.silent). `configs`: {kind: Config}."""

    def __init__(self, next_anomaly_id, configs=None, enabled=None):
        configs = configs or {}
        classes = fleet_detector_classes()
        kinds = list(classes) if enabled is None else [k for k in classes if k in enabled]
        self.detectors = [classes[k](configs.get(k)) for k in kinds]
        self.next_anomaly_id = next_anomaly_id
        self._next_forget = 0.0
        self.counters = {"raised": 0, "updated": 0, "resolved": 0}

    def _consumers(self, what):
        return [d for d in self.detectors if what in d.consumes]

    def observe_anomalies(self, store, stored, now):
        """New agent anomalies were stored (same transaction): returns the new fleet ones."""
        out = []
        consumers = self._consumers("anomaly")
        for anomaly in stored:
            if anomaly.origin != "agent":
                continue
            for detector in consumers:
                out.extend(self._raise(store, detector, detector.observe(store, anomaly, now),
                                       now))
        return out

    def observe_inventory(self, store, inventory, now):
        out = []
        for detector in self._consumers("inventory"):
            out.extend(self._raise(store, detector, detector.observe(store, inventory, now), now))
        return out

    def _raise(self, store, detector, findings, now):
        new = []
        window = detector.incident_window()
        expired_before = float("-inf") if window is None else now - window
        for f in findings:
            if isinstance(f, FleetResolution):
                self._resolve(store, f, now)
                continue
            run, seq = self.next_anomaly_id()
            if store.fleet_open_incident(f.kind, f.incident, f.device, run, seq, now, f.devices,
                                         expired_before):
                anomaly = validate(Anomaly(
                    device=f.device, run=run, seq=seq, time=float(now), kind=f.kind,
                    severity=f.severity, summary=f.summary,
                    evidence=dict(f.evidence, raised_by="collector"), count=f.devices))
                new.extend(store.add_anomalies([anomaly], now, origin="collector"))
                self.counters["raised"] += 1
                continue
            row = store.fleet_grow_incident(f.kind, f.incident, now, f.devices)
            if row is not None:
                store.update_anomaly(row[0], row[1], row[2], f.devices,
                                     dict(f.evidence, raised_by="collector"), f.summary)
                self.counters["updated"] += 1
        return new

    def _resolve(self, store, resolution, now):
        """End the incident and mark its anomaly (the same row) resolved; one writer does."""
        row = store.fleet_close_incident(resolution.kind, resolution.incident)
        if row is None:
            return
        stored = store.anomaly_by_key(*row)
        if stored is None:
            return
        count, evidence, summary = stored
        evidence = dict(evidence if isinstance(evidence, dict) else {}, **resolution.evidence)
        evidence.update(resolved_at=float(now), resolution=resolution.reason)
        store.update_anomaly(row[0], row[1], row[2], count, evidence,
                             "%s; resolved: %s" % (summary, resolution.summary))
        self.counters["resolved"] += 1

    def maintain(self, store, now):
        """Forget sightings past every detector's window (at most hourly)."""
        if now < self._next_forget:
            return
        self._next_forget = now + FORGET_EVERY
        with store.transaction():
            for detector in self.detectors:
                if detector.history_seconds():
                    store.fleet_forget_sightings(detector.kind, now - detector.history_seconds())


__all__ = ["Fleet", "FleetDetector", "FleetFinding", "FleetResolution", "FLEET_DEVICE",
           "describe_options", "fleet_detector_classes"]
