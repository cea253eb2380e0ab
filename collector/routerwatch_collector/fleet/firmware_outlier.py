"""fleet.firmware_outlier: one device whose firmware identity differs from its siblings'.

Siblings are the devices reporting the same board, release, revision and kernel in their
inventory; firmware_hash covers the /rom fingerprint and the /rom package database, so identical
firmware hashes identically. When at least `min_siblings` report and one hash is reported by at
least `consensus` of them, each device with another hash is an outlier: a /rom someone rebuilt,
a supply-chain implant. A fleet mid-upgrade is two revisions, so two groups, each consistent; a
group split between two hashes has no consensus and raises nothing. Works from the inventory as
agents send it today.

An outlier ends when its device reports another firmware hash: its siblings' usual one (it was
reflashed from a good image: resolution `usual_firmware`) or any other (`reflashed`; when that
one differs from the siblings too it is a new outlier, so a new anomaly). Its anomaly stays,
marked resolved, and the same odd hash coming back later is raised again. An inventory without
a firmware hash changes nothing: it says nothing about what the device runs.

Kept incrementally: each device's (group, hash) and per-group counts, so an inventory costs its
group's few count rows, plus the minority's devices (bounded) when there is a consensus.
"""
from dataclasses import dataclass

from routerwatch.options import option

from .base import FleetDetector, FleetFinding, FleetResolution

# what an integrity.* anomaly of this severity says about the same router: it is compromised
INTEGRITY_PREFIX = "integrity."
SERIOUS = ("high", "critical")
FIELD_LIMIT = 128


def firmware_group(inventory):
    """'board|release|revision|kernel' from the inventory, or None when it cannot be grouped
    (no hash, no board)."""
    firmware = inventory.firmware if isinstance(inventory.firmware, dict) else {}
    if not inventory.firmware_hash:
        return None
    parts = [firmware.get("board"), firmware.get("DISTRIB_RELEASE"),
             firmware.get("DISTRIB_REVISION"), firmware.get("kernel")]
    parts = [p if isinstance(p, str) else "" for p in parts]
    if not parts[0]:
        return None
    return "|".join(p.replace("|", "/")[:FIELD_LIMIT] for p in parts)


def incident_key(device, firmware_hash):
    """One incident per device and odd hash."""
    return "%s|%s" % (device, firmware_hash)


class FirmwareOutlier(FleetDetector):
    kind = "fleet.firmware_outlier"
    consumes = ("inventory",)

    @dataclass(frozen=True)
    class Config:
        min_siblings: int = option(
            20, 2, 10000000, "devices of one board/release/revision/kernel before any is called "
            "an outlier: below 20, one odd device is more than 5 % and says little")
        consensus: float = option(
            0.95, 0.5, 1.0, "share of the siblings that must report one hash: a fleet split "
            "between two builds has no normal to differ from")
        max_outliers: int = option(
            50, 1, 1000, "outlier devices looked at per inventory (more are found by later "
            "inventories of the group)")

    def observe(self, store, inventory, now):
        mine = inventory.firmware_hash
        if not mine:
            return []          # says nothing of the firmware: the device counts as it did
        group = firmware_group(inventory)
        previous = store.fleet_set_firmware(inventory.device, group, mine)
        if previous is None:
            return []          # nothing changed (a replayed retained inventory)
        total, counts = store.fleet_firmware_counts(group) if group is not None else (0, [])
        out = []
        if previous[1] is not None and mine != previous[1]:
            back = bool(counts) and counts[0][0] == mine
            out.append(FleetResolution(
                kind=self.kind, incident=incident_key(inventory.device, previous[1]),
                reason="usual_firmware" if back else "reflashed",
                summary="now on %s firmware %s" % ("the usual" if back else "other", mine[:16]),
                evidence={"resolved_hash": mine}))
        cfg = self.config
        if group is None or total < cfg.min_siblings or not counts:
            return out
        usual, usual_n = counts[0]
        if usual_n < cfg.consensus * total:
            return out
        # Had the group its consensus before this inventory? Then only this device can be a new
        # outlier; otherwise (the group just reached it) every minority device is looked at.
        stayed = previous[0] == group
        before_total = total if stayed else total - 1
        before_usual = usual_n - (mine == usual) + (stayed and previous[1] == usual)
        settled = before_total >= cfg.min_siblings and before_usual >= cfg.consensus * before_total
        if settled:
            candidates = [(mine, [inventory.device])] if mine != usual else []
        else:
            candidates = [(h, None) for h, _ in counts[1:]]
        n_of = dict(counts)
        findings = out
        budget = cfg.max_outliers
        for firmware_hash, devices in candidates:
            if budget <= 0:
                break
            n = n_of.get(firmware_hash, 1)
            if devices is None:
                devices = store.fleet_firmware_devices(group, firmware_hash, budget)
            for device in devices:
                budget -= 1
                board, release, revision, kernel = group.split("|")
                compromised = store.has_anomaly(device, INTEGRITY_PREFIX, SERIOUS)
                evidence = {"board": board, "release": release, "revision": revision,
                            "kernel": kernel, "firmware_hash": firmware_hash,
                            "usual_hash": usual, "siblings": total, "usual_share":
                            round(usual_n / total, 4), "same_hash_devices": n,
                            "integrity_high": compromised}
                summary = ("firmware of %s differs from %d of its %d siblings (%s %s %s)"
                           % (device, usual_n, total, board, release, revision))
                findings.append(FleetFinding(
                    kind=self.kind, severity="critical" if compromised else "high",
                    summary=summary, evidence=evidence, device=device,
                    incident=incident_key(device, firmware_hash), devices=1))
        return findings
