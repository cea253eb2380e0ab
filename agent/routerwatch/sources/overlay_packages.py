"""What the package database (apk's /lib/apk/db/installed or opkg's status and info/*.list)
says about the router's files, and the files that fail its checksums.

The database is hostile input on a rooted router, and may be tens of megabytes listing hundreds
of thousands of files: a 31 MB one took the agent to 237 MB when it was read whole. So it is
read as a stream (bounded.BoundedLines) and only what the scan will ask about is kept: the owner
and checksum of the paths the caller wants (the files the walk kept, the baseline's paths), whose
number the scan already bounds. Caps on what is read (bytes, packages, file entries, line length)
bound the time; reaching one is reported (integrity.file_flood, naming the database), never a
silent cut.

Reading it is still the costliest part of a scan (seconds of CPU for a database at the caps), so
PackageCache keeps what the last read found and reads again only when one of the database's
files changed (device, inode, size, mtime or ctime: userland can set an mtime back, not a ctime)
or the scan asks about a path the database lists that the last read was not asked about.
"""
import hashlib
import os
import stat
import struct
import sys
import time

from ..bounded import BoundedLines
from ..parsers.apk_installed import REJECTED, ApkFile, digest_algorithm, iter_installed
from ..parsers.opkg_status import iter_list, iter_status
from .overlay_hashing import file_version, open_regular, package_digest
from .overlay_paths import detail_for

MAX_DB_BYTES = 32 * 1024 * 1024   # of one database: apk's, or opkg's status and .list files
MAX_PACKAGES = 4096               # an OpenWrt image has a few hundred
MAX_FILE_ENTRIES = 200000         # files listed; an OpenWrt image has a few thousand
MAX_LINE_BYTES = 8192             # paths stop at PATH_MAX (4096); no healthy line comes near
YIELD_EVERY = 2048                # records read between yields to the scan's CPU budget
APK_DB = "lib/apk/db/installed"
OPKG_DB = "usr/lib/opkg/status"
OPKG_LIST = "usr/lib/opkg/info/%s.list"


class DatabaseRead:
    """What reading one package database took, and which of its caps it reached."""

    def __init__(self, path):
        self.path = path              # router path of the database
        self.bytes_read = 0
        self.packages = 0
        self.files = 0                # file entries listed (every one, wanted or not)
        self.rejected = 0             # lines that did not parse
        self.overlong = 0             # lines longer than MAX_LINE_BYTES (skipped)
        self.limits = []              # caps reached: bytes | packages | files | line_length

    def one_more_file(self):
        """Count a listed file entry; False once past MAX_FILE_ENTRIES (the cap is recorded)."""
        self.files += 1
        if self.files > MAX_FILE_ENTRIES:
            self.hit("files")
            return False
        return True

    def one_more_package(self):
        """Count a package stanza; False once past MAX_PACKAGES (the cap is recorded)."""
        self.packages += 1
        if self.packages > MAX_PACKAGES:
            self.hit("packages")
            return False
        return True

    def hit(self, limit):
        if limit not in self.limits:
            self.limits.append(limit)

    def account(self, lines):
        """Add what one BoundedLines read."""
        self.bytes_read += lines.bytes_read
        self.overlong += lines.overlong
        if lines.truncated:
            self.hit("bytes")
        if lines.overlong:
            self.hit("line_length")

    def detail(self):
        return {"database": self.path, "limits": list(self.limits),
                "bytes_read": self.bytes_read, "max_bytes": MAX_DB_BYTES,
                "packages": self.packages, "max_packages": MAX_PACKAGES,
                "files": self.files, "max_files": MAX_FILE_ENTRIES,
                "overlong_lines": self.overlong, "max_line_bytes": MAX_LINE_BYTES,
                "rejected_lines": self.rejected}


# a kept checksum is one bytes object: the algorithm's index here, then the digest
ALGORITHMS = ("sha1", "sha256-160", "sha256", "md5")


def _packed(algorithm, digest):
    return bytes((ALGORITHMS.index(algorithm),)) + digest


