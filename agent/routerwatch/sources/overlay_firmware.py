"""The firmware identity: release, board, model, kernel, a fingerprint of /rom and the hash of
/rom's package database, remembered in the state dir so a changed firmware is noticed."""
import hashlib
import logging
import os
import stat

from .. import baseline as baseline_store
from .. import jsonio
from ..events import FirmwareIdentity
from ..parsers.openwrt_release import parse_release
from .overlay_hashing import read_link
from .overlay_packages import rom_database_hash
from .overlay_tree import MAX_SMALL_FILE_BYTES
from .overlay_walk import YIELD_EVERY

log = logging.getLogger("routerwatch")

FIRMWARE_STATE_FILE = "firmware.json"
_OS_RELEASE_KEYS = ("NAME", "VERSION", "ID", "VERSION_ID", "BUILD_ID", "PRETTY_NAME",
                    "OPENWRT_BOARD", "OPENWRT_ARCH", "OPENWRT_RELEASE", "OPENWRT_TAINTS")


class FirmwareRecord:
    """The identity remembered across restarts (state dir, firmware.json)."""

    def __init__(self, path):
        self.path = path
        self.previous = self._load()
        self._saved = None

    def _load(self):
        try:
            with open(self.path, "rb") as handle:
                record = jsonio.loads(handle.read(MAX_SMALL_FILE_BYTES))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("identity_hash"), str):
            return None
        return record

    def save(self, record):
        """Write `record` unless this run already wrote the same (flash wears)."""
        if self._saved == record:
            return
        directory = os.path.dirname(self.path)
        temporary = self.path + ".tmp"
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            with open(temporary, "w") as handle:
                handle.write(jsonio.dumps(record))
            os.replace(temporary, self.path)
            self._saved = record
        except OSError as exc:
            log.warning("cannot remember the firmware identity in %s: %s", directory, exc)


def fingerprint_rom(rom, max_entries):
    """Generator returning the sha256 over the sorted (path, size, mode, mtime, link) of /rom:
    cheap (stat only) and enough to notice a different squashfs behind the same version string.
    /rom is the firmware image, not attacker-writable, so one sorted directory at a time is
    fine; `max_entries` bounds it anyway."""
    hasher = hashlib.sha256()
    stack = [""]
    count = 0
    while stack and count < max_entries:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(rom, rel_dir)) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            rel = os.path.join(rel_dir, entry.name) if rel_dir else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            link = read_link(entry.path) if stat.S_ISLNK(st.st_mode) else ""
            hasher.update(("%s\t%d\t%o\t%d\t%s\n" % (
                baseline_store.escape_path("/" + rel), st.st_size if not stat.S_ISDIR(
                    st.st_mode) else 0, st.st_mode, int(st.st_mtime), link)).encode(
                "utf-8", "surrogateescape"))
            count += 1
            if stat.S_ISDIR(st.st_mode):
                stack.append(rel)
            if count % YIELD_EVERY == 0:
                yield
        yield
    return hasher.hexdigest()


def read_identity(tree, record_store, now, rom_hash, baseline_hash, package_manager):
    """The FirmwareIdentity of the router in `tree`, remembered in `record_store`."""
    release = parse_release(tree.read_small("etc/openwrt_release") or b"")
    if not release:
        os_release = parse_release(tree.read_small("etc/os-release")
                                   or tree.read_small("usr/lib/os-release") or b"")
        release = {k: v for k, v in os_release.items() if k in _OS_RELEASE_KEYS}
    release = dict(list(release.items())[:24])
    board = _first_line(tree.read_small("tmp/sysinfo/board_name"))
    model = _first_line(tree.read_small("tmp/sysinfo/model"))
    kernel = _first_line(tree.read_small("proc/sys/kernel/osrelease"))
    if not kernel:
        version = _first_line(tree.read_small("proc/version")).split()
        kernel = version[2] if len(version) > 2 else ""
    rom_packages_hash = rom_database_hash(tree)
    record = {"release": release, "board": board, "model": model, "kernel": kernel,
              "rom_hash": rom_hash or "", "rom_packages_hash": rom_packages_hash}
    identity_hash = hashlib.sha256(_canonical_json(record).encode("utf-8")).hexdigest()
    record["identity_hash"] = identity_hash
    previous = record_store.previous
    record_store.save(record)
    return FirmwareIdentity(
        time=now, release=release, board=board, model=model, kernel=kernel,
        identity_hash=identity_hash,
        previous_hash=previous.get("identity_hash") if previous else None,
        baseline_hash=baseline_hash, package_manager=package_manager,
        rom_hash=record["rom_hash"], rom_packages_hash=rom_packages_hash, previous=previous)


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

