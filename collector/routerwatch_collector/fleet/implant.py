"""fleet.implant: the same program (by the sha256 of its executable) found suspicious on several
devices: a listener, a raw socket, code run from /tmp or deleted from disk, a changed executable.
One router running an odd binary may be its owner's experiment; the same unknown binary on two
routers of a fleet is something spreading. Needs agents that put `sha256` in that evidence;
older agents' anomalies are simply not counted.
"""
import re
from dataclasses import dataclass

from routerwatch.options import option

from .base import FLEET_DEVICE, FleetFinding, SpreadConfig, SpreadDetector

SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")
# the kinds whose evidence names a program that runs; other integrity.* findings count only
# when their file is code (a shared config file hashes the same on many routers and is no implant)
PROCESS_KINDS = ("conn.new_listener", "conn.raw_socket", "integrity.exec_from_tmp",
                 "integrity.deleted_exe")
FILE_PREFIX = "integrity."
# the agent's file classes (sources/overlay_paths.classify) that are compiled code
CODE_CLASSES = ("executable", "library")
# a file mode as the agent sends it ("%o" of st_mode, e.g. "100755"); older messages an int
MODE_RE = re.compile(r"\A[0-7]{1,7}\Z")


def file_mode(value):
    """The mode bits of an evidence `mode`, or None when it is no mode."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 0o10000000 else None
    if isinstance(value, str) and MODE_RE.match(value):
        return int(value, 8)
    return None


def names_a_program(anomaly, evidence):
    """Whether the anomaly's sha256 is that of something that runs: a process's program, or an
    integrity file finding about a compiled program or library, or a file someone may execute
    (any x bit). A file that is no code (a config, a crontab) hashes the same on every router
    that shares it and is no implant."""
    if anomaly.kind in PROCESS_KINDS:
        return True
    if not anomaly.kind.startswith(FILE_PREFIX):
        return False
    mode = file_mode(evidence.get("mode"))
    return evidence.get("class") in CODE_CLASSES or evidence.get("elf") is True or \
        (mode is not None and bool(mode & 0o111))


def program_detail(anomaly):
    """What the device saw of the program: the kind, and the port for a listener."""
    port = anomaly.evidence.get("port")
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        return "%s:%d" % (anomaly.kind, port)
    return anomaly.kind


class Implant(SpreadDetector):
    kind = "fleet.implant"
    consumes = ("anomaly",)

    @dataclass(frozen=True)
    class Config(SpreadConfig):
        min_devices: int = option(
            2, 2, 1000000, "devices reporting one program hash: the same unknown binary "
            "behaving suspiciously on two routers is already more than chance")
        window: int = option(
            30 * 86400, 3600, 365 * 86400, "seconds the devices are counted over: an implant "
            "stays, and spreads slowly")

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
        devices, _, first, last = store.fleet_spread_counts(self.kind, digest, since)
        if devices < cfg.min_devices:
            return []
        device_list, detail_list = store.fleet_spread_samples(self.kind, digest, since,
                                                              cfg.max_listed_devices)
        exe = evidence.get("exe") if isinstance(evidence.get("exe"), str) else None
        evidence = {"sha256": digest, "devices": devices, "device_list": device_list,
                    "seen_as": detail_list, "exe": exe, "first": first, "last": last,
                    "window": cfg.window}
        summary = "the same program %s (%s) on %d devices" % (digest[:16], exe or "?", devices)
        return [FleetFinding(kind=self.kind, severity="critical", summary=summary,
                             evidence=evidence, device=FLEET_DEVICE, incident=digest,
                             devices=devices)]
