"""/lib/apk/db/installed: given a database text, which files each package owns and the checksum
apk recorded (Z: is Q1+base64 of 20 bytes: sha256-160 with f:S, else sha1)."""
import base64
import hashlib

from hypothesis import given, strategies as st

from routerwatch.parsers.apk_installed import parse_digest, parse_installed

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
    db = parse_installed(DB)
    assert [p.name for p in db.packages] == ["dropbear", "alpine-v2-style"]
    dropbear = db.packages[0]
    assert dropbear.version == "2024.86-r1" and dropbear.flags == "S"
    assert [f.path for f in dropbear.files] == ["/usr/sbin/dropbear", "/etc/init.d/dropbear"]
    assert dropbear.files[0].algorithm == "sha256-160"
    assert dropbear.files[0].digest == hashlib.sha256(DROPBEAR).digest()[:20]
    v2 = db.packages[1]
    assert v2.files[0].algorithm == "sha1"
    assert v2.files[0].digest == hashlib.sha1(b"tool").digest()
    assert v2.files[1].path == "/usr/bin/nochecksum" and v2.files[1].digest is None
    assert db.rejected_lines == 0 and not db.truncated


def test_flags_after_the_files_still_mean_sha256_160():
    text = "P:late\nV:1\nF:bin\nR:x\nZ:%s\nf:S\n" % q1(b"x")
    assert parse_installed(text).packages[0].files[0].algorithm == "sha256-160"


def test_hex_and_full_length_digests():
    sha256 = hashlib.sha256(b"data").digest()
    assert parse_digest("X1" + sha256.hex()) == ("sha256", sha256)
    assert parse_digest("Q1" + base64.b64encode(sha256).decode()) == ("sha256", sha256)
    assert parse_digest("X1" + sha256[:20].hex(), "S") == ("sha256-160", sha256[:20])
    assert parse_digest("Q1notbase64!!") is None
    assert parse_digest("Q2" + base64.b64encode(sha256[:20]).decode()) is None


def test_paths_that_escape_the_tree_are_rejected():
    text = "P:evil\nV:1\nF:../../etc\nR:shadow\nZ:%s\nF:usr/bin\nR:../x\nR:ok\n" % q1(b"")
    db = parse_installed(text)
    assert [f.path for f in db.packages[0].files] == ["/usr/bin/ok"]
    assert db.rejected_lines >= 3


def test_a_stanza_without_name_or_version_is_dropped():
    db = parse_installed("V:1\nF:bin\nR:x\n\nP:ok\nV:2\n")
    assert [p.name for p in db.packages] == ["ok"]


@given(st.binary(max_size=4096))
def test_any_bytes_parse_without_error(data):
    db = parse_installed(data)
    for package in db.packages:
        for item in package.files:
            assert item.path.startswith("/") and "/../" not in item.path + "/"
