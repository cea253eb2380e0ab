"""integrity.baseline_drift: a tracked file changed since the baseline.

The baseline is taken at first start (or supplied by the operator), so it quiets what is
ordinary for this router; what changes afterwards is reported here, once per new content. This
is also where later changes to the paths that give access are reported, with a severity by path:
login keys and accounts, boot/cron/hotplug hooks -> high; /etc/shadow (a password change), /www
-> medium; the access-related UCI files -> low; other routine config -> info. Files that an
installed package lists (a package the owner installed or upgraded) are at most low.
"""
import fnmatch
from dataclasses import dataclass

from ..contract import clip
from ..events import FileFinding
from .base import Detector, DetectorConfig, Finding
from ..options import option

_BY_PATH = (
    ("high", ("/etc/dropbear/authorized_keys", "/root/.ssh/authorized_keys", "/etc/passwd",
              "/etc/rc.local", "/etc/crontabs/*", "/etc/init.d/*", "/etc/hotplug.d/*",
              "/etc/uci-defaults/*", "/etc/profile", "/etc/profile.d/*", "/etc/shinit",
              "/etc/sudoers", "/etc/sudoers.d/*", "/www/cgi-bin/*")),
    ("medium", ("/etc/shadow", "/etc/group", "/www/*")),
    ("low", ("/etc/config/dropbear", "/etc/config/rpcd", "/etc/config/uhttpd",
             "/etc/config/firewall")),
)
_BY_CLASS = {"executable": "high", "library": "high", "script": "medium", "routine": "info",
             "config": "low", "data": "info"}
_ORDER = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class Config(DetectorConfig):
    report_routine: bool = option(True, why="also report (as info) changes to the routine "
                                  "config every router edits, e.g. /etc/config/network")
    ignore: str = option("", why="comma-separated glob patterns of paths never reported, e.g. "
                         "/etc/config/luci_statistics,/etc/myapp/*")


class IntegrityBaselineDrift(Detector):
    kind = "integrity.baseline_drift"
    Config = Config
    consumes = (FileFinding,)

    def __init__(self, config):
        super().__init__(config)
        self._ignore = tuple(p.strip() for p in config.ignore.split(",") if p.strip())

    def observe(self, event):
        if event.finding != "baseline_drift":
            return []
        path = event.path
        if any(fnmatch.fnmatchcase(path, pattern) for pattern in self._ignore):
            return []
        detail = event.detail
        cls = detail.get("class", "data")
        change = detail.get("change", "modified")
        severity = None
        for level, patterns in _BY_PATH:
            if any(fnmatch.fnmatchcase(path, p) for p in patterns):
                severity = level
                break
        if severity is None:
            severity = _BY_CLASS.get(cls, "info")
        if change == "removed":
            # the path went back to the /rom version or away: nothing new runs
            severity = "low" if _ORDER.index(severity) >= _ORDER.index("medium") else "info"
        if detail.get("package_owned") and _ORDER.index(severity) > _ORDER.index("low"):
            severity = "info" if detail.get("package_verified") else "low"
        if severity == "info" and cls == "routine" and not self.config.report_routine:
            return []
        evidence = {"path": clip(path, 512), "change": change, "class": cls,
                    "sensitive": bool(detail.get("sensitive")),
                    "package_owned": bool(detail.get("package_owned"))}
        for key in ("sha256", "baseline_sha256", "size", "baseline_size", "mode",
                    "baseline_mode"):
            if detail.get(key) is not None:
                evidence[key] = detail[key]
        summary = "%s %s since the baseline" % (clip(path, 512), {
            "added": "appeared", "removed": "disappeared", "modified": "changed",
            "mode": "changed mode"}.get(change, "changed"))
        return [Finding(kind=self.kind, severity=severity, summary=summary, evidence=evidence,
                        incident=path, time=event.time)]


DETECTOR = IntegrityBaselineDrift
