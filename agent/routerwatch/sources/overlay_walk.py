"""The integrity walk of the overlay's upper layer: which files a scan looks at, most important
first, in bounded memory whatever the overlay holds.

A rooted router's overlay can hold anything: 200,000 junk files put there so that the walk
stops before it reaches the replaced /usr/sbin/dropbear. So the walk first only looks (lstat,
no reading) and ranks every file (overlay_paths.RANK_*): what shadows /rom, then access and
autostart paths, code, config, and bulk data last. It keeps at most integrity.max_files paths,
and at most PATH_BYTES_PER_FILE bytes of path per file of that cap; when it must drop one, it
drops the highest rank. Then the scan hashes what was kept, lowest rank first.

Memory: the directory being read is streamed (os.scandir, never a sorted list of a directory),
the descent holds one open directory per level (at most MAX_DEPTH), and the kept paths are one
str each in a list per rank. How many files each directory held is summed on the way up, and
only the few largest are remembered: that is where a flood is, reported when the cap is hit.
"""
import heapq
import os
import stat
import sys
from dataclasses import dataclass

from ..bounded import PATH_BYTES_PER_FILE
from .overlay_paths import (RANK_DATA, RANK_NAMES, RANK_SHADOWS_ROM, directory_rank,
                            file_rank, is_opaque, is_whiteout)

MAX_DEPTH = 48          # directory levels entered; OpenWrt's deepest paths have about 10
TOP_DIRECTORIES = 5     # the largest directories named when the cap is hit
YIELD_EVERY = 256       # entries looked at between yields to the caller's CPU budget


class Candidates:
    """At most `limit` paths of at most `byte_limit` bytes in all, grouped by rank; when full, a
    lower rank pushes out higher ones, and nothing is pushed out for a path that cannot stay.
    With `unique`, a path offered again while kept is not kept twice (the paths a package
    database lists may repeat; a directory walk never does)."""

    def __init__(self, limit, byte_limit=None, unique=False):
        self.limit = limit
        self._members = set() if unique else None
        self.byte_limit = limit * PATH_BYTES_PER_FILE if byte_limit is None else byte_limit
        self._buckets = [[] for _ in RANK_NAMES]
        self._bucket_bytes = [0] * len(RANK_NAMES)
        self._size = 0
        self._bytes = 0
        self.dropped = [0] * len(RANK_NAMES)

    def __len__(self):
        return self._size

    def __iter__(self):
        """The kept paths, in no order (they stay kept)."""
        for bucket in self._buckets:
            yield from bucket

    def offer(self, rank, path):
        """Keep `path` if there is room or something less important to drop; True if kept."""
        if self._members is not None and path in self._members:
            return True
        size = sys.getsizeof(path)
        over_count = self._size + 1 - self.limit
        over_bytes = self._bytes + size - self.byte_limit
        if over_count > 0 or over_bytes > 0:
            worse = range(len(self._buckets) - 1, rank, -1)
            if (sum(len(self._buckets[r]) for r in worse) < over_count
                    or sum(self._bucket_bytes[r] for r in worse) < over_bytes):
                self.dropped[rank] += 1
                return False
            for worst in worse:
                bucket = self._buckets[worst]
                while bucket and (over_count > 0 or over_bytes > 0):
                    gone = sys.getsizeof(self._pop(worst))
                    self.dropped[worst] += 1
                    over_count -= 1
                    over_bytes -= gone
        self._buckets[rank].append(path)
        if self._members is not None:
            self._members.add(path)
        self._bucket_bytes[rank] += size
        self._bytes += size
        self._size += 1
        return True

    @property
    def dropped_total(self):
        return sum(self.dropped)

    def drain(self):
        """(rank, path) lowest rank first, each rank in path order, releasing memory as it
        goes."""
        for rank, bucket in enumerate(self._buckets):
            bucket.sort(reverse=True)
            while bucket:
                yield rank, self._pop(rank)

    def _pop(self, rank):
        """Take the last path of a rank's bucket out, with its share of the bounds."""
        path = self._buckets[rank].pop()
        if self._members is not None:
            self._members.discard(path)
        size = sys.getsizeof(path)
        self._bucket_bytes[rank] -= size
        self._bytes -= size
        self._size -= 1
        return path


