"""The firmware-integrity watcher: the writable overlay against /rom, package checksums, the
baseline, and the firmware identity.

On OpenWrt the read-only squashfs is mounted on /rom and the writable layer on /overlay; every
file that was changed or added lives at /overlay/upper/<path>, every deleted /rom file is a
whiteout there (a 0/0 character device, or an `(overlay-whiteout)` symlink from old overlayfs),
and a replaced directory carries trusted.overlay.opaque=y. So the walk covers only the upper
layer — small on a healthy router — and /rom is read only where upper shadows it. Without an
overlay (a plain Linux system, or a fixture tree without one) the sensitive paths and the
package files are checked in place instead.

Each scan emits FileFinding events when the state of a path changes (first seen in this run, or
new content) and one FirmwareIdentity. Hashing is paid once per file: later scans rehash only what
changed size, mtime or inode. A scan stops when it has used integrity.cpu_budget seconds of CPU
and resumes at the next poll (it is a generator), so the loop never stalls on a slow flash.

Finding names (FileFinding.finding) and their detail keys:
  shadowed          upper file differs from the /rom file: sha256, rom_sha256, size, rom_size
  whiteout          a /rom file deleted in the overlay: rom_sha256 (when hashed)
  opaque            a /rom directory hidden wholesale by an opaque upper directory
  new_executable    an executable in the overlay that is neither in /rom nor in a package
  package_mismatch  a package file whose content fails the package database's checksum
  baseline_drift    a tracked file differs from the baseline: change, sha256, baseline_sha256
Every detail also has class (executable | library | script | routine | config | data) and
sensitive (bool): see classify() and is_sensitive().
"""
import fnmatch
import hashlib
import logging
import os
import stat
import sys
import time

from .. import baseline as baseline_store
from .. import jsonio
from ..bounded import BoundedDict
from ..events import FileFinding, FirmwareIdentity
from ..parsers.apk_installed import parse_installed
from ..parsers.openwrt_release import parse_release
from ..parsers.opkg_status import parse_list, parse_status

log = logging.getLogger("routerwatch")

CHUNK_BYTES = 256 * 1024          # read size; the CPU budget is checked between chunks
RESUME_INTERVAL = 2               # seconds between polls while a scan is unfinished
MAX_DB_BYTES = 32 * 1024 * 1024   # package databases
MAX_SMALL_FILE_BYTES = 64 * 1024  # release files, sysinfo
FIRMWARE_STATE_FILE = "firmware.json"
LEGACY_WHITEOUT_TARGET = "(overlay-whiteout)"
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")

# --------------------------------------------------------------------------- path classes

# Paths every configured OpenWrt router changes on its own or by its owner's ordinary use: the
# first boot generates host keys and board files, LuCI writes /etc/config, setting the root
# password writes /etc/shadow, enabling a service adds an /etc/rc.d link, installing a package
# rewrites the package database. Seen on the first scan they are at most `info`.
ROUTINE_PATTERNS = (
    "/etc/config/*", "/etc/shadow", "/etc/shadow-", "/etc/group", "/etc/group-", "/etc/passwd-",
    "/etc/board.json", "/etc/urandom.seed", "/etc/dropbear/dropbear_*_host_key",
    "/etc/uhttpd.crt", "/etc/uhttpd.key", "/etc/luci-uploads/*", "/etc/rc.d/*",
    "/etc/localtime", "/etc/TZ", "/etc/ethers", "/etc/sysupgrade.conf", "/etc/opkg/*",
    "/etc/apk/*", "/etc/apk/*/*", "/lib/apk/db/*", "/lib/apk/packages/*", "/usr/lib/opkg/*",
    "/usr/lib/opkg/info/*", "/etc/routerwatch/*", "/etc/*.apk-new", "/etc/config/*.apk-new",
    "/etc/wireless/*", "/etc/hosts", "/etc/crontabs", "/etc/dropbear",
)

