"""integrity.special_file: a FIFO, device node or socket in the overlay where a file belongs.

A router never makes these over a /rom file or in the places logins, autostart and code are read
from. A FIFO over /etc/passwd blocks every login (or feeds it what the writer chooses); a device
node in /usr/sbin gives raw access to hardware under a harmless name. The scan never opens them
(reading a FIFO blocks, a device reads forever); whiteouts (0/0 character devices) are not special
files but deletions, reported by integrity.rom_shadowed.
"""
from dataclasses import dataclass

from ..contract import SEVERITIES, clip
from ..events import FileFinding
from .base import Detector, DetectorConfig, Finding
from ..options import option

_WHAT = {"fifo": "FIFO", "char_device": "character device", "block_device": "block device",
         "socket": "socket"}


@dataclass(frozen=True)
class Config(DetectorConfig):
    severity: str = option("high", why="over a /rom file or on a login/autostart path it takes "
                           "the place of what the router reads there", choices=SEVERITIES)
    code_dir_severity: str = option(
        "medium", why="in a program or library directory (/usr/sbin, /lib ...) without shadowing "
        "anything: nothing reads it by name yet", choices=SEVERITIES)


class IntegritySpecialFile(Detector):
    kind = "integrity.special_file"
    Config = Config
    consumes = (FileFinding,)

    def observe(self, event):
        if event.finding != "special_file":
            return []
        detail = event.detail
        shadows = bool(detail.get("shadows_rom"))
        sensitive = bool(detail.get("sensitive"))
        severity = self.config.severity if shadows or sensitive else self.config.code_dir_severity
        file_type = detail.get("file_type", "special")
        path = clip(event.path, 512)
        evidence = {"path": path, "file_type": file_type, "mode": detail.get("mode"),
                    "shadows_rom": shadows, "class": detail.get("class", "data"),
                    "sensitive": sensitive, "first_scan": event.first_scan}
        for key in ("rom_mode", "rom_size", "rdev"):
            if detail.get(key) is not None:
                evidence[key] = detail[key]
        summary = "%s %s in the overlay%s" % (
            _WHAT.get(file_type, "special file"), path,
            " shadows the /rom file" if shadows else "")
        return [Finding(kind=self.kind, severity=severity, summary=summary, evidence=evidence,
                        incident=event.path, time=event.time)]


DETECTOR = IntegritySpecialFile
