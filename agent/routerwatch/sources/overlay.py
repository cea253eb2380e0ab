"""The firmware-integrity watcher: the writable overlay against /rom, package checksums, the
baseline, and the firmware identity.

On OpenWrt the read-only squashfs is mounted on /rom and the writable layer on /overlay; every
file that was changed or added lives at /overlay/upper/<path>, every deleted /rom file is a
whiteout there (a 0/0 character device, or an `(overlay-whiteout)` symlink from old overlayfs),
and a replaced directory carries trusted.overlay.opaque=y. So the walk covers only the upper
layer — small on a healthy router — and /rom is read only where upper shadows it. Without an
overlay (a plain Linux system, or a fixture tree without one) the sensitive paths and the
package files are checked in place instead.

The parts, one module each: overlay_walk (which files, most important first, bounded),
overlay_hashing (sha256 with its cache), overlay_packages (the package database's owners and
checksums), overlay_firmware (the firmware identity), overlay_paths (what a path is),
overlay_tree (reading the layered tree). This module runs a scan over them and judges.

Each scan emits FileFinding events when the state of a path changes (first seen in this run, or
new content) and one FirmwareIdentity. A scan stops when it has used integrity.cpu_budget seconds
of CPU and resumes at the next poll (it is a generator), so the loop never stalls on a slow flash.

Finding names (FileFinding.finding) and their detail keys:
  shadowed          upper file differs from the /rom file: sha256, rom_sha256, size, rom_size
  whiteout          a /rom file deleted in the overlay: rom_sha256 (when hashed)
  opaque            a /rom directory hidden wholesale by an opaque upper directory
  special_file      a FIFO, device node or socket over a /rom file or in a sensitive or code
                    place (never opened): file_type, mode, shadows_rom, rom_mode, rdev
  new_executable    an executable in the overlay that is neither in /rom nor in a package
  package_mismatch  a package file whose content fails the package database's checksum
  baseline_drift    a tracked file differs from the baseline: change, sha256, baseline_sha256
  flood             more files than integrity.max_files (or more bytes of path than it allows):
                    max_files, max_path_bytes, files, dropped,
                    dropped_by_rank, too_deep, directories and subtrees (the largest, with counts);
                    or a package database past its caps: database, limits and the counts
                    (overlay_packages.DatabaseRead.detail)
Every detail also has class (executable | library | script | routine | config | data) and
sensitive (bool): see overlay_paths.classify() and is_sensitive().
"""
import logging
import os
import stat
import sys
import time

from .. import baseline as baseline_store
from ..bounded import BoundedDict
from ..events import FileFinding
from . import overlay_packages
from .overlay_firmware import FIRMWARE_STATE_FILE, FirmwareRecord, fingerprint_rom, read_identity
from .overlay_hashing import FileHasher, open_regular, read_link, rom_key  # noqa: F401 (API)
from .overlay_packages import PackageCache
from .overlay_paths import (PACKAGE_METADATA_DIRS, RANK_ACCESS, RANK_CODE, RANK_DATA,
                            RANK_NAMES, SENSITIVE_PATTERNS, classify,  # noqa: F401 (API)
                            detail_for, directory_rank, file_rank, is_executable,
                            is_opaque, is_sensitive, is_whiteout, special_type)
from .overlay_tree import OverlayTree
from .overlay_walk import Candidates, FloodCounter, walk

log = logging.getLogger("routerwatch")

RESUME_INTERVAL = 2               # seconds between polls while a scan is unfinished
# New findings one scan hands to the detectors; the rest wait for the next scan. The walk goes
# most important first, so what waits is the least important, and a flood of executables
# cannot fill the memory with events.
MAX_NEW_FINDINGS_PER_SCAN = 500


class PathsOfInterest:
    """`path in` any of some containers (the scan's kept files, the baseline; None skipped)."""

    def __init__(self, *containers):
        self._containers = [c for c in containers if c is not None]

    def __contains__(self, path):
        return any(path in container for container in self._containers)

    def __iter__(self):
        """Every path of every container (a path in two comes twice)."""
        for container in self._containers:
            yield from container


