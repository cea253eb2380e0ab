"""opkg's package database (OpenWrt up to 24.10): /usr/lib/opkg/status and info/<pkg>.list.

status: RFC822-like stanzas (opkg-lede libopkg/pkg.c); the fields used here are `Package`,
`Version`, `Status` and `Conffiles` (continuation lines ` <path> <checksum>`; the checksum is
sha256 hex, or md5 when it is 32 characters — opkg treats anything of at most 33 as md5).
info/<pkg>.list: one absolute path per line, no checksums.

Both are hostile input (a rooted router writes what it likes into them), so they are parsed as
streams of lines (bytes, from bounded.BoundedLines) into streams of records; nothing here grows
with the input except one stanza's conffiles, which are capped.
"""
import os
import re
from dataclasses import dataclass
from typing import Tuple

from .apk_installed import REJECTED

MAX_CONFFILES = 256          # per package
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


def _clean(path):
    parts = path.split("/")
    if any(p in (".", "..") for p in parts):
        return None
    return "/" + "/".join(p for p in parts if p)


def iter_status(lines):
    """Records of /usr/lib/opkg/status from its lines (bytes; None for a line too long to
    hold): an OpkgPackage per stanza that names one, REJECTED per line that does not parse."""
    name = version = status = ""
    conffiles = []
    started = in_conffiles = False
    for line in lines:
        if line is None:
            in_conffiles = False
            yield REJECTED
            continue
        if not line.strip():
            if started and name and version:
                yield OpkgPackage(name, version, status, tuple(conffiles))
            name = version = status = ""
            conffiles = []
            started = in_conffiles = False
            continue
        started = True
        line = os.fsdecode(line.rstrip(b"\r"))
        if line.startswith(" "):
            if not in_conffiles:
                continue  # continuation of a long Description or similar
            match = _CONFFILE_RE.match(line)
            path = _clean(match.group("path")) if match else None
            if path is None or len(conffiles) >= MAX_CONFFILES:
                yield REJECTED
                continue
            checksum = match.group("sum").lower()
            if len(checksum) not in (32, 64):
                yield REJECTED
                continue
            algorithm = "md5" if len(checksum) <= 33 else "sha256"
            conffiles.append(Conffile(path, algorithm, checksum))
            continue
        match = _FIELD_RE.match(line)
        if match is None:
            in_conffiles = False
            yield REJECTED
            continue
        key, value = match.group("key"), (match.group("value") or "").strip()
        in_conffiles = key == "Conffiles"
        if key == "Package":
            if _NAME_RE.match(value):
                name = value
            else:
                yield REJECTED
        elif key == "Version":
            if _VERSION_RE.match(value):
                version = value
            else:
                yield REJECTED
        elif key == "Status":
            if _STATUS_RE.match(value):
                status = value
            else:
                yield REJECTED
    if started and name and version:
        yield OpkgPackage(name, version, status, tuple(conffiles))


def iter_list(lines):
    """The absolute paths of an info/<pkg>.list file from its lines, in order; REJECTED for a
    line that is not one (blank lines are nothing)."""
    for line in lines:
        if line is None:
            yield REJECTED
            continue
        # newer opkg may append "\t<mode>" to a path; only the path matters here
        line = os.fsdecode(line.rstrip(b"\r").split(b"\t", 1)[0])
        if not line:
            continue
        path = _clean(line) if _PATH_RE.match(line) else None
        if path is None or path == "/":
            yield REJECTED
        else:
            yield path
