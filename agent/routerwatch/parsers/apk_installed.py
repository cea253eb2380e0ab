"""/lib/apk/db/installed (apk-tools, OpenWrt 25.12+): which package owns which file, and the
checksum apk recorded for it.

Format (apk-tools src/database.c apk_db_fdb_write): stanzas separated by a blank line, one
`X:value` field per line. Per package `P:` name, `V:` version, `f:` flags; then per directory
`F:<dir>` and per file in it `R:<name>` followed by `Z:<digest>`. A digest is `Q` (base64) or
`X` (hex), then `1`, then the bytes: 20 bytes are SHA-1, or the first 20 bytes of SHA-256 when the
package flags contain `S` (sha256-160, what OpenWrt's ADB packages get); 32 bytes are SHA-256.

The database is hostile input (a rooted router writes what it likes into it) and may be tens of
megabytes, so it is parsed as a stream of lines (bytes, from bounded.BoundedLines) into a stream
of records: each file as it comes, then its package when the stanza ends. Nothing here grows
with the input; what to keep is the caller's choice.
"""
import base64
import binascii
import os
import re
from dataclasses import dataclass
from typing import Optional

MAX_PATH_CHARS = 1024

_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9+_.@-]{0,127}\Z")
_VERSION_RE = re.compile(r"\A[A-Za-z0-9+_.~:-]{1,128}\Z")
_FLAGS_RE = re.compile(r"\A[A-Za-z]{0,16}\Z")
_DIGEST_RE = re.compile(r"\A(?:Q1(?P<b64>[A-Za-z0-9+/]{27}=|[A-Za-z0-9+/]{43}=|[A-Za-z0-9+/]{86}==)"
                        r"|X1(?P<hex>[0-9a-fA-F]{40}|[0-9a-fA-F]{64}|[0-9a-fA-F]{128}))\Z")


@dataclass(frozen=True, slots=True)
class ApkFile:
    path: str                    # absolute, as seen from the router's / (undecodable bytes
                                 # kept as os.fsdecode does, so it equals the path a walk finds)
    digest: Optional[bytes]      # None when the file has no Z: line


@dataclass(frozen=True, slots=True)
class ApkPackage:
    """The end of a stanza: the package its files (the ApkFile records just before) belong to.
    name or version is "" when the stanza named none (its files then belong to nothing)."""
    name: str
    version: str
    flags: str

    @property
    def valid(self):
        return bool(self.name and self.version)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line that did not parse (counted by the caller, never fatal)."""


REJECTED = Rejected()


def digest_algorithm(digest, flags=""):
    """The algorithm of a digest apk recorded, from its length and its package's flags."""
    if digest is None:
        return None
    if len(digest) == 20:
        return "sha256-160" if "S" in flags else "sha1"
    return {32: "sha256", 64: "sha512"}.get(len(digest))


def parse_digest(text, flags=""):
    """(algorithm, digest bytes) of a `Z:` value, or None when it is not a well-formed digest."""
    match = _DIGEST_RE.match(text)
    if match is None:
        return None
    try:
        if match.group("b64") is not None:
            raw = base64.b64decode(match.group("b64"), validate=True)
        else:
            raw = binascii.unhexlify(match.group("hex"))
    except (binascii.Error, ValueError):
        return None
    algorithm = digest_algorithm(raw, flags)
    return (algorithm, raw) if algorithm is not None else None


def _clean_path(directory, name):
    """'/dir/name' for an F:/R: pair, or None for anything that could escape the tree."""
    parts = [p for p in (directory.split("/") + [name]) if p]
    if not parts or any(p in (".", "..") or "\x00" in p for p in parts):
        return None
    path = "/" + "/".join(parts)
    return path if len(path) <= MAX_PATH_CHARS else None


def iter_installed(lines):
    """Records of /lib/apk/db/installed from its lines (bytes; None for a line too long to
    hold): ApkFile for each file, ApkPackage at the end of each stanza, REJECTED for each line
    that does not parse."""
    directory = None           # the current F: (None: none yet, or a bad one)
    path = digest = None       # the current R: and its Z:
    name = version = flags = ""
    started = False
    for line in lines:
        if line is None:
            if path is not None:
                yield ApkFile(path, digest)
            path = digest = None
            yield REJECTED
            continue
        if not line.strip():
            if started:
                if path is not None:
                    yield ApkFile(path, digest)
                yield ApkPackage(name, version, flags)
            directory = path = digest = None
            name = version = flags = ""
            started = False
            continue
        started = True
        if len(line) < 2 or line[1:2] != b":":
            yield REJECTED
            continue
        key, value = line[:1], os.fsdecode(line[2:].rstrip(b"\r"))
        if key == b"P":
            if _NAME_RE.match(value):
                name = value
            else:
                yield REJECTED
        elif key == b"V":
            if _VERSION_RE.match(value):
                version = value
            else:
                yield REJECTED
        elif key == b"f":
            if _FLAGS_RE.match(value):
                flags = value
            else:
                yield REJECTED
        elif key in (b"F", b"R"):
            if path is not None:
                yield ApkFile(path, digest)
            path = digest = None
            if key == b"F":
                directory = _clean_path(value, "") if value else "/"
                if directory is None:
                    yield REJECTED
                continue
            path = _clean_path(directory, value) \
                if directory is not None and "/" not in value else None
            if path is None:
                yield REJECTED
        elif key == b"Z":
            parsed = parse_digest(value) if path is not None and digest is None else None
            if parsed is None:
                yield REJECTED
            else:
                digest = parsed[1]
        # every other field (C: A: S: I: T: U: L: o: m: t: c: k: D: p: i: g: r: q: s: M: a:)
        # is valid apk but carries nothing the integrity check needs
    if started:
        if path is not None:
            yield ApkFile(path, digest)
        yield ApkPackage(name, version, flags)