class Packages:
    """What the package database says about the wanted files: owners and checksums.

    Compact, as there may be one entry per file the scan keeps (integrity.max_files): the path
    is interned (the same object as the scan's own), the owner tuple is one per package, and a
    checksum is one bytes object (see ALGORITHMS)."""

    def __init__(self):
        self.manager = "none"
        self.owned = {}               # wanted path -> (package, version)
        self.rom_versions = {}        # package -> version in /rom's database (what shipped)
        self.checksums = {}           # wanted path -> packed checksum (apk)
        self.conffiles = {}           # wanted path -> packed checksum (opkg conffiles)
        self.read = None              # DatabaseRead of the database read, if any

    def checksum(self, path):
        """(algorithm, digest bytes, package, version) apk recorded for `path`, or None."""
        return self._expected(self.checksums, path)

    def conffile(self, path):
        """(algorithm, digest bytes, package, version) of opkg conffile `path`, or None."""
        return self._expected(self.conffiles, path)

    def _expected(self, table, path):
        packed = table.get(path)
        if packed is None:
            return None
        package, version = self.owned.get(path, ("", ""))
        return ALGORITHMS[packed[0]], packed[1:], package, version


def load_packages(tree, wanted, files=None):
    """Generator returning the Packages of the router in `tree` (an OverlayTree) for the router
    paths in `wanted` (anything with `in`); it yields now and then for the scan's CPU budget.
    Every file it opens or looks for is noted in `files` (a DatabaseFiles), when given."""
    if files is None:
        files = DatabaseFiles(tree)
    packages = Packages()
    handle = files.open_live(APK_DB)
    if handle is not None:
        packages.manager = "apk"
        packages.read = DatabaseRead("/" + APK_DB)
        with handle:
            yield from _load_apk(handle, packages, wanted, files.listed)
        packages.rom_versions = yield from _rom_versions(files, APK_DB, iter_installed)
        return packages
    handle = files.open_live(OPKG_DB)
    if handle is None:
        return packages
    packages.manager = "opkg"
    packages.read = DatabaseRead("/" + OPKG_DB)
    with handle:
        installed = yield from _load_opkg_status(handle, packages, wanted, files.listed)
    yield from _load_opkg_lists(files, installed, packages, wanted)
    packages.rom_versions = yield from _rom_versions(files, OPKG_DB, iter_status)
    return packages


def _load_apk(handle, packages, wanted, listed):
    read = packages.read
    lines = BoundedLines(handle, MAX_DB_BYTES, MAX_LINE_BYTES)
    pending = []       # the wanted files of the stanza being read: its package comes last
    for count, record in enumerate(iter_installed(lines), 1):
        if count % YIELD_EVERY == 0:
            yield
        if record is REJECTED:
            read.rejected += 1
        elif type(record) is ApkFile:
            if not read.one_more_file():
                break
            listed.add(record.path)
            if record.path in wanted:
                pending.append(record)
        elif record.valid:
            if not read.one_more_package():
                break
            owner = (record.name, record.version)
            for item in pending:
                path = sys.intern(item.path)
                packages.owned[path] = owner
                algorithm = digest_algorithm(item.digest, record.flags)
                if algorithm in ALGORITHMS:
                    packages.checksums[path] = _packed(algorithm, item.digest)
            pending = []
        else:
            pending = []      # a stanza without a package owns nothing
    read.account(lines)


def _load_opkg_status(handle, packages, wanted, listed):
    """The conffiles of the wanted paths; returns [(name, version)] of installed packages."""
    read = packages.read
    lines = BoundedLines(handle, MAX_DB_BYTES, MAX_LINE_BYTES)
    installed = []
    for count, record in enumerate(iter_status(lines), 1):
        if count % YIELD_EVERY == 0:
            yield
        if record is REJECTED:
            read.rejected += 1
            continue
        if not read.one_more_package():
            break
        if not record.installed:
            continue
        owner = (record.name, record.version)
        for conffile in record.conffiles:
            listed.add(conffile.path)
            if conffile.path in wanted:
                path = sys.intern(conffile.path)
                packages.owned[path] = owner       # its .list names it too, as a rule
                packages.conffiles[path] = _packed(conffile.algorithm,
                                                   bytes.fromhex(conffile.checksum))
        installed.append(owner)
    read.account(lines)
    return installed