@dataclass(frozen=True)
class DirectoryCount:
    path: str
    files: int           # files directly inside (for subtrees: anywhere below)


class FloodCounter:
    """The directories with the most files, found on the way: the few largest by files directly
    inside, and by files anywhere below (where a subtree only passes its one child's count up, the
    deeper directory is the one named)."""

    def __init__(self, keep=TOP_DIRECTORIES):
        self.keep = keep
        self.files = 0
        self.too_deep = 0            # directories not entered (deeper than MAX_DEPTH)
        self.unreadable = 0          # directories that could not be listed
        self._direct = []            # min-heaps of (files, path)
        self._subtree = []

    def directory_done(self, path, direct, below, largest_child):
        if direct:
            self._push(self._direct, direct, path)
        if path != "/" and below > largest_child:
            self._push(self._subtree, below, path)

    def _push(self, heap, files, path):
        if len(heap) < self.keep:
            heapq.heappush(heap, (files, path))
        elif files > heap[0][0]:
            heapq.heapreplace(heap, (files, path))

    def where(self):
        """The one directory to name: the deepest of the largest that holds at least 90% of
        what the largest holds (/usr/bin rather than /usr when the flood is in /usr/bin)."""
        ranked = self.largest_subtrees() + self.largest()
        if not ranked:
            return "/"
        top = max(d.files for d in ranked)
        near = [d for d in ranked if d.files * 10 >= top * 9]
        return max(near, key=lambda d: (d.path.count("/"), d.files)).path

    def largest(self):
        return tuple(DirectoryCount(p, n) for n, p in sorted(self._direct, key=_by_count))

    def largest_subtrees(self):
        return tuple(DirectoryCount(p, n) for n, p in sorted(self._subtree, key=_by_count))


def _by_count(item):
    return (-item[0], item[1])


class _Level:
    """One directory being read: its open listing and what it adds up to."""
    __slots__ = ("entries", "path", "rank", "rom_exists", "direct", "below", "largest_child")

    def __init__(self, entries, path, rom_exists):
        self.entries = entries
        self.path = path                          # "/" or "/usr/sbin"
        self.rank = directory_rank(path.rstrip("/") + "/")
        self.rom_exists = rom_exists              # /rom has this directory too
        self.direct = 0
        self.below = 0
        self.largest_child = 0


def walk(upper, rom, candidates, flood, skip=()):
    """Generator: look at every entry below `upper` (the overlay's upper layer) and offer it to
    `candidates` with its rank; `rom` is the read-only layer it shadows, `skip` router paths not
    walked (the agent's own state). Directories are offered only when they are opaque over a /rom
    directory. Yields every YIELD_EVERY entries."""
    stack = []
    _enter(stack, upper, "/", os.path.isdir(rom), flood)
    seen = 0
    while stack:
        level = stack[-1]
        entry = next(level.entries, None)
        if entry is None:
            level.entries.close()
            stack.pop()
            below = level.below + level.direct
            flood.directory_done(level.path, level.direct, below, level.largest_child)
            if stack:
                parent = stack[-1]
                parent.below += below
                parent.largest_child = max(parent.largest_child, below)
            continue
        seen += 1
        if seen % YIELD_EVERY == 0:
            yield
        path = (level.path if level.path != "/" else "") + "/" + entry.name
        if path in skip:
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if is_dir:
            rom_dir = level.rom_exists and os.path.isdir(os.path.join(rom, path[1:]))
            if rom_dir and is_opaque(entry.path):
                candidates.offer(RANK_SHADOWS_ROM, path)
            if len(stack) >= MAX_DEPTH:
                flood.too_deep += 1
                continue
            _enter(stack, entry.path, path, rom_dir, flood)
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        level.direct += 1
        flood.files += 1
        shadows = level.rom_exists and os.path.lexists(os.path.join(rom, path[1:]))
        if shadows:
            rank = RANK_SHADOWS_ROM
        elif is_whiteout(st, entry.path):
            rank = RANK_DATA      # a whiteout of nothing in /rom hides nothing
        else:
            rank = file_rank(path, st.st_mode, level.rank)
        candidates.offer(rank, path)


def _enter(stack, abs_dir, path, rom_exists, flood):
    try:
        entries = os.scandir(abs_dir)
    except OSError:
        flood.unreadable += 1
        return
    stack.append(_Level(entries, path, rom_exists))
