"""The process watcher: one ProcessSnapshot per interval, read from <root>/proc.

What the detectors need from a process is where its code came from: the executable path as the
kernel reports it (/proc/<pid>/exe), whether that file was deleted after start, its command line
and which ports it listens on.

Cheap when idle: a router runs the same ~50-150 processes for weeks, so each scan reads only
/proc/<pid>/stat and the exe link of every process (of a kernel thread only the exe link, which
it does not have), and the rest (cmdline, status, the fd walk for its ports) only for a process
not seen before in that form: a new pid, a reused pid (another start time), or a new program in
the same process (exec changes the exe link, the name or where argv lies in memory). The fds of
every process are walked again only when the set of listening sockets changed. What is
remembered is one entry per listed pid, so it is bounded like the scan.

Processes come and go during a scan; a vanished, half-written or unreadable process is counted
and skipped, never fatal. A scan examines at most MAX_PROCESSES processes (the lowest pids).
"""
import heapq
import os

from ..bounded import BoundedDict
from ..contract import clip
from ..events import ProcessInfo, ProcessSnapshot
from ..parsers.proc_net import is_listening, parse_row
from ..parsers.proc_pid import full_name, parse_cmdline, parse_real_uid, parse_stat

MAX_PROCESSES = 4096          # a router runs ~50-150; a fork bomb must not make a scan unbounded
MAX_FDS_PER_PROCESS = 1024    # socket lookups per process
MAX_SOCKET_LINES = 65536      # lines read from each /proc/net/{tcp,udp}{,6}
MAX_CMDLINE_CHARS = 512
# bytes read of cmdline: enough for MAX_CMDLINE_CHARS characters of any encoding, and to know
# it was longer (clip marks the cut)
CMDLINE_READ_BYTES = 4 * MAX_CMDLINE_CHARS + 4
STAT_READ_BYTES = 4096        # a stat line is < 1 kB even with a 15-byte comm and 52 fields
STATUS_READ_BYTES = 8192
DELETED_SUFFIX = " (deleted)"


class _Known:
    """What a scan learned of one process, kept while the process keeps its identity."""

    __slots__ = ("identity", "name", "cmdline", "uid", "ports", "info", "kernel_thread")

    def __init__(self, identity, name, cmdline, uid, kernel_thread=False):
        self.identity = identity
        self.name = name
        self.cmdline = cmdline
        self.uid = uid
        self.ports = ()
        self.info = None
        self.kernel_thread = kernel_thread