def _load_opkg_lists(files, installed, packages, wanted):
    """The owners of the wanted paths, from each installed package's .list, all of them within
    the one database's MAX_DB_BYTES."""
    read = packages.read
    count = 0
    for name, version in installed:
        room = MAX_DB_BYTES - read.bytes_read
        if room <= 0:
            read.hit("bytes")
            return
        handle = files.open_live(OPKG_LIST % name)
        if handle is None:
            continue
        owner = (name, version)
        with handle:
            lines = BoundedLines(handle, room, MAX_LINE_BYTES)
            for path in iter_list(lines):
                count += 1
                if count % YIELD_EVERY == 0:
                    yield
                if path is REJECTED:
                    read.rejected += 1
                    continue
                if not read.one_more_file():
                    break
                files.listed.add(path)
                if path in wanted:
                    packages.owned[sys.intern(path)] = owner
        read.account(lines)
        if "files" in read.limits:
            return


def _rom_versions(files, rel, records):
    """{package: version} of /rom's database (what the firmware shipped), read as a stream."""
    versions = {}
    if not files.tree.has_overlay:
        return versions
    handle = files.open_rom(rel)
    if handle is None:
        return versions
    with handle:
        lines = BoundedLines(handle, MAX_DB_BYTES, MAX_LINE_BYTES)
        for count, record in enumerate(records(lines), 1):
            if count % YIELD_EVERY == 0:
                yield
            if getattr(record, "valid", True) and getattr(record, "version", None):
                versions[record.name] = record.version
                if len(versions) >= MAX_PACKAGES:
                    break
    return versions


def _signature(st):
    """file_version(st) packed; b"-" for a file that is missing or not a regular file."""
    if st is None or not stat.S_ISREG(st.st_mode):
        return b"-"
    return _SIGNATURE.pack(*file_version(st))


_SIGNATURE = struct.Struct("<QQqqq")
# A file whose ctime is this close to the start of its reading may have changed again within the
# same timestamp (jffs2 keeps whole seconds): it is read again at the next scan, not trusted.
RACY_NS = 2 * 1000 * 1000 * 1000


_MIX = 0x9E3779B1                 # odd, bits well spread (2**32 / the golden ratio)


class PathFilter:
    """A set of paths in a fixed 256 KiB that may answer "maybe" for a path never added, and
    never "no" for one added (a Bloom filter: two bits per path, from its hash). False "maybe":
    about 3 % once the database lists MAX_FILE_ENTRIES paths, 0.002 % for the few thousand of a
    real image. The second bit comes from the hash multiplied by an odd constant, not from its
    high bits: on a 32-bit router (MIPS) a hash has 32 bits, too few for two 21-bit indexes.
    Adding is on the database's hottest loop, hence written out."""

    BITS = 1 << 21
    _MASK = BITS - 1

    def __init__(self):
        self._bits = bytearray(self.BITS >> 3)

    def add(self, path):
        hashed = hash(path)
        bit = hashed & self._MASK
        self._bits[bit >> 3] |= 1 << (bit & 7)
        bit = (hashed * _MIX >> 21) & self._MASK
        self._bits[bit >> 3] |= 1 << (bit & 7)

    def __contains__(self, path):
        hashed = hash(path)
        bit = hashed & self._MASK
        if not self._bits[bit >> 3] & (1 << (bit & 7)):
            return False
        bit = (hashed * _MIX >> 21) & self._MASK
        return bool(self._bits[bit >> 3] & (1 << (bit & 7)))


def _new_digest(tree):
    """Where a digest of the database files' signatures starts: the kind of tree they are in
    (the same files read through an overlay or not are another read)."""
    return hashlib.sha256(b"overlay" if tree.has_overlay else b"plain")


