"""The sha256 of the program behind a finding, so a fleet can tell the same binary on many
routers (the collector's fleet.implant).

Hashed only for the anomalies that name a running program (a listener's or raw socket's owner,
code run from /tmp or deleted from disk), when they are sent, never on every scan: the CPU goes
to what is already suspicious. /proc/<pid>/exe is opened once and fstat'ed, so the file hashed
is the one whose identity (device, inode, size, mtime, ctime) keys the cache, even when it was
deleted from disk or the pid is reused meanwhile. The ctime is there because a rooted router can
rewrite a program in place at the same size and set its mtime back (touch -d), never its ctime:
without it the cache would go on naming the program it replaced. The cache and the size hashed
are bounded.

Under --root (a copy of a router's tree) proc/<pid>/exe is a plain symlink naming a path of the
router: the file hashed is that path inside the tree, never the host's file of the same name,
and nothing outside the tree.
"""
import hashlib
import os
import stat

from .bounded import BoundedDict
from .sources.overlay_hashing import file_version

# the kinds whose evidence names a process (`pid`) whose program is worth hashing
PROGRAM_KINDS = frozenset(("conn.new_listener", "conn.raw_socket", "integrity.exec_from_tmp",
                           "integrity.deleted_exe"))
# a router's largest programs are a few MB; an implant is usually under 1 MB
MAX_PROGRAM_BYTES = 16 * 1024 * 1024
CACHE_ENTRIES = 128
CHUNK = 65536


class ProgramHasher:
    """`procfs`: the /proc to read; `root`: the router's root, "/" (or None) for this system."""

    def __init__(self, procfs, root=None, cache_entries=CACHE_ENTRIES,
                 max_bytes=MAX_PROGRAM_BYTES):
        self.procfs = procfs
        tree = os.path.realpath(root) if root else "/"
        self.tree = None if tree == "/" else tree
        self.max_bytes = max_bytes
        self._cache = BoundedDict(cache_entries)
        self.hashed = 0          # files read and hashed
        self.cached = 0          # answers from the cache
        self.too_large = 0
        self.unreadable = 0

    def of_pid(self, pid):
        """The hex sha256 of /proc/<pid>/exe, or None (no such process, kernel thread, not
        permitted, not a regular file, larger than max_bytes)."""
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            return None
        try:
            with self._open_program(pid) as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    return None
                key = file_version(info)
                known = self._cache.get(key)
                if known is not None:
                    self.cached += 1
                    return known
                if info.st_size > self.max_bytes:
                    self.too_large += 1
                    return None
                digest = hashlib.sha256()
                remaining = self.max_bytes + 1
                while remaining > 0:
                    chunk = handle.read(min(CHUNK, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    digest.update(chunk)
                if remaining <= 0:        # grew while read: not what was stat'ed
                    self.too_large += 1
                    return None
        except OSError:
            self.unreadable += 1
            return None
        self.hashed += 1
        value = digest.hexdigest()
        self._cache.set(key, value)
        return value

    def _open_program(self, pid):
        link = os.path.join(self.procfs, str(pid), "exe")
        if self.tree is not None:
            target = os.readlink(link)
            if not target.startswith("/"):
                raise OSError("not a path of the router: %r" % target[:64])
            link = os.path.realpath(os.path.join(self.tree, target.lstrip("/")))
            if os.path.commonpath((link, self.tree)) != self.tree:
                raise OSError("outside the tree")
        # non-blocking: a FIFO planted in a tree must not hang the agent (fstat refuses it)
        return os.fdopen(os.open(link, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb")

    def add_to(self, kind, evidence):
        """The evidence with `sha256` of its process's program added (a new dict), or as it was
        when the kind names no program, the evidence has a sha256 already, or hashing fails."""
        if kind not in PROGRAM_KINDS or not isinstance(evidence, dict) or "sha256" in evidence:
            return evidence
        digest = self.of_pid(evidence.get("pid"))
        if digest is None:
            return evidence
        return dict(evidence, sha256=digest)

    def drops(self):
        return {"program_hash_too_large": self.too_large, "program_hash_evicted":
                self._cache.evicted}
