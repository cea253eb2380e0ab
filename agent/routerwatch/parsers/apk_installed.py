"""/lib/apk/db/installed (apk-tools, OpenWrt 25.12+): which package owns which file, and the
checksum apk recorded for it.

Format (apk-tools src/database.c apk_db_fdb_write): stanzas separated by a blank line, one
`X:value` field per line. Per package `P:` name, `V:` version, `f:` flags; then per directory
`F:<dir>` and per file in it `R:<name>` followed by `Z:<digest>`. A digest is `Q` (base64) or
`X` (hex), then `1`, then the bytes: 20 bytes are SHA-1, or the first 20 bytes of SHA-256 when the
package flags contain `S` (sha256-160, what OpenWrt's ADB packages get); 32 bytes are SHA-256.
"""
import base64
import binascii
import re
from dataclasses import dataclass
from typing import Optional, Tuple

MAX_INPUT_BYTES = 32 * 1024 * 1024
MAX_PACKAGES = 4096
MAX_FILES = 200000
MAX_PATH_CHARS = 1024

_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9+_.@-]{0,127}\Z")
_VERSION_RE = re.compile(r"\A[A-Za-z0-9+_.~:-]{1,128}\Z")
_FLAGS_RE = re.compile(r"\A[A-Za-z]{0,16}\Z")
_DIGEST_RE = re.compile(r"\A(?:Q1(?P<b64>[A-Za-z0-9+/]{27}=|[A-Za-z0-9+/]{43}=|[A-Za-z0-9+/]{86}==)"
                        r"|X1(?P<hex>[0-9a-fA-F]{40}|[0-9a-fA-F]{64}|[0-9a-fA-F]{128}))\Z")


@dataclass(frozen=True, slots=True)
class ApkFile:
    path: str                    # absolute, as seen from the router's /
    algorithm: Optional[str]     # sha1 | sha256-160 | sha256 | sha512 | None (no Z: line)
    digest: Optional[bytes]


@dataclass(frozen=True, slots=True)
class ApkPackage:
    name: str
    version: str
    flags: str
    files: Tuple[ApkFile, ...]
    directories: Tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ApkDatabase:
    packages: Tuple[ApkPackage, ...]
    rejected_lines: int          # lines that did not parse (counted, never fatal)
    truncated: bool              # a cap was reached; the rest was not read


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
    if len(raw) == 20:
        return ("sha256-160" if "S" in flags else "sha1"), raw
    if len(raw) == 32:
        return "sha256", raw
    if len(raw) == 64:
        return "sha512", raw
    return None  # pragma: no cover - the pattern admits only the lengths above


def _clean_path(directory, name):
    """'/dir/name' for an F:/R: pair, or None for anything that could escape the tree."""
    parts = [p for p in (directory.split("/") + [name]) if p]
    if not parts or any(p in (".", "..") or "\x00" in p for p in parts):
        return None
    path = "/" + "/".join(parts)
    return path if len(path) <= MAX_PATH_CHARS else None


def parse_installed(text):
    """ApkDatabase from the text of /lib/apk/db/installed (str or bytes)."""
    truncated = False
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_INPUT_BYTES:
            text, truncated = text[:MAX_INPUT_BYTES], True
        text = bytes(text).decode("utf-8", "replace")
    elif len(text) > MAX_INPUT_BYTES:
        text, truncated = text[:MAX_INPUT_BYTES], True
    packages = []
    rejected = 0
    total_files = 0
    stanza = None

    def finish():
        nonlocal stanza
        if stanza is not None:
            if stanza["name"] and stanza["version"]:
                _close_file(stanza)
                files = stanza["files"]
                if "S" in stanza["flags"]:
                    # the flags line may follow the files; 20-byte digests are then sha256-160
                    files = [ApkFile(f.path, "sha256-160", f.digest) if f.algorithm == "sha1"
                             else f for f in files]
                packages.append(ApkPackage(stanza["name"], stanza["version"], stanza["flags"],
                                           tuple(files), tuple(stanza["dirs"])))
            stanza = None

    for line in text.split("\n"):
        if not line.strip():
            finish()
            if len(packages) >= MAX_PACKAGES:
                truncated = True
                break
            continue
        if len(line) < 2 or line[1] != ":":
            rejected += 1
            continue
        if stanza is None:
            stanza = {"name": "", "version": "", "flags": "", "files": [], "dirs": [],
                      "dir": None, "file": None, "z": None}
        key, value = line[0], line[2:]
        if key == "P":
            if _NAME_RE.match(value):
                stanza["name"] = value
            else:
                rejected += 1
        elif key == "V":
            if _VERSION_RE.match(value):
                stanza["version"] = value
            else:
                rejected += 1
        elif key == "f":
            if _FLAGS_RE.match(value):
                stanza["flags"] = value
            else:
                rejected += 1
        elif key == "F":
            _close_file(stanza)
            directory = _clean_path(value, "") if value else "/"
            stanza["dir"] = directory
            if directory is None:
                rejected += 1
            elif len(stanza["dirs"]) < MAX_FILES:
                stanza["dirs"].append(directory)
        elif key == "R":
            _close_file(stanza)
            if stanza["dir"] is None or total_files >= MAX_FILES:
                rejected += 1
                truncated = truncated or total_files >= MAX_FILES
                continue
            path = _clean_path(stanza["dir"], value) if "/" not in value else None
            if path is None:
                rejected += 1
                continue
            stanza["file"] = path
            total_files += 1
        elif key == "Z":
            if stanza["file"] is None or stanza["z"] is not None:
                rejected += 1
                continue
            digest = parse_digest(value)
            if digest is None:
                rejected += 1
                continue
            stanza["z"] = digest
        # every other field (C: A: S: I: T: U: L: o: m: t: c: k: D: p: i: g: r: q: s: M: a:)
        # is valid apk but carries nothing the integrity check needs
    else:
        finish()
    if stanza is not None:  # stopped early by a cap
        finish()
    return ApkDatabase(tuple(packages), rejected, truncated)


def _close_file(stanza):
    if stanza["file"] is not None:
        algorithm, digest = stanza["z"] if stanza["z"] else (None, None)
        stanza["files"].append(ApkFile(stanza["file"], algorithm, digest))
    stanza["file"] = None
    stanza["z"] = None
