"""integrity.firmware_changed: the firmware is not the one this router ran before.

The integrity source remembers the firmware identity (release, board, model, kernel, a stat-only
fingerprint of /rom and the hash of /rom's package database) in the state dir. A sysupgrade
changes the release version: info (low for a downgrade, which reopens fixed holes). The same
claimed version with other /rom content is what a tampered image looks like: high when the
package set is unchanged too (same packages, different files), medium when the package set
changed (an image rebuilt with other packages under the same version, e.g. by the image
builder). The same /rom with another kernel is medium.
"""
import re
from dataclasses import dataclass

from ..contract import SEVERITIES, clip
from ..events import FirmwareIdentity
from ..parsers.openwrt_release import release_version
from .base import Detector, DetectorConfig, Finding
from ..options import option


@dataclass(frozen=True)
class Config(DetectorConfig):
    upgrade_severity: str = option("info", why="a sysupgrade to another release version is "
                                   "normal maintenance", choices=SEVERITIES)
    downgrade_severity: str = option("low", why="going back to an older release reopens fixed "
                                     "vulnerabilities", choices=SEVERITIES)


class IntegrityFirmwareChanged(Detector):
    kind = "integrity.firmware_changed"
    Config = Config
    consumes = (FirmwareIdentity,)

    def __init__(self, config):
        super().__init__(config)
        self._reported = None   # identity hash already judged in this run

    def observe(self, event):
        previous = event.previous
        if not previous or not event.previous_hash or event.identity_hash == event.previous_hash:
            return []
        if self._reported == event.identity_hash:
            return []
        self._reported = event.identity_hash
        before = previous.get("release") if isinstance(previous.get("release"), dict) else {}
        version_before, version_now = release_version(before), release_version(event.release)
        evidence = {
            "release": clip(version_now.strip(), 128),
            "previous_release": clip(version_before.strip(), 128),
            "kernel": clip(event.kernel, 128),
            "previous_kernel": clip(str(previous.get("kernel", "")), 128),
            "board": clip(event.board, 128),
            "previous_board": clip(str(previous.get("board", "")), 128),
            "rom_hash": event.rom_hash, "previous_rom_hash": str(previous.get("rom_hash", "")),
            "rom_packages_hash": event.rom_packages_hash,
            "previous_rom_packages_hash": str(previous.get("rom_packages_hash", "")),
            "identity_hash": event.identity_hash, "previous_hash": event.previous_hash,
        }
        if version_before != version_now:
            older = _version_key(event.release.get("DISTRIB_RELEASE", "")) < _version_key(
                before.get("DISTRIB_RELEASE", ""))
            severity = self.config.downgrade_severity if older else self.config.upgrade_severity
            summary = "firmware changed from %s to %s (%s)" % (
                evidence["previous_release"] or "unknown", evidence["release"] or "unknown",
                "downgrade" if older else "sysupgrade")
        elif event.rom_hash != previous.get("rom_hash", ""):
            same_packages = event.rom_packages_hash == previous.get("rom_packages_hash", "")
            severity = "high" if same_packages else "medium"
            summary = "firmware still claims %s but /rom content differs%s" % (
                evidence["release"] or "the same version",
                " (same packages)" if same_packages else " (other packages)")
        elif event.kernel != previous.get("kernel", ""):
            severity = "medium"
            summary = "kernel changed from %s to %s under the same firmware %s" % (
                evidence["previous_kernel"], evidence["kernel"], evidence["release"])
        else:
            severity = "low"
            summary = "firmware identity changed (board %s, model %s)" % (
                evidence["board"], clip(event.model, 64))
        return [Finding(kind=self.kind, severity=severity, summary=summary, evidence=evidence,
                        incident=event.identity_hash, time=event.time)]


def _version_key(text):
    """'23.05.3' -> (23, 5, 3); non-numeric versions (SNAPSHOT) sort as newest."""
    if not re.match(r"\A\d+(\.\d+)*", text):
        return (10 ** 6,)
    return tuple(int(part) for part in re.findall(r"\d+", text.split("-")[0])[:4])


DETECTOR = IntegrityFirmwareChanged
