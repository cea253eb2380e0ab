"""/lib/apk/db/installed: given a database text, which files each package owns and the checksum
apk recorded (Z: is Q1+base64 of 20 bytes: sha256-160 with f:S, else sha1). The database is
parsed as a stream of records; hostile bytes of any kind parse without error or growth."""
import base64
import hashlib
import io
from dataclasses import dataclass

from hypothesis import given, settings, strategies as st

from routerwatch.bounded import BoundedLines
from routerwatch.parsers.apk_installed import (REJECTED, ApkFile, ApkPackage, digest_algorithm,
                                               iter_installed, parse_digest)


@dataclass
class Package:
    name: str
    version: str
    flags: str
    files: list


def parse_installed(text, max_line_bytes=8192):
    """(packages with their files, rejected lines), grouped the way load_packages groups."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    packages, pending, rejected = [], [], 0
    for record in iter_installed(BoundedLines(io.BytesIO(data), 1 << 30, max_line_bytes)):
        if record is REJECTED:
            rejected += 1
        elif isinstance(record, ApkFile):
            pending.append(record)
        else:
            assert isinstance(record, ApkPackage)
            if record.valid:
                packages.append(Package(record.name, record.version, record.flags, pending))
            pending = []
    return packages, rejected

DROPBEAR = b"\x7fELF dropbear"
INIT = b"#!/bin/sh /etc/rc.common\n"


def q1(data, algorithm="sha256-160"):
    digest = hashlib.sha256(data).digest()[:20] if algorithm == "sha256-160" else \
        hashlib.sha1(data).digest()
    return "Q1" + base64.b64encode(digest).decode()


DB = """C:Q1abcdefghijklmnopqrstuvwxyz0=
P:dropbear
V:2024.86-r1
A:aarch64_cortex-a53
f:S
F:usr/sbin
R:dropbear
Z:%s
F:etc/init.d
R:dropbear
a:0:0:755
Z:%s

P:alpine-v2-style
V:1.0-r0
F:usr/bin
R:tool
Z:%s
R:nochecksum
""" % (q1(DROPBEAR), q1(INIT), q1(b"tool", "sha1"))


def test_packages_files_and_checksums():
    packages, rejected = parse_installed(DB)
    assert [p.name for p in packages] == ["dropbear", "alpine-v2-style"]
    dropbear = packages[0]
    assert dropbear.version == "2024.86-r1" and dropbear.flags == "S"
    assert [f.path for f in dropbear.files] == ["/usr/sbin/dropbear", "/etc/init.d/dropbear"]
    assert digest_algorithm(dropbear.files[0].digest, dropbear.flags) == "sha256-160"
    assert dropbear.files[0].digest == hashlib.sha256(DROPBEAR).digest()[:20]
    v2 = packages[1]
    assert digest_algorithm(v2.files[0].digest, v2.flags) == "sha1"
    assert v2.files[0].digest == hashlib.sha1(b"tool").digest()
    assert v2.files[1].path == "/usr/bin/nochecksum" and v2.files[1].digest is None
    assert rejected == 0


def test_flags_after_the_files_still_mean_sha256_160():
    text = "P:late\nV:1\nF:bin\nR:x\nZ:%s\nf:S\n" % q1(b"x")
    (package,), _ = parse_installed(text)
    assert digest_algorithm(package.files[0].digest, package.flags) == "sha256-160"


def test_hex_and_full_length_digests():
    sha256 = hashlib.sha256(b"data").digest()
    assert parse_digest("X1" + sha256.hex()) == ("sha256", sha256)
    assert parse_digest("Q1" + base64.b64encode(sha256).decode()) == ("sha256", sha256)
    assert parse_digest("X1" + sha256[:20].hex(), "S") == ("sha256-160", sha256[:20])
    assert parse_digest("Q1notbase64!!") is None
    assert parse_digest("Q2" + base64.b64encode(sha256[:20]).decode()) is None


def test_paths_that_escape_the_tree_are_rejected():
    text = "P:evil\nV:1\nF:../../etc\nR:shadow\nZ:%s\nF:usr/bin\nR:../x\nR:ok\n" % q1(b"")
    (package,), rejected = parse_installed(text)
    assert [f.path for f in package.files] == ["/usr/bin/ok"]
    assert rejected >= 3


def test_a_stanza_without_name_or_version_is_dropped():
    packages, _ = parse_installed("V:1\nF:bin\nR:x\n\nP:ok\nV:2\n")
    assert [p.name for p in packages] == ["ok"]


def test_undecodable_names_stay_the_paths_a_walk_finds_and_overlong_lines_are_rejected():
    text = b"P:x\nV:1\nF:etc/init.d\nR:\xff\xfe\nR:" + b"a" * 100 + b"\nZ:%s\n" % q1(b"").encode()
    (package,), rejected = parse_installed(text, max_line_bytes=64)
    assert [f.path for f in package.files] == ["/etc/init.d/\udcff\udcfe"]
    assert package.files[0].digest is None      # the Z: after an unreadable R: is no one's
    assert rejected == 2


LINE = st.one_of(
    st.binary(max_size=80),
    st.sampled_from([b"", b"P:a", b"P:b", b"V:1", b"f:S", b"F:usr/bin", b"F:../..", b"R:x",
                     b"R:\xff", b"Z:" + q1(b"x").encode(), b"Z:X1" + b"ab" * 32]),
    st.builds(lambda k, v: k + b":" + v, st.sampled_from([b"P", b"V", b"F", b"R", b"Z", b"f"]),
              st.binary(max_size=300)))


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=60), st.integers(16, 512))
def test_hostile_lines_parse_into_well_formed_records(lines, max_line_bytes):
    """Any bytes, any line lengths: every record is well formed, every path absolute and inside
    the tree, every digest one apk makes, and no record holds more than the two lines (F:, R:)
    it was made of, each within the cap."""
    packages, _ = parse_installed(b"\n".join(lines), max_line_bytes)
    for package in packages:
        assert package.name and package.version
        for item in package.files:
            assert item.path.startswith("/") and "/../" not in item.path + "/"
            assert len(item.path) <= 2 * max_line_bytes    # one F: and one R: line at most
            assert item.digest is None or len(item.digest) in (20, 32, 64)
            item.path.encode("utf-8", "surrogateescape")


@given(st.binary(max_size=4096))
def test_any_bytes_parse_without_error(data):
    packages, _ = parse_installed(data)
    for package in packages:
        for item in package.files:
            assert item.path.startswith("/") and "/../" not in item.path + "/"
