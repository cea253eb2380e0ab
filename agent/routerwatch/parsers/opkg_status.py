"""opkg's package database (OpenWrt up to 24.10): /usr/lib/opkg/status and info/<pkg>.list.

status: RFC822-like stanzas (opkg-lede libopkg/pkg.c); the fields used here are `Package`,
`Version`, `Status` and `Conffiles` (continuation lines ` <path> <checksum>`; the checksum is
sha256 hex, or md5 when it is 32 characters — opkg treats anything of at most 33 as md5).
info/<pkg>.list: one absolute path per line, no checksums.
"""
import re
from dataclasses import dataclass
from typing import Tuple

MAX_INPUT_BYTES = 8 * 1024 * 1024
MAX_PACKAGES = 4096
MAX_CONFFILES = 256          # per package
MAX_LIST_PATHS = 20000       # per .list file
MAX_PATH_CHARS = 1024

_FIELD_RE = re.compile(r"\A(?P<key>[A-Z][A-Za-z0-9-]{0,40}):(?: (?P<value>.*))?\Z")
_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9+_.-]{0,127}\Z")
_VERSION_RE = re.compile(r"\A[A-Za-z0-9+_.~:-]{1,128}\Z")
_STATUS_RE = re.compile(r"\A(?:install|deinstall|hold|purge|unknown)(?: [a-z-]+){2}\Z")
_CONFFILE_RE = re.compile(r"\A (?P<path>/[^\s\x00]{1,1023}) (?P<sum>[0-9a-fA-F]{32,64})\Z")
_PATH_RE = re.compile(r"\A/[^\x00\n]{0,1023}\Z")


@dataclass(frozen=True, slots=True)
class Conffile:
    path: str
    algorithm: str               # sha256 | md5
    checksum: str                # lowercase hex


@dataclass(frozen=True, slots=True)
class OpkgPackage:
    name: str
    version: str
    status: str                  # e.g. "install user installed"
    conffiles: Tuple[Conffile, ...]

    @property
    def installed(self):
        return self.status.endswith(" installed")

    @property
    def user_installed(self):
        """Installed by the owner (`opkg install`), as opposed to shipped in the image."""
        return self.status.startswith("install user ")


@dataclass(frozen=True, slots=True)
class OpkgStatus:
    packages: Tuple[OpkgPackage, ...]
    rejected_lines: int
    truncated: bool


def _decode(text, limit):
    truncated = False
    if len(text) > limit:
        text, truncated = text[:limit], True
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    return text, truncated


def _clean(path):
    parts = path.split("/")
    if any(p in (".", "..") for p in parts):
        return None
    return "/" + "/".join(p for p in parts if p)


def parse_status(text):
    """OpkgStatus from the text of /usr/lib/opkg/status (str or bytes)."""
    text, truncated = _decode(text, MAX_INPUT_BYTES)
    packages = []
    rejected = 0
    current = None
    in_conffiles = False

    def finish():
        nonlocal current
        if current and current["name"] and current["version"]:
            packages.append(OpkgPackage(current["name"], current["version"], current["status"],
                                        tuple(current["conffiles"])))
        current = None

    for line in text.split("\n"):
        if not line.strip():
            finish()
            in_conffiles = False
            if len(packages) >= MAX_PACKAGES:
                truncated = True
                break
            continue
        if current is None:
            current = {"name": "", "version": "", "status": "", "conffiles": []}
        if line.startswith(" "):
            if not in_conffiles:
                continue  # continuation of a long Description or similar
            match = _CONFFILE_RE.match(line.rstrip("\r"))
            path = _clean(match.group("path")) if match else None
            if path is None or len(current["conffiles"]) >= MAX_CONFFILES:
                rejected += 1
                continue
            checksum = match.group("sum").lower()
            if len(checksum) not in (32, 64):
                rejected += 1
                continue
            algorithm = "md5" if len(checksum) <= 33 else "sha256"
            current["conffiles"].append(Conffile(path, algorithm, checksum))
            continue
        match = _FIELD_RE.match(line.rstrip("\r"))
        if match is None:
            rejected += 1
            in_conffiles = False
            continue
        key, value = match.group("key"), (match.group("value") or "").strip()
        in_conffiles = key == "Conffiles"
        if key == "Package":
            if _NAME_RE.match(value):
                current["name"] = value
            else:
                rejected += 1
        elif key == "Version":
            if _VERSION_RE.match(value):
                current["version"] = value
            else:
                rejected += 1
        elif key == "Status":
            if _STATUS_RE.match(value):
                current["status"] = value
            else:
                rejected += 1
    else:
        finish()
    if current is not None:
        finish()
    return OpkgStatus(tuple(packages), rejected, truncated)


def parse_list(text):
    """The absolute paths of an info/<pkg>.list file, in order; bad lines are skipped."""
    text, _ = _decode(text, MAX_LIST_PATHS * (MAX_PATH_CHARS + 1))
    paths = []
    for line in text.split("\n"):
        line = line.rstrip("\r")
        # newer opkg may append "\t<mode>" to a path; only the path matters here
        line = line.split("\t", 1)[0]
        if not line or not _PATH_RE.match(line):
            continue
        path = _clean(line)
        if path is not None and path != "/":
            paths.append(path)
            if len(paths) >= MAX_LIST_PATHS:
                break
    return tuple(paths)