# Where a change means someone can log in or get code run: login accounts and keys, the boot
# and cron hooks, the web root.
SENSITIVE_PATTERNS = (
    "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/dropbear/authorized_keys",
    "/root/.ssh/authorized_keys", "/etc/rc.local", "/etc/crontabs/*", "/etc/init.d/*",
    "/etc/rc.d/*", "/etc/uci-defaults/*", "/etc/hotplug.d/*", "/etc/hotplug.d/*/*",
    "/etc/profile", "/etc/profile.d/*", "/etc/shinit", "/etc/sudoers", "/etc/sudoers.d/*",
    "/etc/config/dropbear", "/etc/config/rpcd", "/etc/config/uhttpd", "/etc/config/firewall",
    "/www/*",
)

# Code that is not compiled: shell, Lua, ucode, CGI, the boot and cron hooks.
SCRIPT_PATTERNS = (
    "/etc/init.d/*", "/etc/hotplug.d/*", "/etc/uci-defaults/*", "/etc/rc.local",
    "/etc/crontabs/*", "/etc/profile", "/etc/profile.d/*", "/etc/shinit", "/lib/functions/*",
    "/lib/functions.sh", "/lib/netifd/*", "/lib/preinit/*", "/lib/upgrade/*", "/lib/wifi/*",
    "/usr/lib/lua/*", "/usr/share/ucode/*", "/usr/share/rpcd/ucode/*", "/usr/libexec/*",
    "/www/cgi-bin/*", "/www/*", "/usr/share/udhcpc/*", "*.sh", "*.lua", "*.uc",
)

# The package managers' own bookkeeping: maintainer scripts (opkg info/<pkg>.postinst, apk's
# /lib/apk/packages/<pkg>.*) are executable but listed by no package; they are the database.
PACKAGE_METADATA_DIRS = ("/usr/lib/opkg/", "/lib/apk/")

EXECUTABLE_DIRS = ("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/libexec/")
LIBRARY_DIRS = ("/lib/", "/usr/lib/")


def _matches(path, patterns):
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def is_sensitive(path):
    return _matches(path, SENSITIVE_PATTERNS)


def classify(path, head=b"", mode=0):
    """What kind of file `path` is, from its name, first bytes and mode:
    executable | library | script | routine | config | data."""
    base = os.path.basename(path)
    is_elf = head.startswith(b"\x7fELF")
    if is_elf or base.endswith(".ko"):
        if ".so" in base or base.endswith(".ko") or (
                path.startswith(LIBRARY_DIRS) and not mode & 0o111):
            return "library"
        return "executable"
    if ".so." in base or base.endswith(".so"):
        return "library"
    if head.startswith(b"#!") or _matches(path, SCRIPT_PATTERNS):
        return "script"
    if mode & 0o111 and stat.S_ISREG(mode) and path.startswith(EXECUTABLE_DIRS):
        return "executable"
    if _matches(path, ROUTINE_PATTERNS):
        return "routine"
    if path.startswith("/etc/"):
        return "config"
    return "data"


def is_executable(head, mode):
    return stat.S_ISREG(mode) and bool(
        mode & 0o111 or head.startswith(b"\x7fELF") or head.startswith(b"#!"))


def is_whiteout(st, abs_path):
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return True
    if stat.S_ISLNK(st.st_mode):
        try:
            return os.readlink(abs_path) == LEGACY_WHITEOUT_TARGET
        except OSError:
            return False
    return False


