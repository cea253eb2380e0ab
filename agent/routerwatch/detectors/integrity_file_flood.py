"""integrity.file_flood: the overlay holds more files than the integrity scan tracks.

integrity.max_files bounds the scan's memory. Reaching it is not a counter in the heartbeat but
an anomaly: filling the overlay with junk is how a rooted router would hide a replaced program
from a scan that stops early. The scan keeps what matters (files shadowing /rom, access and
autostart paths, code) and drops bulk data first, so this names where the flood is and what kind
of files were left unchecked.

The package database is read within caps too (bytes, packages, files listed, line length): one
that reaches them is reported the same way, naming the database, since a database bloated past
what any router holds is junk written there (and what it lists beyond the caps goes unread).
"""
from dataclasses import dataclass

from ..contract import SEVERITIES, clip
from ..events import FileFinding
from .base import Detector, DetectorConfig, Finding
from ..options import option

MAX_DIRECTORIES = 5


@dataclass(frozen=True)
class Config(DetectorConfig):
    severity: str = option("medium", why="a healthy router's overlay holds a few thousand files; "
                           "tens of thousands mean junk put there, or a package storing data on "
                           "flash", choices=SEVERITIES)
    code_dropped_severity: str = option(
        "high", why="when even programs, libraries, scripts or autostart files were left "
        "unchecked the flood reached what the scan exists for", choices=SEVERITIES)


class IntegrityFileFlood(Detector):
    kind = "integrity.file_flood"
    Config = Config
    consumes = (FileFinding,)

    def observe(self, event):
        if event.finding != "flood":
            return []
        detail = event.detail
        if detail.get("database"):
            return self._database(event, detail)
        by_rank = detail.get("dropped_by_rank") or {}
        code_dropped = any(by_rank.get(rank) for rank in ("shadows_rom", "access", "code"))
        severity = self.config.code_dropped_severity if code_dropped else self.config.severity
        directories = [{"path": clip(d.get("path", ""), 512), "files": d.get("files")}
                       for d in (detail.get("directories") or [])[:MAX_DIRECTORIES]]
        subtrees = [{"path": clip(d.get("path", ""), 512), "files": d.get("files")}
                    for d in (detail.get("subtrees") or [])[:MAX_DIRECTORIES]]
        evidence = {"path": clip(event.path, 512), "max_files": detail.get("max_files"),
                    "max_path_bytes": detail.get("max_path_bytes"),
                    "files": detail.get("files"), "dropped": detail.get("dropped"),
                    "dropped_by_rank": {str(k)[:32]: v for k, v in by_rank.items()},
                    "too_deep": detail.get("too_deep", 0), "directories": directories,
                    "subtrees": subtrees, "first_scan": event.first_scan}
        summary = ("the overlay holds %s files, %s: %s not checked (%s); most are under %s" % (
            detail.get("files"), _cap_text(detail), _dropped_text(detail),
            "including code" if code_dropped else "bulk data only", clip(event.path, 256)))
        return [Finding(kind=self.kind, severity=severity, summary=summary, evidence=evidence,
                        incident="overlay", time=event.time)]


    def _database(self, event, detail):
        limits = [str(limit)[:32] for limit in (detail.get("limits") or [])][:8]
        evidence = {"path": clip(event.path, 512), "database": clip(detail["database"], 512),
                    "limits": limits, "first_scan": event.first_scan}
        for key in ("bytes_read", "max_bytes", "packages", "max_packages", "files",
                    "max_files", "overlong_lines", "max_line_bytes", "rejected_lines"):
            evidence[key] = detail.get(key)
        reached = {"bytes": "more than %s bytes" % detail.get("max_bytes"),
                   "packages": "more than %s packages" % detail.get("max_packages"),
                   "files": "more than %s files" % detail.get("max_files"),
                   "line_length": "%s lines longer than %s bytes" % (
                       detail.get("overlong_lines"), detail.get("max_line_bytes"))}
        summary = ("the package database %s holds %s: what it lists beyond that is not "
                   "checked" % (clip(detail["database"], 256), ", ".join(
                       reached.get(limit, limit) for limit in limits) or "more than it reads"))
        return [Finding(kind=self.kind, severity=self.config.severity, summary=summary,
                        evidence=evidence, incident="package_database", time=event.time)]


def _cap_text(detail):
    files, max_files = detail.get("files") or 0, detail.get("max_files") or 0
    if detail.get("max_path_bytes") and files <= max_files:
        # fewer files than the cap, but names long enough to fill the memory it allows
        return "with longer names than the scan keeps (%s bytes of paths for " \
               "integrity.max_files=%s)" % (detail["max_path_bytes"], max_files)
    return "more than integrity.max_files=%s" % max_files


def _dropped_text(detail):
    text = "%s files" % detail.get("dropped", 0)
    if detail.get("too_deep"):
        text += " and %s directories nested too deep" % detail["too_deep"]
    return text


DETECTOR = IntegrityFileFlood
