"""integrity.rom_shadowed: a /rom file replaced (or deleted) in the writable overlay.

/rom is as trusted as the flash chip; code there that is shadowed by a different file in
/overlay/upper runs instead of what the firmware shipped. Replaced programs and libraries are
judged from the first scan (no history needed). A package the owner upgraded also shadows
/rom files; when the database names a newer version than /rom's it is low (info when the file
passes the package checksum). The files every configured router edits
(/etc/config/*, /etc/shadow, host keys, /etc/board.json, rc.d links ...) are `info`, and deleting
the /etc/uci-defaults scripts is what first boot does, so that is not reported at all.
"""
from dataclasses import dataclass

from ..contract import SEVERITIES, clip
from ..events import FileFinding
from .base import Detector, DetectorConfig, Finding
from ..options import option

_SEVERITY_BY_CLASS = {"executable": "high", "library": "high", "script": "medium",
                      "routine": "info", "config": "info", "data": "info"}
# a deleted program weakens the router (e.g. its firewall script) but runs nothing new
_WHITEOUT_SEVERITY = {"executable": "low", "library": "low", "script": "low"}


@dataclass(frozen=True)
class Config(DetectorConfig):
    config_severity: str = option("info", why="severity of an edited /rom config file that is not "
                                  "one of the routine ones (e.g. /etc/sysctl.conf); owners edit "
                                  "these", choices=SEVERITIES)
    owner_scripts: str = option(
        "/etc/rc.local,/etc/profile,/etc/shinit",
        why="comma-separated /rom scripts that OpenWrt documents for owners to edit; shadowed "
            "they are low, not medium (baseline_drift reports their later changes as high)")
    report_whiteouts: bool = option(True, why="report /rom programs and scripts deleted in the "
                                    "overlay (uci-defaults scripts are never reported)")
    report_opaque: bool = option(True, why="report /rom directories hidden by an opaque overlay "
                                 "directory")


class IntegrityRomShadowed(Detector):
    kind = "integrity.rom_shadowed"
    Config = Config
    consumes = (FileFinding,)

    def __init__(self, config):
        super().__init__(config)
        self._owner_scripts = frozenset(
            p.strip() for p in config.owner_scripts.split(",") if p.strip())

    def observe(self, event):
        detail = event.detail
        cls = detail.get("class", "data")
        path = clip(event.path, 512)
        if event.finding == "shadowed":
            severity = _SEVERITY_BY_CLASS.get(cls, "info")
            if cls == "config":
                severity = self.config.config_severity
            elif event.path in self._owner_scripts and severity == "medium":
                severity = "low"
            what = {"executable": "program", "library": "library",
                    "script": "script"}.get(cls, "file")
            summary = "/rom %s %s is shadowed in the overlay by different content" % (what, path)
            if detail.get("package_upgraded") and severity != "info":
                # a newer version of the package than /rom's: the owner upgraded it; with
                # apk the new file also passes its checksum
                severity = "info" if detail.get("package_verified") else "low"
                summary = "/rom %s %s is shadowed by package %s upgraded to %s" % (
                    what, path, clip(detail.get("package", ""), 64),
                    clip(detail.get("package_version", ""), 64))
        elif event.finding == "whiteout":
            if not self.config.report_whiteouts or event.path.startswith("/etc/uci-defaults/"):
                return []
            severity = _WHITEOUT_SEVERITY.get(cls, "info")
            summary = "/rom file %s is deleted in the overlay" % path
        elif event.finding == "opaque":
            if not self.config.report_opaque:
                return []
            severity = "low" if cls in ("executable", "library", "script") else "info"
            summary = "/rom directory %s is hidden by an opaque overlay directory" % path
        else:
            return []
        evidence = {"path": path, "change": event.finding, "class": cls,
                    "sensitive": bool(detail.get("sensitive")), "first_scan": event.first_scan}
        for key in ("sha256", "rom_sha256", "size", "rom_size", "mode", "rom_mode", "link",
                    "rom_link", "legacy", "package", "package_version", "rom_package_version",
                    "package_upgraded", "package_verified"):
            if detail.get(key) is not None:
                value = detail[key]
                evidence[key] = clip(value, 1024) if isinstance(value, str) else value
        return [Finding(kind=self.kind, severity=severity, summary=summary, evidence=evidence,
                        incident=event.path, time=event.time)]


DETECTOR = IntegrityRomShadowed