def is_opaque(abs_path):
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(abs_path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:  # not set, not permitted (trusted.* needs CAP_SYS_ADMIN), unsupported
            continue
    return False


# --------------------------------------------------------------------------- the source

class _Packages:
    """What the package database says about files: owners and checksums."""

    def __init__(self):
        self.manager = "none"
        self.owned = {}               # every path a package lists -> (package, version)
        self.rom_versions = {}        # package -> version in /rom's database (what shipped)
        self.checksums = {}           # path -> (algorithm, digest bytes, package, version)
        self.conffiles = {}           # path -> (algorithm, hex, package, version)   (opkg)
        self.truncated = False


class IntegritySource:
    """Polled source (integrity.* watchers): FileFinding events and one FirmwareIdentity per scan.
    """

    def __init__(self, config):
        self.config = config
        self.settings = config.integrity
        self.root = config.root
        self.rom = os.path.join(self.root, "rom")
        self.upper = os.path.join(self.root, "overlay", "upper")
        self._scan_interval = config.intervals.integrity
        # the agent's own state on flash (baseline, remembered identity) changes by design
        self._own_state = "/" + config.state_dir.strip("/")
        self._cache = BoundedDict(self.settings.max_files)   # abs path -> (sig, digest, head)
        self._reported = BoundedDict(self.settings.max_files)    # (finding, path) -> signature
        self._scan = None
        self._next_scan = 0.0
        self._now = 0.0
        self._events = []
        self._first_scan = True
        self._rom_fingerprint = None
        self.hashes = 0              # files hashed (the counter tests and benchmarks read)
        self.bytes_hashed = 0
        self.scans = 0
        self.resumes = 0
        self._untracked = 0
        self._unreadable = 0
        self._failed = 0
        self._baseline_path = self.settings.baseline or baseline_store.state_path(
            config, baseline_store.BASELINE_FILE)
        self._baseline_supplied = bool(self.settings.baseline)
        self._baseline = self._load_baseline()
        self.baseline_hash = (baseline_store.manifest_hash(self._baseline)
                              if self._baseline is not None else "")
        self._identity_path = baseline_store.state_path(config, FIRMWARE_STATE_FILE)
        self._previous_identity = self._load_identity()

    # ------------------------------------------------------------------ runtime interface
    @property
    def interval(self):
        """Seconds until the runtime polls again: short while a scan is unfinished."""
        return RESUME_INTERVAL if self._scan is not None else self._scan_interval

    def poll(self, now):
        self._now = now
        if self._scan is None:
            if now < self._next_scan:
                return []
            self._next_scan = now + self._scan_interval
            self._scan = self._run_scan()
        else:
            self.resumes += 1
        deadline = time.process_time() + self.settings.cpu_budget
        try:
            while True:
                next(self._scan)
                if time.process_time() >= deadline:
                    break
        except StopIteration:
            self._scan = None
        except (OSError, ValueError) as exc:
            # one odd file must not stop the watching: drop this scan, the next one starts over
            log.warning("integrity scan stopped: %s", exc)
            self._scan = None
            self._failed += 1
        events, self._events = self._events, []
        return events

    @property
    def scanning(self):
        """True while a scan is spread over several polls."""
        return self._scan is not None

    unfinished = scanning    # the runtime's name for "more of this read is still to come"

    def counters(self):
        return {"integrity_scans": self.scans, "integrity_files_hashed": self.hashes,
                "integrity_bytes_hashed": self.bytes_hashed,
                "integrity_scan_resumes": self.resumes}

    def drops(self):
        return {"integrity_untracked_files": self._untracked,
                "integrity_unreadable_files": self._unreadable,
                "integrity_hash_cache": self._cache.evicted,
                "integrity_reported": self._reported.evicted,
                "integrity_scans_failed": self._failed}

    def close(self):
        self._scan = None

    def take_baseline(self, now):
        """Scan to the end now, ignoring the CPU budget, and store the result as the baseline
        in the state dir (the operator accepting every change so far). Returns (path, entries).
        """
        self._baseline = None
        self._baseline_supplied = False
        self._baseline_path = baseline_store.state_path(self.config, baseline_store.BASELINE_FILE)
        self._now = now
        for _ in self._run_scan():
            pass
        self._events = []
        if self._baseline is None:
            raise OSError("more than integrity.max_files=%d files: no baseline taken"
                          % self.settings.max_files)
        return self._baseline_path, self._baseline

    # ------------------------------------------------------------------ state on flash
    def _load_baseline(self):
        try:
            return baseline_store.load(self._baseline_path)
        except baseline_store.BaselineError as exc:
            log.warning("integrity baseline ignored: %s", exc)
            return None

    def _load_identity(self):
        try:
            with open(self._identity_path, "rb") as handle:
                record = jsonio.loads(handle.read(MAX_SMALL_FILE_BYTES))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("identity_hash"), str):
            return None
        return record

    def _save_identity(self, record):
        if self._previous_identity_saved == record:
            return
        directory = os.path.dirname(self._identity_path)
        temporary = self._identity_path + ".tmp"
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            with open(temporary, "w") as handle:
                handle.write(jsonio.dumps(record))
            os.replace(temporary, self._identity_path)
            self._previous_identity_saved = record
        except OSError as exc:
            log.warning("cannot remember the firmware identity in %s: %s", directory, exc)

    _previous_identity_saved = None

    # ------------------------------------------------------------------ reading the tree
    @property
    def has_overlay(self):
        return os.path.isdir(self.upper) and os.path.isdir(self.rom)

    def live_path(self, rel):
        """Where the file the router sees at /<rel> is, or None when it does not exist.

        On a router (root /) /<rel> is the merged view itself. A fixture tree may hold only the
        layers, so then the overlay rules are applied by hand: upper wins, a whiteout or an
        opaque directory on the way hides /rom."""
        direct = os.path.join(self.root, rel)
        if os.path.lexists(direct):
            return direct
        if not self.has_overlay:
            return None
        parts = rel.split("/")
        for depth in range(1, len(parts) + 1):
            upper = os.path.join(self.upper, *parts[:depth])
            try:
                st = os.lstat(upper)
            except OSError:
                break
            if is_whiteout(st, upper):
                return None
            if depth == len(parts):
                return upper
            if stat.S_ISDIR(st.st_mode) and is_opaque(upper):
                return None
        rom = os.path.join(self.rom, rel)
        return rom if os.path.lexists(rom) else None

    def live_listdir(self, rel):
        direct = os.path.join(self.root, rel)
        if os.path.isdir(direct):
            try:
                return sorted(os.listdir(direct))
            except OSError:
                return []
        names = set()
        upper_dir = os.path.join(self.upper, rel)
        hidden = set()
        if os.path.isdir(upper_dir):
            for name in os.listdir(upper_dir):
                try:
                    st = os.lstat(os.path.join(upper_dir, name))
                except OSError:
                    continue
                (hidden if is_whiteout(st, os.path.join(upper_dir, name)) else names).add(name)
            if is_opaque(upper_dir):
                return sorted(names)
        rom_dir = os.path.join(self.rom, rel)
        if os.path.isdir(rom_dir):
            names.update(n for n in os.listdir(rom_dir) if n not in hidden)
        return sorted(names)

    def read_small(self, rel, limit=MAX_SMALL_FILE_BYTES):
        path = self.live_path(rel)
        if path is None:
            return None
        try:
            with open_regular(path, follow=True) as handle:
                return handle.read(limit)
        except OSError:
            return None

    def _digest(self, abs_path, st):
        """Generator: (sha256 hex or None when too large/unreadable, first bytes). Cached by
        size, mtime and inode, so an unchanged file is never read twice."""
        signature = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
        cached = self._cache.get(abs_path)
        if cached is not None and cached[0] == signature:
            return cached[1], cached[2]
        if st.st_size > self.settings.max_file_bytes:
            self._cache.set(abs_path, (signature, None, b""))
            return None, b""
        hasher = hashlib.sha256()
        head = b""
        remaining = self.settings.max_file_bytes
        try:
            with open_regular(abs_path) as handle:
                while remaining > 0:
                    chunk = handle.read(min(CHUNK_BYTES, remaining))
                    remaining -= len(chunk)
                    if not chunk:
                        break
                    if not head:
                        head = chunk[:4]
                    hasher.update(chunk)
                    self.bytes_hashed += len(chunk)
                    if len(chunk) == CHUNK_BYTES:
                        yield
        except OSError:
            self._unreadable += 1
            return None, b""
        self.hashes += 1
        digest = hasher.hexdigest()
        self._cache.set(abs_path, (signature, digest, head))
        return digest, head

    def _file_digest(self, abs_path):
        """Generator: (stat, sha256, head) of any file by path, None sha256 if unreadable."""
        try:
            st = os.lstat(abs_path)
        except OSError:
            return None, None, b""
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(abs_path)
            except OSError:
                return st, None, b""
            return st, hashlib.sha256(os.fsencode(target)).hexdigest(), b""
        if not stat.S_ISREG(st.st_mode):
            return st, None, b""
        digest, head = yield from self._digest(abs_path, st)
        return st, digest, head

    # ------------------------------------------------------------------ findings
    def _emit(self, finding, path, detail, signature):
        key = (finding, path)
        self._seen.add(key)
        if self._reported.get(key) == signature:
            return
        self._reported.set(key, signature)
        self._events.append(FileFinding(time=self._now, finding=finding, path=path,
                                        detail=detail, first_scan=self._first_scan))

    # ------------------------------------------------------------------ one scan
    def _run_scan(self):
        self._seen = set()
        self._truncated = False
        packages = self._load_packages()
        yield
        manifest = {}
        if self.has_overlay:
            yield from self._walk_upper(manifest, packages)
            if self._rom_fingerprint is None:
                self._rom_fingerprint = yield from self._fingerprint_rom()
        else:
            yield from self._walk_plain(manifest, packages)
            if self._rom_fingerprint is None:
                self._rom_fingerprint = ""
        self._compare_baseline(manifest, packages)
        self._events.append(self._identity(packages))
        if not self._truncated:
            for key in self._reported.keys():
                if key not in self._seen:
                    self._reported.pop(key)
        self.scans += 1
        self._first_scan = False

    def _track(self, manifest):
        if len(manifest) >= self.settings.max_files:
            self._untracked += 1
            self._truncated = True
            return False
        return True

    def _walk_upper(self, manifest, packages):
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            try:
                entries = sorted(os.scandir(os.path.join(self.upper, rel_dir)),
                                 key=lambda e: e.name)
            except OSError:
                self._unreadable += 1
                continue
            for entry in entries:
                rel = os.path.join(rel_dir, entry.name) if rel_dir else entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if "/" + rel == self._own_state:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if is_opaque(entry.path) and os.path.isdir(os.path.join(self.rom, rel)):
                        path = "/" + rel
                        if self._track(manifest):
                            manifest[path] = baseline_store.Entry("opaque", 0, st.st_mode)
                        self._emit("opaque", path, self._detail(path, b"", st.st_mode),
                                   "opaque")
                    stack.append(rel)
                    continue
                if not self._track(manifest):
                    continue
                yield from self._check_upper_entry(rel, entry.path, st, manifest, packages)
                yield
            yield

    def _check_upper_entry(self, rel, abs_path, st, manifest, packages):
        path = "/" + rel
        rom_path = os.path.join(self.rom, rel)
        if is_whiteout(st, abs_path):
            manifest[path] = baseline_store.Entry("whiteout", 0, stat.S_IFCHR)
            rom_st, rom_digest, rom_head = yield from self._file_digest(rom_path)
            if rom_st is not None:
                detail = self._detail(path, rom_head, rom_st.st_mode)
                detail.update(rom_sha256=rom_digest, rom_size=rom_st.st_size,
                              legacy=stat.S_ISLNK(st.st_mode))
                self._emit("whiteout", path, detail, "whiteout")
            return
        st, digest, head = yield from self._file_digest(abs_path)
        if st is None or not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            return
        manifest[path] = baseline_store.Entry(digest or "unhashed", st.st_size, st.st_mode)
        rom_st, rom_digest, rom_head = yield from self._file_digest(rom_path)
        if rom_st is not None and not stat.S_ISDIR(rom_st.st_mode):
            if digest is None or rom_digest is None or digest != rom_digest \
                    or stat.S_IFMT(rom_st.st_mode) != stat.S_IFMT(st.st_mode):
                detail = self._detail(path, head or rom_head, st.st_mode)
                detail.update(sha256=digest, rom_sha256=rom_digest, size=st.st_size,
                              rom_size=rom_st.st_size, mode="%o" % st.st_mode,
                              rom_mode="%o" % rom_st.st_mode)
                if stat.S_ISLNK(st.st_mode):
                    detail.update(link=_readlink(abs_path), rom_link=_readlink(rom_path))
                owner = packages.owned.get(path)
                if owner is not None:
                    # an owner's package upgrade also shadows /rom files: the database then
                    # names a newer version than /rom's, and (apk) the new file passes its
                    # checksum. The same version with other content is not an upgrade.
                    shipped = packages.rom_versions.get(owner[0])
                    detail.update(package=owner[0], package_version=owner[1],
                                  rom_package_version=shipped,
                                  package_upgraded=shipped is not None and shipped != owner[1],
                                  package_verified=self._verified(
                                      path, baseline_store.Entry(digest or "", 0, 0), packages))
                self._emit("shadowed", path, detail, digest or "unhashed")
        elif is_executable(head, st.st_mode) and path not in packages.owned \
                and not path.startswith(PACKAGE_METADATA_DIRS):
            detail = self._detail(path, head, st.st_mode)
            detail.update(sha256=digest, size=st.st_size, mode="%o" % st.st_mode,
                          elf=head.startswith(b"\x7fELF"))
            self._emit("new_executable", path, detail, digest or "unhashed")
        self._check_package(path, st, digest, head, packages, abs_path)

    def _check_package(self, path, st, digest, head, packages, abs_path):
        expected = packages.checksums.get(path)
        if expected is not None and stat.S_ISREG(st.st_mode) and digest is not None:
            algorithm, wanted, package, version = expected
            actual = _recompute(abs_path, algorithm, digest)
            if actual is not None and actual != wanted:
                detail = self._detail(path, head, st.st_mode)
                detail.update(package=package, version=version, algorithm=algorithm,
                              expected=wanted.hex(), actual=actual.hex(), sha256=digest,
                              size=st.st_size, conffile=False)
                self._emit("package_mismatch", path, detail, digest)
        conffile = packages.conffiles.get(path)
        if conffile is not None and stat.S_ISREG(st.st_mode) and digest is not None:
            algorithm, wanted, package, version = conffile
            actual = digest if algorithm == "sha256" else _recompute(abs_path, "md5", digest)
            actual = actual.hex() if isinstance(actual, bytes) else actual
            if actual is not None and actual != wanted:
                detail = self._detail(path, head, st.st_mode)
                detail.update(package=package, version=version, algorithm=algorithm,
                              expected=wanted, actual=actual, sha256=digest, size=st.st_size,
                              conffile=True)
                self._emit("package_mismatch", path, detail, digest)

    def _walk_plain(self, manifest, packages):
        """No overlay: the sensitive paths and every file with a package checksum, in place."""
        candidates = []
        for pattern in SENSITIVE_PATTERNS:
            rel = pattern.lstrip("/")
            if "*" not in rel:
                candidates.append(rel)
                continue
            head, _, tail = rel.partition("*")
            directory = head.rstrip("/")
            if tail or not directory:
                continue   # only "dir/*" patterns are expanded here; deeper ones are rare
            for name in self.live_listdir(directory)[: self.settings.max_files]:
                candidates.append(directory + "/" + name)
        candidates.extend(p.lstrip("/") for p in sorted(packages.checksums))
        candidates.extend(p.lstrip("/") for p in sorted(packages.conffiles))
        done = set()
        for rel in candidates:
            if rel in done:
                continue
            done.add(rel)
            abs_path = os.path.join(self.root, rel)
            if not os.path.lexists(abs_path) or os.path.isdir(abs_path):
                continue
            if not self._track(manifest):
                break
            st, digest, head = yield from self._file_digest(abs_path)
            if st is None or not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue
            path = "/" + rel
            manifest[path] = baseline_store.Entry(digest or "unhashed", st.st_size, st.st_mode)
            self._check_package(path, st, digest, head, packages, abs_path)
            yield

    def _fingerprint_rom(self):
        """sha256 over the sorted (path, size, mode, mtime, link) of /rom: cheap (stat only) and
        enough to notice a different squashfs behind the same version string."""
        hasher = hashlib.sha256()
        stack = [""]
        count = 0
        while stack and count < self.settings.max_files:
            rel_dir = stack.pop()
            try:
                entries = sorted(os.scandir(os.path.join(self.rom, rel_dir)),
                                 key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                rel = os.path.join(rel_dir, entry.name) if rel_dir else entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                link = _readlink(entry.path) if stat.S_ISLNK(st.st_mode) else ""
                hasher.update(("%s\t%d\t%o\t%d\t%s\n" % (
                    baseline_store.escape_path("/" + rel), st.st_size if not stat.S_ISDIR(
                        st.st_mode) else 0, st.st_mode, int(st.st_mtime), link)).encode(
                    "utf-8", "surrogateescape"))
                count += 1
                if stat.S_ISDIR(st.st_mode):
                    stack.append(rel)
            yield
        return hasher.hexdigest()

    # ------------------------------------------------------------------ package database
    def _load_packages(self):
        packages = _Packages()
        apk = self.read_small("lib/apk/db/installed", MAX_DB_BYTES)
        if apk is not None:
            packages.manager = "apk"
            database = parse_installed(apk)
            packages.truncated = database.truncated
            for package in database.packages:
                for item in package.files:
                    packages.owned[item.path] = (package.name, package.version)
                    if item.digest is not None and item.algorithm != "sha512":
                        packages.checksums[item.path] = (item.algorithm, item.digest,
                                                         package.name, package.version)
            packages.rom_versions = self._rom_versions("lib/apk/db/installed", parse_installed)
            return packages
        status = self.read_small("usr/lib/opkg/status", MAX_DB_BYTES)
        if status is None:
            return packages
        packages.manager = "opkg"
        database = parse_status(status)
        packages.truncated = database.truncated
        for package in database.packages:
            if not package.installed:
                continue
            for conffile in package.conffiles:
                packages.conffiles[conffile.path] = (conffile.algorithm, conffile.checksum,
                                                     package.name, package.version)
            listing = self.read_small("usr/lib/opkg/info/%s.list" % package.name,
                                      MAX_DB_BYTES)
            if listing is not None:
                packages.owned.update((path, (package.name, package.version))
                                      for path in parse_list(listing))
        packages.rom_versions = self._rom_versions("usr/lib/opkg/status", parse_status)
        return packages

    def _rom_versions(self, rel, parse):
        if not self.has_overlay:
            return {}
        try:
            with open_regular(os.path.join(self.rom, rel)) as handle:
                database = parse(handle.read(MAX_DB_BYTES))
        except OSError:
            return {}
        return {package.name: package.version for package in database.packages}

    # ------------------------------------------------------------------ baseline
    def _compare_baseline(self, manifest, packages):
        if self._baseline is None:
            if self._truncated:
                return   # a partial manifest would make a misleading baseline
            self._baseline = dict(manifest)
            self.baseline_hash = baseline_store.manifest_hash(self._baseline)
            if not self._baseline_supplied:
                try:
                    baseline_store.save(self._baseline_path, self._baseline)
                except OSError as exc:
                    log.warning("cannot write the integrity baseline %s: %s",
                                self._baseline_path, exc)
            return
        for path in sorted(set(manifest) | set(self._baseline)):
            now_entry = manifest.get(path)
            then = self._baseline.get(path)
            if now_entry == then:
                continue
            if now_entry is None:
                if self._truncated:
                    continue
                change = "removed"
            elif then is None:
                change = "added"
            elif now_entry.digest != then.digest:
                change = "modified"
            elif now_entry.mode != then.mode:
                change = "mode"
            else:
                continue   # only the size field differs for an unhashed file: not evidence
            head = b""
            if now_entry is not None:
                cached = self._cache.get(self.live_path(path.lstrip("/")) or "")
                head = cached[2] if cached else b""
            mode = (now_entry or then).mode
            detail = self._detail(path, head, mode)
            detail.update(change=change,
                          sha256=now_entry.digest if now_entry else None,
                          baseline_sha256=then.digest if then else None,
                          size=now_entry.size if now_entry else None,
                          baseline_size=then.size if then else None,
                          mode="%o" % mode)
            if then is not None and now_entry is not None and now_entry.mode != then.mode:
                detail["baseline_mode"] = "%o" % then.mode
            detail["package_owned"] = path in packages.owned
            detail["package_verified"] = self._verified(path, now_entry, packages)
            self._emit("baseline_drift", path, detail,
                       "%s:%s" % (change, now_entry.digest if now_entry else "-"))

    def _verified(self, path, entry, packages):
        """True when the package database's checksum for `path` matches its current content."""
        expected = packages.checksums.get(path)
        if expected is None or entry is None or len(entry.digest) != 64:
            return False
        live = self.live_path(path.lstrip("/"))
        actual = _recompute(live, expected[0], entry.digest) if live else None
        return actual is not None and actual == expected[1]

    # ------------------------------------------------------------------ identity
    def _identity(self, packages):
        release = parse_release(self.read_small("etc/openwrt_release") or b"")
        if not release:
            os_release = parse_release(self.read_small("etc/os-release")
                                       or self.read_small("usr/lib/os-release") or b"")
            release = {k: v for k, v in os_release.items() if k in (
                "NAME", "VERSION", "ID", "VERSION_ID", "BUILD_ID", "PRETTY_NAME",
                "OPENWRT_BOARD", "OPENWRT_ARCH", "OPENWRT_RELEASE", "OPENWRT_TAINTS")}
        release = dict(list(release.items())[:24])
        board = _first_line(self.read_small("tmp/sysinfo/board_name"))
        model = _first_line(self.read_small("tmp/sysinfo/model"))
        kernel = _first_line(self.read_small("proc/sys/kernel/osrelease"))
        if not kernel:
            version = _first_line(self.read_small("proc/version")).split()
            kernel = version[2] if len(version) > 2 else ""
        rom_db = None
        if self.has_overlay:
            for rel in ("lib/apk/db/installed", "usr/lib/opkg/status"):
                try:
                    with open(os.path.join(self.rom, rel), "rb") as handle:
                        rom_db = handle.read(MAX_DB_BYTES)
                    break
                except OSError:
                    continue
        rom_packages_hash = hashlib.sha256(rom_db).hexdigest() if rom_db is not None else ""
        record = {"release": release, "board": board, "model": model, "kernel": kernel,
                  "rom_hash": self._rom_fingerprint or "",
                  "rom_packages_hash": rom_packages_hash}
        identity_hash = hashlib.sha256(_canonical_json(record).encode("utf-8")).hexdigest()
        record["identity_hash"] = identity_hash
        previous = self._previous_identity
        self._save_identity(record)
        return FirmwareIdentity(
            time=self._now, release=release, board=board, model=model, kernel=kernel,
            identity_hash=identity_hash,
            previous_hash=previous.get("identity_hash") if previous else None,
            baseline_hash=self.baseline_hash, package_manager=packages.manager,
            rom_hash=record["rom_hash"], rom_packages_hash=rom_packages_hash,
            previous=previous)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _detail(path, head, mode):
        return {"class": classify(path, head, mode), "sensitive": is_sensitive(path)}


def baseline_command(config, action, now):
    """`routerwatch-agent baseline show|create`; returns the exit code."""
    source = IntegritySource(config)
    if action == "create":
        try:
            path, entries = source.take_baseline(now)
        except OSError as exc:
            print("routerwatch: cannot take a baseline: %s" % exc, file=sys.stderr)
            return 3
        print("baseline %s: %d paths written to %s" % (
            baseline_store.manifest_hash(entries), len(entries), path))
        if config.integrity.baseline:
            print("note: integrity.baseline=%s is configured and is what the agent compares "
                  "against" % config.integrity.baseline)
        return 0
    if source._baseline is None:
        print("no baseline at %s yet (the agent takes one at its first scan)"
              % source._baseline_path, file=sys.stderr)
        return 3
    for line in baseline_store.describe(source._baseline):
        print(line)
    return 0


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


def _canonical_json(record):
    """One text per identity whatever the dict order: sorted [key, value] pairs, two levels."""
    def pairs(mapping):
        return [[key, pairs(value) if isinstance(value, dict) else value]
                for key, value in sorted(mapping.items())]
    return jsonio.dumps(pairs(record))


def _first_line(data):
    if not data:
        return ""
    text = data.decode("utf-8", "replace").split("\n", 1)[0].strip()
    return "".join(ch for ch in text if ch.isprintable())[:128]


def _readlink(path):
    try:
        return os.readlink(path)[:1024]
    except OSError:
        return None


def _recompute(abs_path, algorithm, sha256_hex):
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
