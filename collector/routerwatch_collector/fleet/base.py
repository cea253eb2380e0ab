"""What a fleet detector is: the collector's counterpart of the agent's detectors/base.py.

A fleet detector declares `kind`, `Config` (thresholds declared with routerwatch.options.option:
default, range, reason) and `consumes` ("anomaly" for stored agent anomalies, "inventory" for
inventories). `observe(store, message, now)` returns FleetFindings; it reads and writes only its
own keys' rows in the store (never a scan of the fleet), so its cost per message is bounded by
what that one message is about. Raising once per incident and updating the count is the Fleet
runner's job (fleet/__init__.py), like the agent's IncidentGate.
"""
from dataclasses import dataclass, fields

from routerwatch.options import option


@dataclass(frozen=True)
class FleetFinding:
    kind: str
    severity: str
    summary: str
    evidence: dict
    device: str             # the anomaly's device: the outlier, or FLEET_DEVICE for the fleet
    incident: str           # one anomaly per (kind, incident) while it is open
    devices: int            # how many devices it spans: the anomaly's count, updated as it grows


@dataclass(frozen=True)
class FleetResolution:
    """An open incident that ended before its window: what it reported is no longer so (a
    device back on its siblings' firmware). Its anomaly stays, marked resolved."""
    kind: str
    incident: str
    reason: str             # a short word for the evidence: why it ended
    summary: str            # appended to the anomaly's summary
    evidence: dict          # added to the anomaly's evidence


# the device id fleet-wide anomalies (a campaign, an implant) are stored under
FLEET_DEVICE = "fleet"

# how long an incident that stopped growing stays open; a fleet detector may say otherwise
NEVER_EXPIRES = None


class FleetDetector:
    kind = ""
    consumes = ()

    class Config:
        pass

    # seconds after its last sighting an incident ends (None: never): a later one is new
    def incident_window(self):
        return NEVER_EXPIRES

    # seconds of sightings the detector needs kept (None: it keeps none)
    def history_seconds(self):
        return None

    def __init__(self, config=None):
        self.config = config if config is not None else self.Config()

    def observe(self, store, message, now):
        """[FleetFinding or FleetResolution] the message leads to."""
        raise NotImplementedError


@dataclass(frozen=True)
class SpreadConfig:
    """The options every detector counting one key across devices (fleet_sightings) has; its
    Config adds `window` (seconds the devices are counted over) and its own thresholds."""
    max_listed_devices: int = option(
        50, 1, 1000, "devices named in the evidence (the count is always exact)")


class SpreadDetector(FleetDetector):
    """A detector counting one key (a source, a program hash) across devices over
    `config.window`: an incident ends after a window without a new sighting, and sightings are
    kept for one window."""

    def incident_window(self):
        return float(self.config.window)

    def history_seconds(self):
        return float(self.config.window)


def describe_options(detector_class):
    """[(name, default, minimum, maximum, why)] of a fleet detector's Config."""
    return [(f.name, f.default, f.metadata.get("min"), f.metadata.get("max"),
             f.metadata.get("why", "")) for f in fields(detector_class.Config)]
