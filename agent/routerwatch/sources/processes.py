"""The process watcher: one ProcessSnapshot per interval, read with psutil from <root>/proc.

What the detectors need from a process is where its code came from: the executable path as the
kernel reports it (/proc/<pid>/exe), whether that file was deleted after start, and which ports
it listens on. psutil reads stat, status and cmdline; the exe link is read here directly because
psutil drops the " (deleted)" suffix (and decides that by looking at *this* machine's files,
which is wrong under a root prefix).

Processes come and go during a scan; NoSuchProcess, ZombieProcess and AccessDenied are counted
and skipped, never fatal. A scan examines at most MAX_PROCESSES processes.
"""
import os

import psutil

from ..contract import clip
from ..events import ProcessInfo, ProcessSnapshot
from ..parsers.proc_net import is_listening, parse_row

MAX_PROCESSES = 4096          # a router runs ~50-150; a fork bomb must not make a scan unbounded
MAX_FDS_PER_PROCESS = 1024    # socket lookups per process
MAX_SOCKET_LINES = 65536      # lines read from each /proc/net/{tcp,udp}{,6}
MAX_CMDLINE_CHARS = 512
DELETED_SUFFIX = " (deleted)"


class ProcessSource:
    """Polled source (the processes watcher): ProcessSnapshot."""

    def __init__(self, config):
        self.config = config
        self.root = config.root
        self.procfs = os.path.join(self.root, "proc")
        self.interval = config.intervals.processes
        self.scans = 0
        self.processes_seen = 0
        self._vanished = 0
        self._denied = 0
        self._over_cap = 0
        self.failure = None       # why the last scan could not list processes (agent.degraded)

    def counters(self):
        return {"process_scans": self.scans, "processes_examined": self.processes_seen}

    def drops(self):
        return {"processes_vanished": self._vanished, "processes_denied": self._denied,
                "processes_over_cap": self._over_cap}

    def close(self):
        pass

    def poll(self, now):
        saved = psutil.PROCFS_PATH
        # psutil reads one global procfs path; set it only for the duration of this scan
        psutil.PROCFS_PATH = self.procfs
        try:
            return [ProcessSnapshot(time=now, processes=tuple(self._scan()))]
        finally:
            psutil.PROCFS_PATH = saved

    # ------------------------------------------------------------------ one scan
    def _scan(self):
        try:
            pids = sorted(psutil.pids())
        except OSError as exc:
            self.failure = "cannot list processes in /proc: %s" % (exc.strerror or exc)
            return []
        except IndexError:   # psutil on a /proc without a single process directory
            pids = []
        # a live system has at least init and this agent: none means /proc is not mounted there
        self.failure = None if pids else "no processes in /proc (not mounted?)"
        self.scans += 1
        if len(pids) > MAX_PROCESSES:
            self._over_cap += len(pids) - MAX_PROCESSES
            pids = pids[:MAX_PROCESSES]
        sockets = self._listening_inodes()
        basics = {}
        for pid in pids:
            basic = self._basic(pid)
            if basic is not None:
                basics[pid] = basic
        infos = []
        for pid, (process, name, ppid) in basics.items():
            info = self._describe(process, pid, name, ppid, basics, sockets)
            if info is not None:
                infos.append(info)
        self.processes_seen += len(infos)
        return infos

    def _basic(self, pid):
        """(psutil.Process, name, ppid) or None when it vanished or is unreadable."""
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                return process, process.name(), process.ppid()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            self._vanished += 1
        except psutil.AccessDenied:
            self._denied += 1
        except (OSError, ValueError, IndexError):
            self._vanished += 1  # a half-written stat file of a dying process
        return None

    def _describe(self, process, pid, name, ppid, basics, sockets):
        try:
            with process.oneshot():
                try:
                    cmdline = process.cmdline()
                except psutil.AccessDenied:
                    cmdline = []
                try:
                    uid = process.uids().real
                except (psutil.AccessDenied, IndexError):
                    uid = None
        except psutil.ZombieProcess:
            cmdline, uid = [], None
        except psutil.NoSuchProcess:
            self._vanished += 1
            return None
        except (OSError, ValueError):
            self._vanished += 1
            return None
        exe, deleted = self._exe(pid)
        replaced = bool(deleted and exe and os.path.isfile(
            os.path.join(self.root, exe.lstrip("/"))))
        parent = basics.get(ppid)
        return ProcessInfo(
            pid=pid, ppid=ppid, name=str(name)[:64], exe=exe, exe_deleted=deleted,
            cmdline=clip(" ".join(cmdline), MAX_CMDLINE_CHARS), uid=uid,
            parent_name=str(parent[1])[:64] if parent else None,
            listening_ports=self._ports_of(pid, sockets), exe_replaced=replaced)

    def _exe(self, pid):
        """(path without ' (deleted)', deleted?) from /proc/<pid>/exe; (None, False) for kernel
        threads and where reading it is not permitted."""
        try:
            target = os.readlink(os.path.join(self.procfs, str(pid), "exe"))
        except OSError:
            return None, False
        target = target.split("\x00", 1)[0][:1024]
        if target.endswith(DELETED_SUFFIX):
            return target[: -len(DELETED_SUFFIX)], True
        return (target or None), False

    # ------------------------------------------------------------------ sockets
    def _listening_inodes(self):
        """{socket inode: port} of listening TCP and bound, unconnected UDP sockets."""
        found = {}
        for proto in ("tcp", "tcp6", "udp", "udp6"):
            try:
                with open(os.path.join(self.procfs, "net", proto), "r", encoding="ascii",
                          errors="replace") as handle:
                    for number, line in enumerate(handle):
                        if number > MAX_SOCKET_LINES:
                            break
                        row = parse_row(line.rstrip("\n"), proto)
                        if row is not None and row.inode and is_listening(row):
                            found[row.inode] = row.local_port
            except OSError:
                continue
        return found

    def _ports_of(self, pid, sockets):
        if not sockets:
            return ()
        fd_dir = os.path.join(self.procfs, str(pid), "fd")
        try:
            names = os.listdir(fd_dir)
        except OSError:   # not permitted (another user's process without root), or gone
            return ()
        ports = set()
        for name in names[:MAX_FDS_PER_PROCESS]:
            try:
                target = os.readlink(os.path.join(fd_dir, name))
            except OSError:
                continue
            if target.startswith("socket:[") and target.endswith("]"):
                try:
                    port = sockets.get(int(target[8:-1]))
                except ValueError:
                    continue
                if port is not None:
                    ports.add(port)
        return tuple(sorted(ports))