class DatabaseFiles:
    """Every file one read of the package database opened or looked for and did not find (an
    opkg .list, apk's database on an opkg router), with its signature: the read is still good
    while all of them are the same. Compact: the names in one string, the signatures in one
    digest."""

    def __init__(self, tree):
        self.tree = tree
        self.started_ns = time.time_ns()
        self.newest_ctime_ns = 0
        self._names = bytearray()     # "L<rel>" (live) or "R<rel>" (/rom's), one a line
        self.listed = PathFilter()     # every path the database gives an owner or checksum for
        self._digest = _new_digest(tree)

    def open_live(self, rel):
        """tree.open_live(rel), noted."""
        handle = self.tree.open_live(rel)
        self._note("L" + rel, os.fstat(handle.fileno()) if handle is not None else None)
        return handle

    def open_rom(self, rel):
        """/rom's regular file <rel> (never through a symlink) open for reading, or None; noted.
        """
        try:
            handle = open_regular(os.path.join(self.tree.rom, rel))
        except OSError:
            handle = None
        self._note("R" + rel, os.fstat(handle.fileno()) if handle is not None else None)
        return handle

    def _note(self, name, st):
        if self._names:
            self._names += b"\n"
        self._names += os.fsencode(name)
        self._digest.update(_signature(st))
        if st is not None:
            self.newest_ctime_ns = max(self.newest_ctime_ns, st.st_ctime_ns)

    def key(self):
        """(names, digest) to keep; None when a file changed too close to the reading (RACY_NS)
        for its signature to be trusted."""
        if self.newest_ctime_ns >= self.started_ns - RACY_NS:
            return None
        return bytes(self._names), self._digest.digest()


def _current_digest(tree, names):
    """Generator returning the digest DatabaseFiles made of `names`, from the files as they are
    now (an opkg router has a .list per package: thousands of stats, so it yields)."""
    digest = _new_digest(tree)
    for count, name in enumerate(names.split(b"\n"), 1):
        if count % YIELD_EVERY == 0:
            yield
        kind, rel = name[:1], os.fsdecode(name[1:])
        digest.update(_signature(_live_stat(tree, rel) if kind == b"L"
                                 else _stat(os.path.join(tree.rom, rel), os.lstat)))
    return digest.digest()


def _stat(path, how=os.stat):
    try:
        return how(path)
    except OSError:
        return None


def _live_stat(tree, rel):
    """stat of what tree.open_live(rel) opens, or None: the merged view's file at once (one
    system call on a router), else the layers' by the overlay rules."""
    st = _stat(os.path.join(tree.root, rel))
    if st is not None:
        return st
    path = tree.live_path(rel)
    return _stat(path) if path is not None else None


class PackageCache:
    """The last read of the package database, answered from again while the database's files are
    the same and the read answers for every path the scan asks about.

    A read keeps the owners and checksums of the paths it was asked about (Packages), no more. A
    path asked about later is answered from it when the database lists it nowhere (`listed`, a
    fixed-size filter of every path it gives an owner or checksum for) or when the read was
    asked about it too; any other is read again. So a new file that no package lists (the usual
    new file) costs no reading, and a file the database lists costs one.

    What it holds beyond one read's Packages: the names of the files read (one byte string), a
    digest of their signatures, the 256 KiB filter, and the paths asked about that the filter
    could not tell apart from listed ones and the database does not answer for (at most
    MAX_UNANSWERED, else nothing is kept). The old read is dropped before a new one starts, so a
    read's peak is what it was without the cache, plus the filter."""

    MAX_UNANSWERED = 4096

    def __init__(self):
        self.reads = 0              # full reads of the database
        self.reuses = 0             # scans answered from the kept read
        self._packages = None
        self._key = None            # (names, digest) from DatabaseFiles.key()
        self._listed = None         # PathFilter of the read
        self._unanswered = None     # paths asked about, "maybe" in _listed, not in the database

    def load(self, tree, wanted):
        """Generator returning the Packages for the paths in `wanted` (iterable, with `in`),
        like load_packages, from the kept read when it still holds."""
        if self._packages is not None:
            fresh = yield from self._still_good(tree, wanted)
            if fresh:
                self.reuses += 1
                return self._packages
        self._forget()
        files = DatabaseFiles(tree)
        packages = yield from load_packages(tree, wanted, files)
        self.reads += 1
        key = files.key()
        if key is None:
            return packages
        unanswered = set()
        for count, path in enumerate(wanted, 1):
            if count % YIELD_EVERY == 0:
                yield
            if path not in packages.owned and path in files.listed:
                unanswered.add(sys.intern(path))
                if len(unanswered) > self.MAX_UNANSWERED:
                    return packages
        self._packages, self._key = packages, key
        self._listed, self._unanswered = files.listed, unanswered
        return packages

    def _forget(self):
        self._packages = self._key = self._listed = self._unanswered = None

    def _still_good(self, tree, wanted):
        names, digest = self._key
        current = yield from _current_digest(tree, names)
        if current != digest:
            return False
        owned, listed, unanswered = self._packages.owned, self._listed, self._unanswered
        for count, path in enumerate(wanted, 1):
            if count % YIELD_EVERY == 0:
                yield
            if path not in owned and path not in unanswered and path in listed:
                return False     # listed, and the kept read was not asked about it
        return True


