"""The package database's view: given apk's installed database, then owners, checksums and the
files that fail them."""
import base64
import hashlib
import os

from routerwatch.sources.overlay_packages import (MAX_DB_BYTES, MAX_PACKAGES, load_packages,
                                                  mismatches, package_paths, verified)
from routerwatch.sources.overlay_tree import OverlayTree


def loaded(root, wanted=("/usr/bin/good", "/usr/bin/bad")):
    """load_packages run to its end (it is a generator that yields for the CPU budget)."""
    gen = load_packages(OverlayTree(str(root)), set(wanted))
    try:
        while True:
            next(gen)
    except StopIteration as done:
        return done.value


def z(data):
    return "Q1" + base64.b64encode(hashlib.sha256(data).digest()[:20]).decode()


def test_apk_owners_checksums_and_a_failing_file(tmp_path):
    (tmp_path / "lib/apk/db").mkdir(parents=True)
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/good").write_bytes(b"good")
    (tmp_path / "usr/bin/bad").write_bytes(b"tampered")
    (tmp_path / "lib/apk/db/installed").write_text(
        "P:tools\nV:1\nf:S\nF:usr/bin\nR:good\nZ:%s\nR:bad\nZ:%s\n" % (z(b"good"), z(b"bad")))
    packages = loaded(tmp_path)
    assert packages.manager == "apk" and packages.owned["/usr/bin/good"] == ("tools", "1")
    assert packages.read.limits == [] and packages.read.files == 2
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
    assert loaded(tmp_path).manager == "none"


def test_only_the_wanted_paths_are_kept(tmp_path):
    """A database listing 20,000 files keeps what the scan asks about, nothing more."""
    (tmp_path / "lib/apk/db").mkdir(parents=True)
    lines = ["P:junk", "V:1", "F:usr/share/junk"]
    for n in range(20000):
        lines += ["R:f%05d" % n, "Z:" + z(b"%d" % n)]
    (tmp_path / "lib/apk/db/installed").write_text("\n".join(lines) + "\n")
    packages = loaded(tmp_path, wanted=["/usr/share/junk/f00042", "/usr/bin/absent"])
    assert list(packages.owned) == ["/usr/share/junk/f00042"]
    assert list(packages.checksums) == ["/usr/share/junk/f00042"]
    assert packages.read.files == 20000 and packages.read.limits == []
    assert sum(1 for _ in package_paths(OverlayTree(str(tmp_path)))) == 20000


def test_opkg_conffiles_and_list_owners_of_the_wanted_paths(tmp_path):
    info = tmp_path / "usr/lib/opkg/info"
    info.mkdir(parents=True)
    (tmp_path / "usr/lib/opkg/status").write_text(
        "Package: tcpdump\nVersion: 4.99\nStatus: install user installed\nConffiles:\n"
        " /etc/tcpdump.conf %s\n\nPackage: gone\nVersion: 1\n"
        "Status: deinstall ok not-installed\n" % ("ab" * 32))
    (info / "tcpdump.list").write_text("/usr/bin/tcpdump\n/usr/lib/libpcap.so\n")
    (info / "gone.list").write_text("/usr/bin/gone\n")
    packages = loaded(tmp_path, wanted=["/usr/bin/tcpdump", "/etc/tcpdump.conf",
                                        "/usr/bin/gone"])
    assert packages.manager == "opkg"
    assert packages.owned == {"/usr/bin/tcpdump": ("tcpdump", "4.99"),
                              "/etc/tcpdump.conf": ("tcpdump", "4.99")}
    assert packages.conffile("/etc/tcpdump.conf") == (
        "sha256", bytes.fromhex("ab" * 32), "tcpdump", "4.99")


