"""ListenerSource: listening sockets from <root>/proc/net/{tcp,tcp6,udp,udp6} and raw sockets from
<root>/proc/net/{raw,raw6} -> ListenerSnapshot.

Owners are found the way the kernel leaves them: /proc/<pid>/fd/* are symlinks to
"socket:[<inode>]". Walking every process's fds is the costly part, so owners are remembered per
inode and the walk runs only when a listening inode without a known owner shows up (and stops as
soon as all of them are found). Without permission (not root) owners stay unknown; the sockets
are still reported. Everything is read under the root prefix, so a fixture tree works the same.
ListeningSocket.exe is the /proc/<pid>/exe link as the kernel gives it, so a program deleted
from disk keeps its " (deleted)" suffix there.
"""
import os
import sys

from ..bounded import BoundedDict
from ..contract import clip
from ..events import ListenerSnapshot, ListeningSocket, RawSocket
from ..parsers.proc_net import PROTOCOLS, RAW_PROTOCOLS, is_listening, parse_row

MAX_ROWS_PER_FILE = 65536     # a router has hundreds of sockets; bounds a runaway file
OWNER_CACHE = 4096
MAX_FDS_PER_WALK = 200000     # fd symlinks read by one owner walk at most


class ListenerSource:
    def __init__(self, config, byteorder=sys.byteorder):
        self.interval = config.intervals.connections
        self.max_listeners = config.connections.max_listeners
        self.proc = os.path.join(config.root, "proc")
        self.byteorder = byteorder
        self._owners = BoundedDict(OWNER_CACHE)     # inode -> (pid, name, exe) or None
        self._polls = 0
        self._unparsed = 0
        self._owner_walks = 0
        self._dropped = 0
        self._unreadable = 0
        self.failure = None       # why the last read failed (agent.degraded)

    def poll(self, now):
        self._polls += 1
        rows = []
        readable = 0
        for proto in PROTOCOLS:
            found = self._rows(proto, is_listening)
            if found is not None:
                readable += 1
                rows.extend(found)
        if not readable:
            # nothing to judge: an empty snapshot would become an empty baseline, and then
            # every service would look new on the next read
            self._unreadable += 1
            self.failure = "cannot read /proc/net/%s" % ", ".join(PROTOCOLS)
            return []
        self.failure = None
        rows = self._capped(rows)
        raw_rows = []
        for proto in RAW_PROTOCOLS:
            raw_rows.extend(self._rows(proto, None) or ())
        raw_rows = self._capped(raw_rows)
        current = {row.inode for row in rows} | {row.inode for row in raw_rows}
        for inode in self._owners.keys():
            if inode not in current:
                self._owners.pop(inode)    # closed: its inode may name another socket later
        wanted = {inode for inode in current if inode and inode not in self._owners}
        if wanted:
            self._walk_owners(wanted)
        sockets = []
        for row in rows:
            pid, name, exe = self._owner(row.inode)
            sockets.append(ListeningSocket(proto=row.proto, address=row.local_address,
                                           port=row.local_port, inode=row.inode, pid=pid,
                                           process=name, exe=exe))
        raw_sockets = []
        for row in raw_rows:
            pid, name, exe = self._owner(row.inode)
            raw_sockets.append(RawSocket(proto=row.proto, protocol=row.local_port,
                                         inode=row.inode, pid=pid, process=name, exe=exe))
        return [ListenerSnapshot(time=now, sockets=tuple(sockets),
                                 raw_sockets=tuple(raw_sockets))]

    def _capped(self, rows):
        """At most max_listeners rows; what is cut off is counted as dropped."""
        if len(rows) > self.max_listeners:
            self._dropped += len(rows) - self.max_listeners
            rows = rows[: self.max_listeners]
        return rows

    def _owner(self, inode):
        owner = self._owners.get(inode) if inode else None
        return owner if owner else (None, None, None)

    def _rows(self, proto, keep):
        """Parsed rows of /proc/net/<proto> that keep() accepts (all when keep is None), or
        None when the file cannot be read."""
        path = os.path.join(self.proc, "net", proto)
        try:
            handle = open(path, "r", encoding="ascii", errors="replace")
        except OSError:
            return None    # no IPv6, or the file is not there in a fixture
        rows = []
        with handle:
            for number, line in enumerate(handle):
                if number == 0 or not line.strip():
                    continue   # the header
                if number > MAX_ROWS_PER_FILE:
                    break
                row = parse_row(line, proto, self.byteorder)
                if row is None:
                    self._unparsed += 1
                elif keep is None or keep(row):
                    rows.append(row)
        return rows

    def _walk_owners(self, wanted):
        """Find the processes holding the wanted inodes; unfound ones are remembered as None."""
        self._owner_walks += 1
        remaining = set(wanted)
        budget = MAX_FDS_PER_WALK
        try:
            pids = [name for name in os.listdir(self.proc) if name.isdigit()]
        except OSError:
            pids = []
        for pid in sorted(pids, key=int):
            if not remaining or budget <= 0:
                break
            fd_dir = os.path.join(self.proc, pid, "fd")
            try:
                fds = os.listdir(fd_dir)
            except OSError:
                continue   # gone, or not ours to read
            for fd in fds:
                budget -= 1
                try:
                    target = os.readlink(os.path.join(fd_dir, fd))
                except OSError:
                    continue
                if not target.startswith("socket:["):
                    continue
                inode = target[8:-1]
                if inode.isdigit() and int(inode) in remaining:
                    remaining.discard(int(inode))
                    self._owners.set(int(inode), self._describe(pid))
        for inode in remaining:
            self._owners.set(inode, None)

    def _describe(self, pid):
        base = os.path.join(self.proc, pid)
        name = exe = None
        try:
            with open(os.path.join(base, "comm"), "r", encoding="utf-8",
                      errors="surrogateescape") as h:
                name = clip(h.read(64).strip(), 64) or None
        except OSError:
            pass
        try:
            exe = clip(os.readlink(os.path.join(base, "exe")), 256)
        except OSError:
            pass
        return int(pid), name, exe

    def counters(self):
        return {"listener_polls": self._polls, "listener_unparsed": self._unparsed,
                "listener_owner_walks": self._owner_walks, "listener_unreadable": self._unreadable}

    def drops(self):
        return {"listeners": self._dropped, "listener_owners": self._owners.evicted}

    def close(self):
        pass
