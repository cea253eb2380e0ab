"""The package database's view: given apk's installed database, then owners, checksums and the
files that fail them."""
import base64
import hashlib
import os

from routerwatch.sources.overlay_packages import load_packages, mismatches, verified
from routerwatch.sources.overlay_tree import OverlayTree


def z(data):
    return "Q1" + base64.b64encode(hashlib.sha256(data).digest()[:20]).decode()


def test_apk_owners_checksums_and_a_failing_file(tmp_path):
    (tmp_path / "lib/apk/db").mkdir(parents=True)
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/good").write_bytes(b"good")
    (tmp_path / "usr/bin/bad").write_bytes(b"tampered")
    (tmp_path / "lib/apk/db/installed").write_text(
        "P:tools\nV:1\nf:S\nF:usr/bin\nR:good\nZ:%s\nR:bad\nZ:%s\n" % (z(b"good"), z(b"bad")))
    packages = load_packages(OverlayTree(str(tmp_path)))
    assert packages.manager == "apk" and packages.owned["/usr/bin/good"] == ("tools", "1")
    for name, data, failing in (("good", b"good", False), ("bad", b"tampered", True)):
        path, abs_path = "/usr/bin/" + name, str(tmp_path / "usr/bin" / name)
        digest = hashlib.sha256(data).hexdigest()
        found = mismatches(packages, path, os.lstat(abs_path), digest, b"", abs_path)
        assert bool(found) is failing
        assert verified(packages, path, digest, abs_path) is not failing
    (detail,) = mismatches(packages, "/usr/bin/bad", os.lstat(tmp_path / "usr/bin/bad"),
                           hashlib.sha256(b"tampered").hexdigest(), b"",
                           str(tmp_path / "usr/bin/bad"))
    assert (detail["package"], detail["algorithm"], detail["conffile"]) == (
        "tools", "sha256-160", False)


def test_no_database_is_manager_none(tmp_path):
    assert load_packages(OverlayTree(str(tmp_path))).manager == "none"