class ProcessSource:
    """Polled source (the processes watcher): ProcessSnapshot."""

    def __init__(self, config):
        self.config = config
        self.root = config.root
        self.procfs = os.path.join(self.root, "proc")
        self.interval = config.intervals.processes
        self.scans = 0
        self.processes_seen = 0
        self.full_reads = 0       # processes read in full (new, reused pid, exec): the costly part
        self.fd_walks = 0
        self._known = BoundedDict(MAX_PROCESSES)   # pid -> _Known
        self._sockets = None      # {listening inode: port} of the last scan
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
        return [ProcessSnapshot(time=now, processes=tuple(self._scan()))]

    # ------------------------------------------------------------------ one scan
    def _scan(self):
        try:
            pids = self._pids()
        except OSError as exc:
            self.failure = "cannot list processes in /proc: %s" % (exc.strerror or exc)
            return []
        # a live system has at least init and this agent: none means /proc is not mounted there
        self.failure = None if pids else "no processes in /proc (not mounted?)"
        self.scans += 1
        sockets = self._listening_inodes()
        sockets_changed = sockets != self._sockets
        self._sockets = sockets
        known = self._known
        for pid in [pid for pid in known.keys() if pid not in pids]:
            known.pop(pid)                       # gone: its pid may come back as another process
        names = {}
        current = []
        for pid in sorted(pids):
            entry = self._refresh(pid, sockets, sockets_changed)
            if entry is None:
                known.pop(pid)
                continue
            names[pid] = entry.name
            current.append((pid, entry))
        infos = []
        for pid, entry in current:
            infos.append(self._info(pid, entry, names))
        self.processes_seen += len(infos)
        return infos

    def _pids(self):
        """The lowest MAX_PROCESSES pids listed in /proc, as a set; those beyond are counted."""
        listed = 0

        def numeric(entries):
            nonlocal listed
            for entry in entries:
                name = entry.name
                if name.isdigit() and name.isascii() and len(name) <= 10:
                    listed += 1
                    yield int(name)

        with os.scandir(self.procfs) as entries:
            # nsmallest keeps a heap of MAX_PROCESSES: a fork bomb's 100k pids pass through
            pids = heapq.nsmallest(MAX_PROCESSES, numeric(entries))
        if listed > MAX_PROCESSES:
            self._over_cap += listed - MAX_PROCESSES
        return set(pids)

    def _refresh(self, pid, sockets, sockets_changed):
        """The remembered entry of pid, read again in full when its identity changed; None when
        it vanished or cannot be read."""
        base = os.path.join(self.procfs, str(pid))
        entry = self._known.get(pid)
        if entry is not None and entry.kernel_thread:
            # most of a router's pids are kernel threads, which never get a program: while the
            # exe link is still absent, nothing of it needs reading again (a usermode helper
            # that execs a program, or the pid reused by a process, has one)
            try:
                os.readlink(os.path.join(base, "exe"))
            except (FileNotFoundError, PermissionError):   # (not root: no exe link to read)
                return entry
            except OSError:
                pass
        try:
            stat = parse_stat(_read(os.path.join(base, "stat"), STAT_READ_BYTES))
        except PermissionError:
            self._denied += 1
            return None
        except OSError:
            self._vanished += 1
            return None
        if stat is None:                         # a dying process's empty or half-written stat
            self._vanished += 1
            return None
        exe_link = self._exe_link(base)
        identity = (stat.start_ticks, stat.name, stat.image, exe_link, stat.ppid)
        if entry is None or entry.kernel_thread or entry.identity[:4] != identity[:4]:
            entry = self._read_in_full(base, stat, identity)
            self._known.set(pid, entry)
            entry.ports = self._ports_of(base, sockets)
        elif sockets_changed:
            entry.ports = self._ports_of(base, sockets)
        entry.identity = identity                # a new parent (reparented to init) is cheap
        return entry

    def _read_in_full(self, base, stat, identity):
        self.full_reads += 1
        try:
            raw_cmdline = _read(os.path.join(base, "cmdline"), CMDLINE_READ_BYTES)
        except OSError:                          # not permitted, or gone since its stat
            raw_cmdline = b""
        try:
            uid = parse_real_uid(_read(os.path.join(base, "status"), STATUS_READ_BYTES))
        except OSError:
            uid = None
        return _Known(identity, full_name(stat.name, raw_cmdline),
                      clip(parse_cmdline(raw_cmdline), MAX_CMDLINE_CHARS), uid,
                      kernel_thread=stat.kernel_thread and identity[3] is None)

    def _info(self, pid, entry, names):
        """The ProcessInfo of an entry; the one of the last scan when nothing in it changed."""
        ppid = entry.identity[4]
        exe, deleted = _split_deleted(entry.identity[3])
        replaced = bool(deleted and exe and os.path.isfile(
            os.path.join(self.root, exe.lstrip("/"))))
        parent_name = names.get(ppid)
        info = entry.info
        if info is not None and (info.ppid, info.parent_name, info.listening_ports,
                                 info.exe_replaced) == (ppid, parent_name, entry.ports, replaced):
            return info
        entry.info = ProcessInfo(
            pid=pid, ppid=ppid, name=entry.name, exe=exe, exe_deleted=deleted,
            cmdline=entry.cmdline, uid=entry.uid, parent_name=parent_name,
            listening_ports=entry.ports, exe_replaced=replaced)
        return entry.info

    def _exe_link(self, base):
        """The /proc/<pid>/exe link text (cut at 1024); None for kernel threads and where reading
        it is not permitted."""
        try:
            target = os.readlink(os.path.join(base, "exe"))
        except OSError:
            return None
        return target.split("\x00", 1)[0][:1024] or None

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

    def _ports_of(self, base, sockets):
        if not sockets:
            return ()
        self.fd_walks += 1
        fd_dir = os.path.join(base, "fd")
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


def _split_deleted(link):
    """(path without " (deleted)", deleted?) of an exe link text."""
    if link is None:
        return None, False
    if link.endswith(DELETED_SUFFIX):
        return link[: -len(DELETED_SUFFIX)] or None, True
    return link, False


def _read(path, limit):
    """Up to limit bytes of a /proc file in one read (os-level: no buffer objects per file)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)
