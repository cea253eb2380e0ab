"""integrity.exec_from_tmp: a process whose program lives in RAM-backed scratch space.

Nothing OpenWrt ships runs from /tmp (on OpenWrt /var is a symlink into it) or /dev/shm; droppers
do, because those are writable and vanish at reboot (Mirai, the 7777/xlogin kits, KV-botnet).
No history needed: this is judged on the first scan. A shell or interpreter started on a script
in those places is reported too, one step lower.
"""
import os
from dataclasses import dataclass

from ..contract import SEVERITIES, clip
from ..events import ProcessSnapshot
from .base import Detector, DetectorConfig, Finding
from ..options import option


@dataclass(frozen=True)
class Config(DetectorConfig):
    prefixes: str = option("/tmp/,/var/,/dev/shm/,/run/shm/",
                           why="comma-separated directories whose programs are reported "
                               "(RAM-backed and writable by anything)")
    allowed: str = option("", why="comma-separated path prefixes that are never reported, e.g. "
                          "a vendor tool the owner runs from /tmp on purpose")
    interpreters: str = option("sh,ash,bash,busybox,python,python3,lua,ucode,perl,php-cli",
                               why="programs whose script argument in those directories is "
                                   "reported as well")
    script_severity: str = option("medium", why="severity when an interpreter runs a script "
                                  "from those directories", choices=SEVERITIES)


class IntegrityExecFromTmp(Detector):
    kind = "integrity.exec_from_tmp"
    Config = Config
    consumes = (ProcessSnapshot,)

    def __init__(self, config):
        super().__init__(config)
        self._prefixes = _split(config.prefixes)
        self._allowed = _split(config.allowed)
        self._interpreters = frozenset(_split(config.interpreters))

    def _suspicious(self, path):
        return bool(path) and path.startswith(self._prefixes) and not (
            self._allowed and path.startswith(self._allowed))

    def observe(self, snapshot):
        findings = []
        for process in snapshot.processes:
            if self._suspicious(process.exe):
                findings.append(self._finding(snapshot.time, process, process.exe, "high",
                                              "program"))
                continue
            if process.exe and os.path.basename(process.exe) in self._interpreters:
                script = next((arg for arg in process.cmdline.split()[1:4]
                               if self._suspicious(arg)), None)
                if script:
                    findings.append(self._finding(snapshot.time, process, script,
                                                  self.config.script_severity, "script"))
        return findings

    def _finding(self, now, process, path, severity, what):
        evidence = {"pid": process.pid, "name": process.name, "exe": clip(process.exe or "", 512),
                    "deleted": process.exe_deleted, "cmdline": process.cmdline,
                    "uid": process.uid, "ppid": process.ppid, "parent": process.parent_name,
                    "listening_ports": list(process.listening_ports), "what": what}
        summary = "process %d (%s) runs %s %s%s" % (
            process.pid, process.name, what, clip(path, 256),
            " (deleted)" if process.exe_deleted and what == "program" else "")
        if process.listening_ports:
            summary += ", listening on %s" % ",".join(map(str, process.listening_ports[:8]))
        return Finding(kind=self.kind, severity=severity, summary=summary, evidence=evidence,
                       incident=clip(path, 512), time=now)


def _split(text):
    return tuple(part.strip() for part in text.split(",") if part.strip())


DETECTOR = IntegrityExecFromTmp
