"""integrity.package_mismatch: the overlay disagrees with the package database.

Two findings, both judged from the first scan:
- a file of an installed package whose content fails the checksum apk recorded for it (`Z:`),
  or an opkg conffile that differs from the sha256 opkg recorded at install;
- an executable in the overlay that is neither in /rom nor listed by any installed package: a
  program nobody installed. Packages the owner installed are listed in the database, so their
  files are not anomalies just by existing.
Configuration files are meant to be edited: the routine ones (/etc/config/*, /etc/shadow ...)
are not reported, other /etc files and conffiles failing their checksum are `info`; programs and
libraries failing theirs are `high`.
"""
from dataclasses import dataclass

from ..contract import SEVERITIES, clip
from ..events import FileFinding
from .base import Detector, DetectorConfig, Finding
from ..options import option

_MISMATCH_SEVERITY = {"executable": "high", "library": "high", "script": "medium",
                      "routine": "info", "config": "info", "data": "low"}
# autostart places: a script nobody installed there runs at every boot or event
_AUTOSTART = ("/etc/init.d/", "/etc/rc.d/", "/etc/hotplug.d/", "/etc/uci-defaults/",
              "/etc/crontabs/", "/etc/rc.local", "/etc/profile.d/", "/www/cgi-bin/")


@dataclass(frozen=True)
class Config(DetectorConfig):
    unowned_script_severity: str = option(
        "low", why="an executable script in the overlay that no package owns, outside the "
        "autostart places (owners keep their own scripts)", choices=SEVERITIES)
    unowned_autostart_severity: str = option(
        "medium", why="an executable script no package owns in init.d, rc.d, hotplug.d, "
        "uci-defaults, crontabs or cgi-bin: it runs without anyone starting it",
        choices=SEVERITIES)
    report_routine: bool = option(
        False, why="also report (as info) package config files every router edits failing "
        "their shipped checksum (/etc/config/*, /etc/shadow ...); baseline_drift covers their "
        "later changes")
    unowned_binary_severity: str = option(
        "high", why="a compiled (ELF) program in the overlay that no package owns",
        choices=SEVERITIES)


class IntegrityPackageMismatch(Detector):
    kind = "integrity.package_mismatch"
    Config = Config
    consumes = (FileFinding,)

    def observe(self, event):
        detail = event.detail
        cls = detail.get("class", "data")
        path = clip(event.path, 512)
        evidence = {"path": path, "class": cls, "sensitive": bool(detail.get("sensitive")),
                    "first_scan": event.first_scan}
        if event.finding == "package_mismatch":
            if cls == "routine" and not self.config.report_routine:
                return []
            severity = _MISMATCH_SEVERITY.get(cls, "low")
            if detail.get("conffile"):
                severity = "info" if cls in ("routine", "config") else severity
            evidence.update(reason="checksum", package=clip(detail.get("package", ""), 128),
                            version=clip(detail.get("version", ""), 128),
                            algorithm=detail.get("algorithm"), expected=detail.get("expected"),
                            actual=detail.get("actual"), sha256=detail.get("sha256"),
                            size=detail.get("size"), conffile=bool(detail.get("conffile")))
            summary = "%s of package %s fails its %s checksum" % (
                path, evidence["package"], detail.get("algorithm"))
        elif event.finding == "new_executable":
            if detail.get("elf") or cls in ("executable", "library"):
                severity = self.config.unowned_binary_severity
            elif event.path.startswith(_AUTOSTART):
                severity = self.config.unowned_autostart_severity
            else:
                severity = self.config.unowned_script_severity
            evidence.update(reason="unowned", sha256=detail.get("sha256"),
                            size=detail.get("size"), mode=detail.get("mode"),
                            elf=bool(detail.get("elf")))
            summary = "executable %s in the overlay belongs to no installed package" % path
        else:
            return []
        return [Finding(kind=self.kind, severity=severity, summary=summary, evidence=evidence,
                        incident=event.path, time=event.time)]


DETECTOR = IntegrityPackageMismatch