def test_caps_reached_are_named_not_silent(tmp_path):
    """More packages than MAX_PACKAGES, a line longer than any healthy one, and an opkg
    database whose .list files together pass MAX_DB_BYTES: each cap is in read.limits."""
    (tmp_path / "lib/apk/db").mkdir(parents=True)
    stanzas = ["P:p%d\nV:1\nF:bin\nR:x%d\n" % (n, n) for n in range(MAX_PACKAGES + 2)]
    (tmp_path / "lib/apk/db/installed").write_bytes(
        ("\n".join(stanzas)).encode() + b"\nR:" + b"\xff" * 20000 + b"\n")
    packages = loaded(tmp_path, wanted=["/bin/x1"])
    assert packages.read.limits == ["packages"] and packages.owned == {"/bin/x1": ("p1", "1")}
    (tmp_path / "lib/apk/db/installed").write_bytes(b"P:a\nV:1\nF:bin\nR:" + b"y" * 20000
                                                     + b"\nR:ok\n")
    packages = loaded(tmp_path, wanted=["/bin/ok"])
    assert packages.read.limits == ["line_length"] and packages.read.overlong == 1
    assert packages.owned == {"/bin/ok": ("a", "1")}
    os.remove(tmp_path / "lib/apk/db/installed")
    info = tmp_path / "usr/lib/opkg/info"
    info.mkdir(parents=True)
    (tmp_path / "usr/lib/opkg/status").write_text("".join(
        "Package: big%d\nVersion: 1\nStatus: install ok installed\n\n" % n for n in range(3)))
    for n in range(3):
        with open(info / ("big%d.list" % n), "wb") as handle:
            handle.truncate(MAX_DB_BYTES // 2)      # sparse: 16 MB of NULs, no newline
    packages = loaded(tmp_path, wanted=[])
    assert "bytes" in packages.read.limits and packages.read.bytes_read <= MAX_DB_BYTES


def test_a_plain_tree_checks_each_listed_file_once_whatever_the_repeats(tmp_path):
    """No overlay (an ext4 image): the files the database gives checksums for are checked in
    place; a database repeating one path 30,000 times does not crowd out the others."""
    from routerwatch import config as cfg
    from routerwatch.sources.overlay import IntegritySource
    (tmp_path / "lib/apk/db").mkdir(parents=True)
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/good").write_bytes(b"good")
    (tmp_path / "usr/bin/bad").write_bytes(b"tampered")
    repeats = "".join("R:good\nZ:%s\n" % z(b"good") for _ in range(30000))
    (tmp_path / "lib/apk/db/installed").write_text(
        "P:tools\nV:1\nf:S\nF:usr/bin\n%sR:bad\nZ:%s\n" % (repeats, z(b"bad")))
    config = cfg.load(overrides=["state_dir=%s" % (tmp_path / "state"),
                                 "integrity.max_files=100"], defaults={"root": str(tmp_path)})
    source = IntegritySource(config)
    events = source.poll(1000.0)
    while source.scanning:
        events += source.poll(1000.0)
    findings = {(e.finding, e.path) for e in events if hasattr(e, "finding")}
    assert ("package_mismatch", "/usr/bin/bad") in findings
    assert not any(finding == "flood" for finding, _ in findings)


# ------------------------------------------------------------------ PackageCache: reading only when needed
import time   # noqa: E402

import pytest   # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st   # noqa: E402

from routerwatch.sources import overlay_packages   # noqa: E402
from routerwatch.sources.overlay_packages import PackageCache   # noqa: E402


def cached(cache, root, wanted):
    gen = cache.load(OverlayTree(str(root)), set(wanted))
    try:
        while True:
            next(gen)
    except StopIteration as done:
        return done.value


@pytest.fixture
def trusted_at_once(monkeypatch):
    monkeypatch.setattr(overlay_packages, "RACY_NS", 0)


def _opkg(root):
    info = root / "usr/lib/opkg/info"
    info.mkdir(parents=True)
    (root / "usr/lib/opkg/status").write_text(
        "Package: tcpdump\nVersion: 4.99\nStatus: install user installed\n\n"
        "Package: nano\nVersion: 8.0\nStatus: install user installed\n")
    (info / "tcpdump.list").write_text("/usr/bin/tcpdump\n")
    return info


def test_opkg_a_changed_list_file_is_read_again(tmp_path, trusted_at_once):
    info = _opkg(tmp_path)
    cache = PackageCache()
    wanted = ["/usr/bin/tcpdump", "/usr/bin/nano"]
    assert cached(cache, tmp_path, wanted).owned == {"/usr/bin/tcpdump": ("tcpdump", "4.99")}
    assert cached(cache, tmp_path, wanted).owned == {"/usr/bin/tcpdump": ("tcpdump", "4.99")}
    assert (cache.reads, cache.reuses) == (1, 1)
    # nano.list was missing at the read: its appearance is a change too
    (info / "nano.list").write_text("/usr/bin/nano\n")
    assert cached(cache, tmp_path, wanted).owned["/usr/bin/nano"] == ("nano", "8.0")
    assert cache.reads == 2
    before = os.stat(info / "tcpdump.list")
    time.sleep(0.02)        # past one tick of the clock timestamps come from (HZ >= 100)
    (info / "tcpdump.list").write_text("/usr/bin/tcpdup\n")       # same size, mtime set back
    os.utime(info / "tcpdump.list", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(info / "tcpdump.list").st_ctime_ns != before.st_ctime_ns
    assert "/usr/bin/tcpdump" not in cached(cache, tmp_path, wanted).owned
    assert cache.reads == 3


def test_a_database_that_disappears_is_read_again(tmp_path, trusted_at_once):
    _opkg(tmp_path)
    cache = PackageCache()
    assert cached(cache, tmp_path, ["/usr/bin/tcpdump"]).manager == "opkg"
    (tmp_path / "usr/lib/opkg/status").unlink()
    assert cached(cache, tmp_path, ["/usr/bin/tcpdump"]).manager == "none"
    assert cache.reads == 2


# a database of a few packages over a few paths; scans that ask about any of them, in any order
PATHS = ["/usr/bin/f%d" % n for n in range(8)]


def _write_database(root, manager, owners, version):
    """A database of packages a and b owning the PATHS `owners` names ("" : none), made longer
    by each `version` (no timestamp granularity in play)."""
    owned = {name: [p for p, owner in zip(PATHS, owners) if owner == name] for name in "ab"}
    if manager == "apk":
        (root / "lib/apk/db").mkdir(parents=True, exist_ok=True)
        (root / "lib/apk/db/installed").write_text("\n".join(
            "P:%s\nV:%d\nT:%s\nf:S\nF:usr/bin\n%s" % (name, version, "x" * version, "".join(
                "R:%s\nZ:%s\n" % (p.rsplit("/", 1)[1], z(p.encode() * version))
                for p in files)) for name, files in owned.items()))
        return
    info = root / "usr/lib/opkg/info"
    info.mkdir(parents=True, exist_ok=True)
    (root / "usr/lib/opkg/status").write_text("\n".join(
        "Package: %s\nVersion: %d\nDescription: %s\nStatus: install user installed\n"
        "Conffiles:\n%s" % (name, version, "x" * version, "".join(
            " %s %s\n" % (p, hashlib.sha256(p.encode() * version).hexdigest())
            for p in files[:1])) for name, files in owned.items()))
    for name, files in owned.items():
        (info / ("%s.list" % name)).write_text("".join(p + "\n" for p in files) +
                                               "/x" * version + "\n")


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(manager=st.sampled_from(["apk", "opkg"]),
       owners=st.lists(st.sampled_from(["", "a", "b"]), min_size=len(PATHS),
                       max_size=len(PATHS)),
       scans=st.lists(st.tuples(st.sets(st.sampled_from(PATHS + ["/etc/x"])), st.booleans()),
                      min_size=1, max_size=6))
def test_kept_answers_are_a_fresh_reads_answers(tmp_path, trusted_at_once, manager, owners,
                                                scans):
    """Whatever paths each scan asks about, and whether the database changed in between (files
    moving between packages), the cache answers as a fresh read would."""
    root = tmp_path / str(len(list(tmp_path.iterdir())))
    cache = PackageCache()
    version = 1
    for wanted, change in [(set(), True)] + scans:
        if change:
            version += 1
            _write_database(root, manager, owners, version)
            owners = owners[1:] + owners[:1]            # the next change moves files around
        got = cached(cache, root, wanted)
        fresh = loaded(root, wanted)
        assert got.manager == fresh.manager == manager
        for path in wanted:
            assert got.owned.get(path) == fresh.owned.get(path)
            assert got.checksum(path) == fresh.checksum(path)
            assert got.conffile(path) == fresh.conffile(path)
        assert got.read.detail() == fresh.read.detail()


def test_only_a_listed_path_the_kept_read_was_not_asked_about_is_read_again(tmp_path,
                                                                           trusted_at_once):
    (tmp_path / "lib/apk/db").mkdir(parents=True)
    (tmp_path / "lib/apk/db/installed").write_text(
        "P:tools\nV:1\nf:S\nF:usr/bin\nR:good\nZ:%s\nR:other\nZ:%s\n\n"
        "V:2\nF:usr/bin\nR:orphan\nZ:%s\n" % (z(b"good"), z(b"other"), z(b"orphan")))
    cache = PackageCache()
    wanted = ["/usr/bin/good", "/usr/bin/orphan"]      # orphan: listed by no package
    assert cached(cache, tmp_path, wanted).owned == {"/usr/bin/good": ("tools", "1")}
    assert cached(cache, tmp_path, wanted).checksum("/usr/bin/orphan") is None
    assert (cache.reads, cache.reuses) == (1, 1)
    # a path the database lists nowhere: answered from the kept read
    assert "/usr/bin/new" not in cached(cache, tmp_path, wanted + ["/usr/bin/new"]).owned
    assert cache.reads == 1
    # a path it lists: read again, and then known
    again = cached(cache, tmp_path, wanted + ["/usr/bin/other"])
    assert again.owned["/usr/bin/other"] == ("tools", "1") and cache.reads == 2
    assert cached(cache, tmp_path, wanted + ["/usr/bin/other"]).checksum("/usr/bin/other")
    assert cache.reads == 2


def test_the_path_filter_never_forgets_a_path(tmp_path):
    from routerwatch.sources.overlay_packages import PathFilter
    listed = PathFilter()
    paths = ["/usr/lib/f%d" % n for n in range(20000)]
    for path in paths:
        listed.add(path)
    assert all(path in listed for path in paths)
    maybe = sum("/usr/bin/x%d" % n in listed for n in range(20000))
    assert maybe < 200          # about 0.01 % expected at 20,000 paths