class IntegritySource:
    """Polled source (integrity.* watchers): FileFinding events and one FirmwareIdentity per scan.
    """

    def __init__(self, config):
        self.config = config
        self.settings = config.integrity
        self.tree = OverlayTree(config.root)
        self.root, self.rom, self.upper = self.tree.root, self.tree.rom, self.tree.upper
        self._scan_interval = config.intervals.integrity
        # the agent's own state on flash (baseline, remembered identity) changes by design
        self._own_state = "/" + config.state_dir.strip("/")
        self.hasher = FileHasher(self.settings.max_file_bytes)
        self.package_cache = PackageCache()
        self._reported = BoundedDict(self.settings.max_files)    # (finding, path) -> signature
        self._scan = None
        self._next_scan = 0.0
        self._now = 0.0
        self._events = []
        self._first_scan = True
        self._rom_fingerprint = None
        self.scans = 0
        self.resumes = 0
        self._untracked = 0
        self._failed = 0
        self._deferred = 0
        self._baseline_path = self.settings.baseline or baseline_store.state_path(
            config, baseline_store.BASELINE_FILE)
        self._baseline_supplied = bool(self.settings.baseline)
        self._baseline = self._load_baseline()
        self.baseline_hash = (baseline_store.manifest_hash(self._baseline)
                              if self._baseline is not None else "")
        self._firmware = FirmwareRecord(baseline_store.state_path(config, FIRMWARE_STATE_FILE))

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

    @property
    def hashes(self):
        """Files hashed (the counter tests and benchmarks read)."""
        return self.hasher.hashes

    @property
    def bytes_hashed(self):
        return self.hasher.bytes_hashed

    def counters(self):
        return {"integrity_scans": self.scans, "integrity_files_hashed": self.hashes,
                "integrity_bytes_hashed": self.bytes_hashed,
                "integrity_scan_resumes": self.resumes,
                "integrity_package_db_reads": self.package_cache.reads}

    def drops(self):
        return {"integrity_untracked_files": self._untracked,
                "integrity_unreadable_files": self.hasher.unreadable,
                "integrity_findings_deferred": self._deferred,
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

    def _load_baseline(self):
        try:
            return baseline_store.load(self._baseline_path)
        except baseline_store.BaselineError as exc:
            log.warning("integrity baseline ignored: %s", exc)
            return None

    # ------------------------------------------------------------------ reading the tree
    @property
    def has_overlay(self):
        return self.tree.has_overlay

    @property
    def failure(self):
        """For agent.degraded: the overlay or /rom is not where it is looked for (unmounted,
        moved away). A router that never had one is not degraded: the detector only counts
        an outage of a source that read before."""
        if self.has_overlay:
            return None
        return "no overlay at /%s with /rom beside it" % os.path.relpath(self.upper, self.root)

    def live_path(self, rel):
        return self.tree.live_path(rel)

    def read_small(self, rel, limit=None):
        return self.tree.read_small(rel) if limit is None else self.tree.read_small(rel, limit)

    def _file_digest(self, key, abs_path):
        return self.hasher.file_digest(key, abs_path)

    def _track(self, manifest, path, digest, size, mode):
        manifest.put(path, baseline_store.Entry(digest, size, mode), like=self._baseline)

    # ------------------------------------------------------------------ findings
    def _emit(self, finding, path, detail, signature):
        key = (finding, path)
        if self._reported.get(key) == signature:
            self._seen.add(key)
            return
        if self._new_findings >= MAX_NEW_FINDINGS_PER_SCAN and finding != "flood":
            self._deferred += 1      # not remembered as reported: the next scan sends it
            return
        self._seen.add(key)
        self._new_findings += 1
        self._reported.set(key, signature)
        self._events.append(FileFinding(time=self._now, finding=finding, path=path,
                                        detail=detail, first_scan=self._first_scan))

    # ------------------------------------------------------------------ one scan
    def _run_scan(self):
        self._seen = set()
        self._truncated = False
        self._new_findings = 0
        self.hasher.start_scan()
        yield
        manifest = baseline_store.Manifest()
        if self.has_overlay:
            packages = yield from self._walk_upper(manifest)
            if self._rom_fingerprint is None:
                self._rom_fingerprint = yield from fingerprint_rom(self.rom,
                                                                   self.settings.max_files)
        else:
            packages = yield from self._walk_plain(manifest)
            if self._rom_fingerprint is None:
                self._rom_fingerprint = ""
        self._compare_baseline(manifest, packages)
        del manifest
        self._events.append(read_identity(self.tree, self._firmware, self._now,
                                          self._rom_fingerprint, self.baseline_hash,
                                          packages.manager))
        if not self._truncated:
            for key in self._reported.keys():
                if key not in self._seen:
                    self._reported.pop(key)
        self._seen = set()
        self.hasher.finish_scan()
        self.scans += 1
        self._first_scan = False

    def _load_packages(self, candidates):
        """The package database's word on the files this scan checks (`candidates`) and on the
        baseline's: only those are kept, so its memory follows the scan's own bound. It is read
        again only when it changed or the scan asks about other paths (PackageCache)."""
        wanted = PathsOfInterest(set(candidates), self._baseline)
        packages = yield from self.package_cache.load(self.tree, wanted)
        read = packages.read
        if read is not None and read.limits:
            # a database past its caps is junk written there, or something to look at
            detail = {"class": "data", "sensitive": False}
            detail.update(read.detail())
            self._emit("flood", read.path, detail, "database:" + ",".join(read.limits))
        return packages

    def _walk_upper(self, manifest):
        """The overlay's upper layer, most important files first (see overlay_walk); returns
        the Packages it was checked against."""
        candidates = Candidates(self.settings.max_files)
        flood = FloodCounter()
        yield from walk(self.upper, self.rom, candidates, flood, skip=(self._own_state,))
        packages = yield from self._load_packages(candidates)
        for _rank, path in candidates.drain():
            path = sys.intern(path)     # one object for this path in manifest, cache, baseline
            abs_path = os.path.join(self.upper, path[1:])
            try:
                st = os.lstat(abs_path)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if is_opaque(abs_path) and os.path.isdir(os.path.join(self.rom, path[1:])):
                    self._track(manifest, path, "opaque", 0, st.st_mode)
                    self._emit("opaque", path, detail_for(path, b"", st.st_mode), "opaque")
            else:
                yield from self._check_upper_entry(path, abs_path, st, manifest, packages)
            yield
        self.hasher.unreadable += flood.unreadable
        self._report_flood(candidates, flood)
        return packages

    def _report_flood(self, candidates, flood):
        dropped = candidates.dropped_total + flood.too_deep
        if not dropped:
            return
        self._truncated = True
        self._untracked += dropped
        largest, subtrees = flood.largest(), flood.largest_subtrees()
        where = flood.where()
        detail = {"class": "data", "sensitive": False, "max_files": self.settings.max_files,
                  "max_path_bytes": candidates.byte_limit,
                  "files": flood.files, "dropped": candidates.dropped_total,
                  "dropped_by_rank": {name: n for name, n in zip(RANK_NAMES, candidates.dropped)
                                      if n},
                  "too_deep": flood.too_deep,
                  "directories": [{"path": d.path, "files": d.files} for d in largest],
                  "subtrees": [{"path": d.path, "files": d.files} for d in subtrees]}
        self._emit("flood", where, detail, where)

    def _check_upper_entry(self, path, abs_path, st, manifest, packages):
        rom_path = os.path.join(self.rom, path[1:])
        if is_whiteout(st, abs_path):
            self._track(manifest, path, "whiteout", 0, stat.S_IFCHR)
            rom_st, rom_digest, rom_head = yield from self._file_digest(rom_key(path), rom_path)
            if rom_st is not None:
                detail = detail_for(path, rom_head, rom_st.st_mode)
                detail.update(rom_sha256=rom_digest, rom_size=rom_st.st_size,
                              legacy=stat.S_ISLNK(st.st_mode))
                self._emit("whiteout", path, detail, "whiteout")
            return
        if special_type(st.st_mode) is not None:
            self._check_special(path, st, rom_path)
            return
        st, digest, head = yield from self._file_digest(path, abs_path)
        if st is None or not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            return
        self._track(manifest, path, digest or "unhashed", st.st_size, st.st_mode)
        rom_st, rom_digest, rom_head = yield from self._file_digest(rom_key(path), rom_path)
        if rom_st is not None and not stat.S_ISDIR(rom_st.st_mode):
            if digest is None or rom_digest is None or digest != rom_digest \
                    or stat.S_IFMT(rom_st.st_mode) != stat.S_IFMT(st.st_mode):
                self._report_shadowed(path, abs_path, st, digest, head, rom_path, rom_st,
                                      rom_digest, rom_head, packages)
        elif is_executable(head, st.st_mode) and path not in packages.owned \
                and not path.startswith(PACKAGE_METADATA_DIRS):
            detail = detail_for(path, head, st.st_mode)
            detail.update(sha256=digest, size=st.st_size, mode="%o" % st.st_mode,
                          elf=head.startswith(b"\x7fELF"))
            self._emit("new_executable", path, detail, digest or "unhashed")
        for detail in overlay_packages.mismatches(packages, path, st, digest, head, abs_path):
            self._emit("package_mismatch", path, detail, digest)

    def _report_shadowed(self, path, abs_path, st, digest, head, rom_path, rom_st, rom_digest,
                         rom_head, packages):
        detail = detail_for(path, head or rom_head, st.st_mode)
        detail.update(sha256=digest, rom_sha256=rom_digest, size=st.st_size,
                      rom_size=rom_st.st_size, mode="%o" % st.st_mode,
                      rom_mode="%o" % rom_st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            detail.update(link=read_link(abs_path), rom_link=read_link(rom_path))
        owner = packages.owned.get(path)
        if owner is not None:
            # an owner's package upgrade also shadows /rom files: the database then names a
            # newer version than /rom's, and (apk) the new file passes its checksum. The same
            # version with other content is not an upgrade.
            shipped = packages.rom_versions.get(owner[0])
            detail.update(package=owner[0], package_version=owner[1],
                          rom_package_version=shipped,
                          package_upgraded=shipped is not None and shipped != owner[1],
                          package_verified=overlay_packages.verified(
                              packages, path, digest, abs_path))
        self._emit("shadowed", path, detail, digest or "unhashed")

    def _check_special(self, path, st, rom_path):
        """A FIFO, device node or socket: looked at (lstat), never opened. Reported where it
        stands in for a /rom file or sits where logins, autostart or code are read from."""
        try:
            rom_st = os.lstat(rom_path)
        except OSError:
            rom_st = None
        parent = os.path.dirname(path).rstrip("/") + "/"
        sensitive = is_sensitive(path)
        if rom_st is None and not sensitive and directory_rank(parent) > RANK_CODE:
            return
        kind = special_type(st.st_mode)
        detail = detail_for(path, b"", rom_st.st_mode if rom_st is not None else st.st_mode)
        detail.update(file_type=kind, mode="%o" % st.st_mode, shadows_rom=rom_st is not None,
                      rom_mode="%o" % rom_st.st_mode if rom_st is not None else None,
                      rom_size=rom_st.st_size if rom_st is not None else None)
        if kind in ("char_device", "block_device"):
            detail["rdev"] = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
        self._emit("special_file", path, detail, "%s:%o:%d" % (kind, st.st_mode, st.st_rdev))

    def _walk_plain(self, manifest):
        """No overlay: the sensitive paths and the files the package database gives a checksum
        for, in place, as many as integrity.max_files and its path bytes allow (sensitive
        first, then by rank); returns the Packages they were checked against."""
        limit = self.settings.max_files
        candidates = Candidates(limit, unique=True)
        for pattern in SENSITIVE_PATTERNS:
            rel = pattern.lstrip("/")
            if "*" not in rel:
                self._offer_plain(candidates, RANK_ACCESS, rel)
                continue
            head, _, tail = rel.partition("*")
            directory = head.rstrip("/")
            if tail or not directory:
                continue   # only "dir/*" patterns are expanded here; deeper ones are rare
            for name in self.tree.live_listdir(directory, limit):
                self._offer_plain(candidates, RANK_ACCESS, directory + "/" + name)
        for count, path in enumerate(overlay_packages.package_paths(self.tree), 1):
            directory = path.rsplit("/", 1)[0] + "/"
            self._offer_plain(candidates, file_rank(path, 0, directory_rank(directory)),
                              path.lstrip("/"))
            if count % 256 == 0:
                yield
        packages = yield from self._load_packages(candidates)
        for _rank, path in candidates.drain():
            abs_path = os.path.join(self.root, path[1:])
            st, digest, head = yield from self._file_digest(path, abs_path)
            if st is None or not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue
            self._track(manifest, path, digest or "unhashed", st.st_size, st.st_mode)
            for detail in overlay_packages.mismatches(packages, path, st, digest, head,
                                                      abs_path):
                self._emit("package_mismatch", path, detail, digest)
            yield
        dropped = candidates.dropped_total
        if dropped:
            self._truncated = True
            self._untracked += dropped
            self._emit("flood", "/", {"class": "data", "sensitive": False, "max_files": limit,
                                      "max_path_bytes": candidates.byte_limit,
                                      "files": len(manifest) + dropped, "dropped": dropped,
                                      "dropped_by_rank": {
                                          name: n for name, n in zip(RANK_NAMES,
                                                                     candidates.dropped) if n},
                                      "too_deep": 0, "directories": [], "subtrees": []}, "/")
        return packages

    def _offer_plain(self, candidates, rank, rel):
        """Offer /<rel> when it is there and no directory (a file the database lists may be
        gone; only what exists takes room)."""
        abs_path = os.path.join(self.root, rel)
        if os.path.lexists(abs_path) and not os.path.isdir(abs_path):
            candidates.offer(rank, sys.intern("/" + rel))

    # ------------------------------------------------------------------ baseline
    def _compare_baseline(self, manifest, packages):
        if self._baseline is None:
            if self._truncated:
                return   # a partial manifest would make a misleading baseline
            self._baseline = manifest
            self.baseline_hash = baseline_store.manifest_hash(self._baseline)
            if not self._baseline_supplied:
                try:
                    baseline_store.save(self._baseline_path, self._baseline)
                except OSError as exc:
                    log.warning("cannot write the integrity baseline %s: %s",
                                self._baseline_path, exc)
            return
        for path in sorted(manifest):
            then = self._baseline.get(path)
            if then is None and self._truncated and self._is_bulk(path, manifest[path]):
                continue   # junk that came with a flood: integrity.file_flood stands for it
            self._compare_path(path, manifest.get(path), then, packages)
        if not self._truncated:
            for path in sorted(self._baseline):
                if path not in manifest:
                    self._compare_path(path, None, self._baseline[path], packages)

    @staticmethod
    def _is_bulk(path, entry):
        directory = path.rsplit("/", 1)[0] + "/"
        return file_rank(path, entry.mode, directory_rank(directory)) == RANK_DATA

    def _compare_path(self, path, now_entry, then, packages):
        if now_entry == then:
            return
        if now_entry is None:
            change = "removed"
        elif then is None:
            change = "added"
        elif now_entry.digest != then.digest:
            change = "modified"
        elif now_entry.mode != then.mode:
            change = "mode"
        else:
            return   # only the size field differs for an unhashed file: not evidence
        head = self.hasher.head(path) if now_entry is not None else b""
        mode = (now_entry or then).mode
        detail = detail_for(path, head, mode)
        detail.update(change=change,
                      sha256=now_entry.digest if now_entry else None,
                      baseline_sha256=then.digest if then else None,
                      size=now_entry.size if now_entry else None,
                      baseline_size=then.size if then else None,
                      mode="%o" % mode)
        if then is not None and now_entry is not None and now_entry.mode != then.mode:
            detail["baseline_mode"] = "%o" % then.mode
        detail["package_owned"] = path in packages.owned
        detail["package_verified"] = now_entry is not None and overlay_packages.verified(
            packages, path, now_entry.digest, self.live_path(path.lstrip("/")))
        self._emit("baseline_drift", path, detail,
                   "%s:%s" % (change, now_entry.digest if now_entry else "-"))


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
