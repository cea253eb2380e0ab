"""fleet.implant: the same program (by the sha256 of its executable) found suspicious on several
devices: a listener, a raw socket, code run from /tmp or deleted from disk, a changed executable.
One router running an odd binary may be its owner's experiment; the same unknown binary on two
routers of a fleet is something spreading. Needs agents that put `sha256` in that evidence;
older agents' anomalies are simply not counted.
"""
import re
from dataclasses import dataclass

from routerwatch.options import option

from .base import FLEET_DEVICE, FleetDetector, FleetFinding

SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")
# the kinds whose evidence names a program that runs; other integrity.* findings count only
# when their file is code (a shared config file hashes the same on many routers and is no implant)
PROCESS_KINDS = ("conn.new_listener", "conn.raw_socket", "integrity.exec_from_tmp",
                 "integrity.deleted_exe")
FILE_PREFIX = "integrity."


def names_a_program(anomaly, evidence):
    if anomaly.kind in PROCESS_KINDS:
        return True
    if not anomaly.kind.startswith(FILE_PREFIX):
        return False
    mode = evidence.get("mode")
    executable = isinstance(mode, int) and not isinstance(mode, bool) and mode & 0o111
    return evidence.get("class") == "code" or bool(executable)


def program_detail(anomaly):
    """What the device saw of the program: the kind, and the port for a listener."""
    port = anomaly.evidence.get("port")
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        return "%s:%d" % (anomaly.kind, port)
    return anomaly.kind


class Implant(FleetDetector):
    kind = "fleet.implant"
    consumes = ("anomaly",)

    @dataclass(frozen=True)
    class Config:
        min_devices: int = option(
            2, 2, 1000000, "devices reporting one program hash: the same unknown binary "
            "behaving suspiciously on two routers is already more than chance")
        window: int = option(
            30 * 86400, 3600, 365 * 86400, "seconds the devices are counted over: an implant "
            "stays, and spreads slowly")
        max_listed_devices: int = option(
            50, 1, 1000, "devices named in the evidence (the count is always exact)")

    def incident_window(self):
        return float(self.config.window)

    def history_seconds(self):
        return float(self.config.window)

    def observe(self, store, anomaly, now):
        evidence = anomaly.evidence if isinstance(anomaly.evidence, dict) else {}
        if anomaly.device == FLEET_DEVICE or not names_a_program(anomaly, evidence):
            return []
        digest = evidence.get("sha256")
        if not isinstance(digest, str) or not SHA256_RE.match(digest):
            return []
        store.fleet_sight(self.kind, digest, anomaly.device, program_detail(anomaly), now)
        cfg = self.config
        since = now - cfg.window
        devices, _, device_list, detail_list = store.fleet_spread(
            self.kind, digest, since, cfg.max_listed_devices)
        if devices < cfg.min_devices:
            return []
        first, last = store.fleet_sighting_times(self.kind, digest, since)
        exe = evidence.get("exe") if isinstance(evidence.get("exe"), str) else None
        evidence = {"sha256": digest, "devices": devices, "device_list": device_list,
                    "seen_as": detail_list, "exe": exe, "first": first, "last": last,
                    "window": cfg.window}
        summary = "the same program %s (%s) on %d devices" % (digest[:16], exe or "?", devices)
        return [FleetFinding(kind=self.kind, severity="critical", summary=summary,
                             evidence=evidence, device=FLEET_DEVICE, incident=digest,
                             devices=devices)]
