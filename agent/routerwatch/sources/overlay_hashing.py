"""Hashing files for the integrity watcher, paid once per content.

A file is read again only when its size, mtime, ctime, inode or device changed since the last
scan. The ctime is what a rooted router cannot set back: `touch -d` after an in-place edit of the
same size restores the mtime, and sets the ctime to the current time.
The cache keeps one packed bytes record per file (about 80 bytes, not a tuple of Python ints and
strings): with integrity.max_files files it must fit a 128 MB router beside everything else. It
holds what the last complete scan saw, so deleted files leave it by themselves.

Reading is a generator that yields between chunks, so the caller's CPU budget can stop a scan in
the middle of a large file; it never follows a symlink and never opens anything but a regular
file (a FIFO would block, a device would read forever).
"""
import hashlib
import os
import stat
import struct

CHUNK_BYTES = 256 * 1024          # read size; the CPU budget is checked between chunks
HEAD_BYTES = 4                    # enough to tell ELF and #! apart

# file_version() (device, inode, size, mtime_ns, ctime_ns), length of head, head; then the raw
# sha256 (absent: not hashed)
_RECORD = struct.Struct("<QQqqqB%ds" % HEAD_BYTES)


def file_version(st):
    """What tells one version of a file from another without reading it, for every cache of
    what a file holds: where it is (device, inode), its size, and when it last changed. The
    ctime is there because a rooted router can set an mtime back (touch -d after an in-place
    edit of the same size), never a ctime, which any write, rename over it or chmod sets."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def open_regular(path, follow=False):
    """A binary file object for a regular file, never blocking and, unless `follow`, never
    through a symlink: between the walk's lstat and this open a hostile process may have put a
    FIFO, a device or a symlink to /dev/zero in its place."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= os.O_NOFOLLOW
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file: %s" % path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def rom_key(path):
    """The cache key of /rom's copy of `path`: NUL cannot occur in a file name, so it never
    collides with the key of the overlay's file."""
    return "\0" + path


class FileHasher:
    """sha256 of files by key (the router path), cached per content signature."""

    def __init__(self, max_file_bytes):
        self.max_file_bytes = max_file_bytes
        self._previous = {}      # key -> packed record, from the last complete scan
        self._current = {}       # key -> packed record, this scan
        self.hashes = 0          # files read and hashed
        self.bytes_hashed = 0
        self.unreadable = 0

    def start_scan(self):
        self._current = {}

    def finish_scan(self):
        """The scan completed: what it did not see is gone from the tree, so forget it."""
        self._previous, self._current = self._current, {}

    def __len__(self):
        return len(self._previous) + len(self._current)

    def head(self, key):
        """The first bytes remembered for `key` (b"" when unknown)."""
        record = self._current.get(key) or self._previous.get(key)
        if record is None:
            return b""
        fields = _RECORD.unpack_from(record)
        return fields[6][:fields[5]]

    def digest(self, key, abs_path, st):
        """Generator: (sha256 hex or None when too large/unreadable, first bytes)."""
        signature = file_version(st)
        # taken out of the previous scan's map, not copied: a re-scan then holds each path once
        record = self._current.get(key) or self._previous.pop(key, None)
        if record is not None:
            fields = _RECORD.unpack_from(record)
            if fields[:5] == signature:
                self._current[key] = record
                raw = record[_RECORD.size:]
                return (raw.hex() if raw else None), fields[6][:fields[5]]
        if st.st_size > self.max_file_bytes:
            self._remember(key, signature, b"", None)
            return None, b""
        hasher = hashlib.sha256()
        head = b""
        remaining = self.max_file_bytes
        try:
            with open_regular(abs_path) as handle:
                while remaining > 0:
                    chunk = handle.read(min(CHUNK_BYTES, remaining))
                    remaining -= len(chunk)
                    if not chunk:
                        break
                    if not head:
                        head = chunk[:HEAD_BYTES]
                    hasher.update(chunk)
                    self.bytes_hashed += len(chunk)
                    if len(chunk) == CHUNK_BYTES:
                        yield
        except OSError:
            self.unreadable += 1
            return None, b""
        self.hashes += 1
        raw = hasher.digest()
        self._remember(key, signature, head, raw)
        return raw.hex(), head

    def file_digest(self, key, abs_path):
        """Generator: (lstat, sha256 hex, head) of any path; the sha256 of a symlink is that of
        its target text; None for special files and what cannot be read."""
        try:
            st = os.lstat(abs_path)
        except OSError:
            return None, None, b""
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(os.fsencode(abs_path))
            except OSError:
                return st, None, b""
            return st, hashlib.sha256(target).hexdigest(), b""
        if not stat.S_ISREG(st.st_mode):
            return st, None, b""
        digest, head = yield from self.digest(key, abs_path, st)
        return st, digest, head

    def _remember(self, key, signature, head, raw):
        self._current[key] = _RECORD.pack(*signature, len(head), head) + (raw or b"")


def package_digest(abs_path, algorithm, sha256_hex):
    """The digest a package database would record for this file, in that database's algorithm
    (bytes), reusing the sha256 already computed where the algorithm allows."""
    if algorithm == "sha256":
        return bytes.fromhex(sha256_hex)
    if algorithm == "sha256-160":
        return bytes.fromhex(sha256_hex)[:20]
    name = {"sha1": "sha1", "md5": "md5"}.get(algorithm)
    if name is None:
        return None
    hasher = hashlib.new(name)
    try:
        with open_regular(abs_path) as handle:
            for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
                hasher.update(chunk)
    except OSError:
        return None
    return hasher.digest()


def read_link(path):
    """A symlink's target as text (undecodable bytes surrogate-escaped), at most 1024 chars."""
    try:
        return os.readlink(path)[:1024]
    except OSError:
        return None