def package_paths(tree):
    """The router paths the package database gives a checksum for (apk's files with one,
    opkg's conffiles), as a stream, within the same caps as load_packages; repeats included."""
    handle = tree.open_live(APK_DB)
    if handle is not None:
        with handle:
            for count, record in enumerate(iter_installed(
                    BoundedLines(handle, MAX_DB_BYTES, MAX_LINE_BYTES)), 1):
                if count > MAX_FILE_ENTRIES:
                    return
                if type(record) is ApkFile and record.digest is not None:
                    yield record.path
        return
    handle = tree.open_live(OPKG_DB)
    if handle is not None:
        with handle:
            for count, record in enumerate(iter_status(
                    BoundedLines(handle, MAX_DB_BYTES, MAX_LINE_BYTES)), 1):
                if count > MAX_PACKAGES:
                    return
                if record is not REJECTED and record.installed:
                    for conffile in record.conffiles:
                        yield conffile.path


def rom_database_hash(tree):
    """sha256 hex of /rom's package database (what the firmware shipped; its first
    MAX_DB_BYTES), read in chunks, or "" when there is none."""
    if not tree.has_overlay:
        return ""
    for rel in (APK_DB, OPKG_DB):
        try:
            handle = open_regular(os.path.join(tree.rom, rel))
        except OSError:
            continue
        digest = hashlib.sha256()
        with handle:
            left = MAX_DB_BYTES
            while left > 0:
                chunk = handle.read(min(BoundedLines.CHUNK, left))
                if not chunk:
                    break
                digest.update(chunk)
                left -= len(chunk)
        return digest.hexdigest()
    return ""


def mismatches(packages, path, st, digest, head, abs_path):
    """Details of `package_mismatch` findings for the file at router path `path` (content
    sha256 `digest`): its apk checksum, or its opkg conffile checksum, fails."""
    found = []
    if digest is None or not stat.S_ISREG(st.st_mode):
        return found
    for expected, conffile in ((packages.checksum(path), False),
                               (packages.conffile(path), True)):
        if expected is None:
            continue
        algorithm, wanted, package, version = expected
        actual = package_digest(abs_path, algorithm, digest)
        if actual is not None and actual != wanted:
            detail = detail_for(path, head, st.st_mode)
            detail.update(package=package, version=version, algorithm=algorithm,
                          expected=wanted.hex(), actual=actual.hex(), sha256=digest,
                          size=st.st_size, conffile=conffile)
            found.append(detail)
    return found


def verified(packages, path, digest, live_path):
    """True when the package database's checksum for `path` matches content `digest` (sha256
    hex) of the file at `live_path`."""
    expected = packages.checksum(path)
    if expected is None or not digest or len(digest) != 64 or live_path is None:
        return False
    actual = package_digest(live_path, expected[0], digest)
    return actual is not None and actual == expected[1]
