"""The integrity baseline: what the tracked files looked like when the agent first started (or
what the operator supplied), kept compactly on flash.

On disk: gzip of sorted lines `path<TAB>digest<TAB>size<TAB>mode` (mode in octal; digest is the
sha256 hex of the content, of the link target for symlinks, `whiteout` for deletions of /rom
files). Tabs, newlines and backslashes in paths are backslash-escaped so a hostile file name
cannot forge a line. The baseline hash is the sha256 of that canonical text, uncompressed, so a
fleet's collector can tell which routers share a baseline. Written atomically (temp file +
rename) and only when the content changes: flash has a limited number of erase cycles.
"""
import gzip
import hashlib
import os
import re
import struct
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass

BASELINE_FILE = "baseline.gz"
MAX_BASELINE_BYTES = 32 * 1024 * 1024    # uncompressed; a router tracks thousands, not millions
MAX_ENTRIES = 10000000

_LINE_RE = re.compile(r"\A(?P<path>/[^\t\n]*)\t(?P<digest>[0-9a-f]{64}|whiteout|opaque|unhashed)"
                      r"\t(?P<size>\d{1,15})\t(?P<mode>[0-7]{1,7})\Z")


@dataclass(frozen=True, slots=True)
class Entry:
    digest: str      # sha256 hex | "whiteout" | "opaque" | "unhashed" (larger than max_file_bytes)
    size: int
    mode: int


class Manifest(MutableMapping):
    """{path: Entry}, stored packed: one bytes record per path (size, mode and the raw 32-byte
    digest, about 80 bytes) instead of an Entry with a 64-character hex string and two ints
    (about 300). The agent holds the baseline and one scan's manifest, each up to
    integrity.max_files paths, on a router with 64-256 MB."""

    __slots__ = ("_packed",)
    _FIXED = struct.Struct("<QI")                       # size, mode
    _MARKERS = {"whiteout": b"w", "opaque": b"o", "unhashed": b"u"}
    _NAMES = {code: name for name, code in _MARKERS.items()}

    def __init__(self, entries=()):
        self._packed = {}
        self.update(entries)

    def __setitem__(self, path, entry):
        self.put(path, entry)

    def put(self, path, entry, like=None):
        """Set path's entry; where Manifest `like` (the baseline) holds the same entry for the
        same path, its record and path objects are shared instead of held twice."""
        digest = entry.digest
        tail = self._MARKERS.get(digest) or bytes.fromhex(digest)
        packed = self._FIXED.pack(entry.size, entry.mode) + tail
        if isinstance(like, Manifest):
            known = like._packed.get(path)
            if known == packed:
                packed = known
        self._packed[sys.intern(path)] = packed

    def __getitem__(self, path):
        record = self._packed[path]
        size, mode = self._FIXED.unpack_from(record)
        tail = record[self._FIXED.size:]
        return Entry(self._NAMES.get(tail) or tail.hex(), size, mode)

    def __delitem__(self, path):
        del self._packed[path]

    def __contains__(self, path):
        return path in self._packed

    def __iter__(self):
        return iter(self._packed)

    def __len__(self):
        return len(self._packed)

    def __repr__(self):
        return "Manifest(%d paths)" % len(self)


class BaselineError(Exception):
    """The baseline file is unreadable or malformed; the text says which and where."""


def escape_path(path):
    return path.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def unescape_path(text):
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append({"\\": "\\", "t": "\t", "n": "\n"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def canonical_lines(entries):
    """The manifest's canonical text, one encoded line at a time in path order."""
    for path in sorted(entries):
        entry = entries[path]
        yield ("%s\t%s\t%d\t%o\n" % (escape_path(path), entry.digest, entry.size,
                                       entry.mode)).encode("utf-8", "surrogateescape")


def canonical_text(entries):
    """The manifest as bytes: one sorted line per path (the thing that is hashed)."""
    return b"".join(canonical_lines(entries))


def manifest_hash(entries):
    hasher = hashlib.sha256()
    for line in canonical_lines(entries):
        hasher.update(line)
    return hasher.hexdigest()


def parse(data, origin="baseline"):
    """{path: Entry} from canonical text (bytes); BaselineError names the first bad line."""
    if len(data) > MAX_BASELINE_BYTES:
        raise BaselineError("%s is larger than %d bytes" % (origin, MAX_BASELINE_BYTES))
    entries = Manifest()
    text = data.decode("utf-8", "surrogateescape")
    for number, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        match = _LINE_RE.match(line)
        if match is None:
            raise BaselineError("%s line %d is not 'path<TAB>sha256<TAB>size<TAB>mode'"
                                % (origin, number))
        # interned: the scans' manifests and the hash cache then share these path objects
        entries[sys.intern(unescape_path(match.group("path")))] = Entry(
            match.group("digest"), int(match.group("size")), int(match.group("mode"), 8))
        if len(entries) > MAX_ENTRIES:
            raise BaselineError("%s has more than %d entries" % (origin, MAX_ENTRIES))
    return entries


def load(path):
    """{path: Entry} from a baseline file (gzip, or plain text for operator-written ones);
    None when the file does not exist."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
            handle.seek(0)
            if head == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=handle) as unzipped:
                    data = unzipped.read(MAX_BASELINE_BYTES + 1)
            else:
                data = handle.read(MAX_BASELINE_BYTES + 1)
    except FileNotFoundError:
        return None
    except (OSError, EOFError) as exc:
        raise BaselineError("cannot read %s: %s" % (path, exc))
    return parse(data, path)


def save(path, entries):
    """Write the manifest atomically; returns False (and writes nothing) when the file already
    holds exactly this manifest."""
    if _stored_text_hash(path) == manifest_hash(entries):
        return False
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    temporary = "%s.tmp.%d" % (path, os.getpid())
    try:
        with open(temporary, "wb") as raw:
            # mtime=0: the same manifest always compresses to the same bytes
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped:
                for line in canonical_lines(entries):
                    zipped.write(line)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return True


def _stored_text_hash(path):
    """sha256 of the uncompressed text of the baseline file at `path`, read in chunks; None when
    it cannot be read."""
    hasher = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as unzipped:
            for chunk in iter(lambda: unzipped.read(256 * 1024), b""):
                hasher.update(chunk)
    except (OSError, EOFError):
        return None
    return hasher.hexdigest()


def state_path(config, name):
    """A file in the state dir (see AgentConfig.state_file)."""
    return config.state_file(name)


def describe(entries):
    """Lines for `routerwatch-agent baseline show`."""
    yield "# baseline %s, %d paths" % (manifest_hash(entries), len(entries))
    for line in canonical_lines(entries):
        yield line.decode("utf-8", "surrogateescape").rstrip("\n")
