"""integrity.deleted_exe: a process whose program file was deleted after it started.

Malware deletes its binary to leave nothing on disk (KV-botnet, Mirai): /proc/<pid>/exe then
reads "<path> (deleted)". High from the first scan, critical when the deleted program lived in
/tmp, /var or /dev/shm. A package upgrade also replaces a running program's file; when a file of
the same name exists again the finding is lowered (restart the service, then it goes away).
"""
from dataclasses import dataclass

from ..contract import SEVERITIES, clip
from ..events import ProcessSnapshot
from .base import Detector, DetectorConfig, Finding
from ..options import option


@dataclass(frozen=True)
class Config(DetectorConfig):
    scratch_prefixes: str = option("/tmp/,/var/,/dev/shm/,/run/shm/",
                                   why="a deleted program from these RAM-backed directories "
                                       "is critical")
    replaced_severity: str = option("medium", why="severity when a file of that name exists "
                                    "again on disk (typically a package upgrade of a running "
                                    "service)", choices=SEVERITIES)


class IntegrityDeletedExe(Detector):
    kind = "integrity.deleted_exe"
    Config = Config
    consumes = (ProcessSnapshot,)

    def __init__(self, config):
        super().__init__(config)
        self._scratch = tuple(p.strip() for p in config.scratch_prefixes.split(",") if p.strip())

    def observe(self, snapshot):
        findings = []
        for process in snapshot.processes:
            if not process.exe_deleted or not process.exe:
                continue
            from_scratch = process.exe.startswith(self._scratch)
            if from_scratch:
                severity = "critical"
            elif process.exe_replaced:
                severity = self.config.replaced_severity
            else:
                severity = "high"
            evidence = {"pid": process.pid, "name": process.name,
                        "exe": clip(process.exe, 512), "replaced_on_disk": process.exe_replaced,
                        "cmdline": process.cmdline, "uid": process.uid, "ppid": process.ppid,
                        "parent": process.parent_name,
                        "listening_ports": list(process.listening_ports)}
            summary = "process %d (%s) runs %s, which was deleted from disk%s" % (
                process.pid, process.name, clip(process.exe, 256),
                " and replaced by another file" if process.exe_replaced and not from_scratch
                else "")
            findings.append(Finding(kind=self.kind, severity=severity, summary=summary,
                                    evidence=evidence, incident=clip(process.exe, 512),
                                    time=snapshot.time))
        return findings


DETECTOR = IntegrityDeletedExe
