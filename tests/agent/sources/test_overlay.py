"""The integrity source: given a router tree (rom/, overlay/upper/, package DB, release files),
when it scans, then these FileFindings and this FirmwareIdentity."""
import base64
import hashlib
import os
import shutil
import tempfile
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fixtures.build_tree import build_tree, can_make_devices
from routerwatch import baseline
from routerwatch import config as cfg
from routerwatch.events import FileFinding, FirmwareIdentity
from routerwatch.sources import overlay
from routerwatch.sources.overlay import IntegritySource

ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(200)


def make_source(root, state, *overrides):
    conf = cfg.load(overrides=["state_dir=%s" % state] + list(overrides),
                    defaults={"root": str(root)})
    return IntegritySource(conf)


def full_scan(source, now=1000.0):
    events = list(source.poll(now))
    while source.scanning:
        events.extend(source.poll(now))
    return events


def findings(events, name=None):
    return {(e.finding, e.path): e for e in events
            if isinstance(e, FileFinding) and (name is None or e.finding == name)}


def identity(events):
    (ident,) = [e for e in events if isinstance(e, FirmwareIdentity)]
    return ident


@pytest.fixture
def clean(tmp_path):
    return build_tree("router-clean", tmp_path / "clean")


@pytest.fixture
def attacked(tmp_path):
    return build_tree("router-attacked", tmp_path / "attacked")


def test_clean_router_first_scan_sees_only_routine_changes(clean, tmp_path):
    source = make_source(clean, tmp_path / "state")
    events = full_scan(source)
    got = findings(events)
    assert set(got) == {("shadowed", "/etc/config/dhcp"), ("shadowed", "/etc/shadow"),
                        ("shadowed", "/lib/apk/db/installed"),
                        ("whiteout", "/etc/uci-defaults/10_migrate-shadow"),
                        # edited config files differ from what their packages shipped
                        ("package_mismatch", "/etc/config/dhcp"),
                        ("package_mismatch", "/etc/shadow")}
    assert all(e.first_scan for e in got.values())
    assert got[("shadowed", "/etc/shadow")].detail["class"] == "routine"
    assert got[("shadowed", "/etc/shadow")].detail["sensitive"] is True
    assert got[("whiteout", "/etc/uci-defaults/10_migrate-shadow")].detail["rom_sha256"]
    ident = identity(events)
    assert ident.release["DISTRIB_RELEASE"] == "25.12.0"
    assert (ident.board, ident.model, ident.kernel) == ("glinet,gl-mt3000", "GL.iNet GL-MT3000",
                                                        "6.12.57")
    assert ident.package_manager == "apk" and ident.previous_hash is None
    assert len(ident.rom_hash) == 64 and len(ident.rom_packages_hash) == 64
    stored = baseline.load(str(tmp_path / "state" / "baseline.gz"))
    assert ident.baseline_hash == baseline.manifest_hash(stored)
    assert "/etc/dropbear/authorized_keys" in stored and "/usr/sbin/tcpdump" in stored


def test_attacked_router_first_scan_needs_no_history(attacked):
    # the default state dir, under the root prefix: the tree's own committed baseline
    events = full_scan(make_source(attacked, "/etc/routerwatch"))
    got = findings(events)
    shadowed = got[("shadowed", "/usr/sbin/dropbear")].detail
    assert shadowed["class"] == "executable"
    assert shadowed["sha256"] != shadowed["rom_sha256"]
    assert shadowed["rom_sha256"] == hashlib.sha256(
        (attacked / "rom/usr/sbin/dropbear").read_bytes()).hexdigest()
    dropbear = got[("package_mismatch", "/usr/sbin/dropbear")].detail
    assert (dropbear["package"], dropbear["algorithm"]) == ("dropbear", "sha256-160")
    tcpdump = got[("package_mismatch", "/usr/sbin/tcpdump")].detail
    assert tcpdump["package"] == "tcpdump" and tcpdump["expected"] != tcpdump["actual"]
    # the committed baseline (taken of the clean router) shows what changed since
    assert got[("baseline_drift", "/etc/dropbear/authorized_keys")].detail["change"] == "modified"
    assert got[("baseline_drift", "/etc/crontabs/root")].detail["change"] == "added"
    assert ("new_executable", "/usr/sbin/tcpdump") not in got   # owned by a package


def test_committed_attacked_baseline_is_the_clean_routers(clean, tmp_path):
    full_scan(make_source(clean, tmp_path / "state"))
    ours = baseline.load(str(tmp_path / "state" / "baseline.gz"))
    committed = baseline.load(os.path.join(os.path.dirname(overlay.__file__), "..", "..", "..",
                                           "tests/fixtures/router-attacked/etc/routerwatch/"
                                           "baseline.gz"))
    assert committed == ours


def test_second_scan_rehashes_only_changed_files(clean, tmp_path):
    source = make_source(clean, tmp_path / "state")
    first = full_scan(source, 1000.0)
    hashed_once = source.hashes
    assert hashed_once >= 10
    again = full_scan(source, 1000.0 + source.config.intervals.integrity)
    assert source.hashes == hashed_once                 # nothing changed: nothing read again
    assert findings(again) == {}                        # and nothing reported again
    assert len([e for e in again if isinstance(e, FirmwareIdentity)]) == 1
    (clean / "overlay/upper/etc/config/system").write_text("config system\n\toption hostname 'x'\n")
    later = full_scan(source, 1000.0 + 2 * source.config.intervals.integrity)
    assert source.hashes == hashed_once + 1
    drift = findings(later, "baseline_drift")
    assert list(drift) == [("baseline_drift", "/etc/config/system")]
    assert drift[("baseline_drift", "/etc/config/system")].first_scan is False
    assert findings(first, "baseline_drift") == {}


def test_cpu_budget_splits_a_scan_and_the_cursor_resumes(clean, tmp_path, monkeypatch):
    whole = findings(full_scan(make_source(clean, tmp_path / "whole")))
    clock = iter(range(10 ** 6))
    monkeypatch.setattr(overlay.time, "process_time", lambda: float(next(clock)))
    source = make_source(clean, tmp_path / "sliced", "integrity.cpu_budget=0.5")
    events = list(source.poll(1000.0))
    polls = 1
    assert source.scanning and source.interval == overlay.RESUME_INTERVAL
    while source.scanning:
        events.extend(source.poll(1000.0 + polls * overlay.RESUME_INTERVAL))
        polls += 1
    assert polls > 10
    assert source.resumes == polls - 1
    assert set(findings(events)) == set(whole)
    assert len([e for e in events if isinstance(e, FirmwareIdentity)]) == 1
    assert source.interval == source.config.intervals.integrity
    assert source.poll(1000.0 + polls * 3) == []         # the next scan waits for its interval


def test_unowned_executables_are_new_executables(clean, tmp_path):
    upper = clean / "overlay/upper"
    (upper / "usr/bin").mkdir(parents=True)
    (upper / "usr/bin/xlogin").write_bytes(ELF)          # not executable by mode: ELF magic
    (upper / "etc/init.d").mkdir(parents=True)
    (upper / "etc/init.d/xlogin").write_text("#!/bin/sh /etc/rc.common\nSTART=99\n")
    (upper / "etc/notes.txt").write_text("plain data\n")
    got = findings(full_scan(make_source(clean, tmp_path / "state")), "new_executable")
    assert set(got) == {("new_executable", "/usr/bin/xlogin"),
                        ("new_executable", "/etc/init.d/xlogin")}
    assert got[("new_executable", "/usr/bin/xlogin")].detail["elf"] is True
    assert got[("new_executable", "/etc/init.d/xlogin")].detail["class"] == "script"


def test_legacy_whiteout_symlink_is_a_whiteout(tmp_path):
    tree = build_tree("router-clean", tmp_path / "t", native_whiteouts=False)
    got = findings(full_scan(make_source(tree, tmp_path / "state")), "whiteout")
    assert got[("whiteout", "/etc/uci-defaults/10_migrate-shadow")].detail["legacy"] is True


@pytest.mark.skipif(not can_make_devices(), reason="creating a 0/0 character device needs root")
def test_native_whiteout_char_device_is_a_whiteout(tmp_path):
    tree = build_tree("router-clean", tmp_path / "t", native_whiteouts=True)
    st = os.lstat(tree / "overlay/upper/etc/uci-defaults/10_migrate-shadow")
    assert st.st_rdev == 0 and not os.path.islink(tree / "overlay/upper/etc/uci-defaults")
    source = make_source(tree, tmp_path / "state")
    got = findings(full_scan(source), "whiteout")
    assert got[("whiteout", "/etc/uci-defaults/10_migrate-shadow")].detail["legacy"] is False
    assert source.live_path("etc/uci-defaults/10_migrate-shadow") is None


@pytest.mark.skipif(not can_make_devices(), reason="trusted.* xattrs need root")
def test_opaque_directory_hides_rom(tmp_path):
    try:
        tree = build_tree("router-clean", tmp_path / "t", opaque_dirs=["etc/init.d"])
    except OSError:
        pytest.skip("this file system does not keep trusted.* xattrs")
    source = make_source(tree, tmp_path / "state")
    got = findings(full_scan(source), "opaque")
    assert list(got) == [("opaque", "/etc/init.d")]
    assert source.live_path("etc/init.d/boot") is None
    assert source.live_path("etc/config/dropbear").endswith("rom/etc/config/dropbear")


def test_state_dir_inside_the_overlay_is_not_tracked(clean, tmp_path):
    (clean / "overlay/upper/etc/routerwatch").mkdir()
    (clean / "overlay/upper/etc/routerwatch/firmware.json").write_text("{}")
    source = make_source(clean, "/etc/routerwatch")
    full_scan(source)
    assert "/etc/routerwatch/firmware.json" not in baseline.load(
        str(clean / "etc/routerwatch/baseline.gz"))


def test_identity_is_remembered_across_restarts_and_changes_with_the_release(clean, tmp_path):
    state = tmp_path / "state"
    first = identity(full_scan(make_source(clean, state)))
    second = identity(full_scan(make_source(clean, state)))
    assert second.previous_hash == first.identity_hash == second.identity_hash
    assert second.previous["release"]["DISTRIB_RELEASE"] == "25.12.0"
    upper_release = clean / "overlay/upper/etc/openwrt_release"
    upper_release.write_text((clean / "rom/etc/openwrt_release").read_text().replace(
        "25.12.0", "25.12.1"))
    third = identity(full_scan(make_source(clean, state)))
    assert third.identity_hash != first.identity_hash
    assert third.previous_hash == first.identity_hash
    assert third.release["DISTRIB_RELEASE"] == "25.12.1"


def test_large_files_are_not_hashed_and_the_file_cap_is_counted(clean, tmp_path):
    (clean / "overlay/upper/big.bin").write_bytes(b"x" * 4096)
    source = make_source(clean, tmp_path / "state", "integrity.max_file_bytes=2048")
    full_scan(source)
    stored = baseline.load(str(tmp_path / "state" / "baseline.gz"))
    assert stored["/big.bin"].digest == "unhashed"
    capped = make_source(clean, tmp_path / "capped", "integrity.max_files=100")
    for n in range(120):
        (clean / ("overlay/upper/many%03d" % n)).write_text(str(n))
    full_scan(capped)
    assert capped.drops()["integrity_untracked_files"] > 0
    assert not os.path.exists(tmp_path / "capped" / "baseline.gz")   # no partial baseline


def test_without_an_overlay_sensitive_paths_and_package_files_are_checked(tmp_path):
    root = tmp_path / "plain"
    (root / "etc/init.d").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/ash\n")
    (root / "etc/init.d/boot").write_text("#!/bin/sh\n")
    (root / "usr/bin/good").write_bytes(b"good")
    (root / "usr/bin/bad").write_bytes(b"tampered")
    (root / "etc/openwrt_release").write_text("DISTRIB_RELEASE='24.10.0'\n")

    def z(data):
        return "Q1" + base64.b64encode(hashlib.sha256(data).digest()[:20]).decode()
    (root / "lib/apk/db/installed").write_text(
        "P:tools\nV:1\nf:S\nF:usr/bin\nR:good\nZ:%s\nR:bad\nZ:%s\n" % (z(b"good"), z(b"bad")))
    source = make_source(root, tmp_path / "state")
    events = full_scan(source)
    assert set(findings(events)) == {("package_mismatch", "/usr/bin/bad")}
    stored = baseline.load(str(tmp_path / "state" / "baseline.gz"))
    assert {"/etc/passwd", "/etc/init.d/boot", "/usr/bin/good", "/usr/bin/bad"} <= set(stored)
    assert identity(events).release == {"DISTRIB_RELEASE": "24.10.0"}
    assert identity(events).rom_hash == ""


def test_opkg_router_owned_files_and_conffile_checksums(tmp_path):
    root = tmp_path / "opkg"
    rom, upper = root / "rom", root / "overlay/upper"
    for d in ("usr/lib/opkg/info", "etc/config"):
        (rom / d).mkdir(parents=True)
    (rom / "etc/config/dropbear").write_text("config dropbear\n")
    shipped = hashlib.sha256(b"config dropbear\n").hexdigest()
    (rom / "usr/lib/opkg/status").write_text(
        "Package: dropbear\nVersion: 2022.82-6\nStatus: install ok installed\nConffiles:\n"
        " /etc/config/dropbear %s\n\n" % shipped)
    (rom / "usr/lib/opkg/info/dropbear.list").write_text("/etc/config/dropbear\n")
    (upper / "usr/lib/opkg/info").mkdir(parents=True)
    (upper / "usr/sbin").mkdir(parents=True)
    (upper / "etc/config").mkdir(parents=True)
    (upper / "usr/lib/opkg/status").write_text(
        (rom / "usr/lib/opkg/status").read_text() +
        "Package: tcpdump\nVersion: 4.99.4-1\nStatus: install user installed\n\n")
    (upper / "usr/lib/opkg/info/tcpdump.list").write_text("/usr/sbin/tcpdump\n")
    (upper / "usr/lib/opkg/info/tcpdump.postinst").write_text("#!/bin/sh\nexit 0\n")
    os.chmod(upper / "usr/lib/opkg/info/tcpdump.postinst", 0o755)   # the database's own script
    (upper / "usr/sbin/tcpdump").write_bytes(ELF)
    (upper / "usr/sbin/xlogin").write_bytes(ELF + b"x")
    (upper / "etc/config/dropbear").write_text("config dropbear\n\toption Port '2222'\n")
    events = full_scan(make_source(root, tmp_path / "state"))
    got = findings(events)
    assert ("new_executable", "/usr/sbin/xlogin") in got
    assert ("new_executable", "/usr/sbin/tcpdump") not in got
    assert ("new_executable", "/usr/lib/opkg/info/tcpdump.postinst") not in got
    conffile = got[("package_mismatch", "/etc/config/dropbear")].detail
    assert conffile["conffile"] is True and conffile["expected"] == shipped
    assert identity(events).package_manager == "opkg"


def test_fifos_and_devices_never_block_or_get_read(clean, tmp_path):
    os.mkfifo(clean / "overlay/upper/etc/pipe")
    os.mkfifo(clean / "overlay/upper/etc/openwrt_release")   # shadows the release file
    source = make_source(clean, tmp_path / "state")
    events = full_scan(source)
    release = identity(events).release        # falls back to /etc/os-release
    assert "DISTRIB_RELEASE" not in release and release["VERSION_ID"] == "25.12.0"
    assert "/etc/pipe" not in baseline.load(str(tmp_path / "state" / "baseline.gz"))


def _upgrade_dropbear(tree, version, content):
    """What `apk upgrade dropbear` leaves: the new program and database in the overlay."""
    from fixtures import make_router_trees as trees
    contents = {rel: data for rel, (data, _mode) in trees.ROM_FILES.items()}
    contents.update({rel: target.encode() for rel, target in trees.ROM_SYMLINKS.items()})
    contents.update({rel: data for rel, (data, _mode) in trees.UPPER_FILES.items()})
    contents["usr/sbin/dropbear"] = content
    packages = [(name, version if name == "dropbear" else v, files)
                for name, v, files in trees.PACKAGES + trees.OWNER_PACKAGES]
    (tree / "overlay/upper/lib/apk/db/installed").write_bytes(
        trees.apk_database(packages, contents))
    (tree / "overlay/upper/usr/sbin/dropbear").write_bytes(content)


def test_an_owner_package_upgrade_is_told_apart_from_a_replaced_program(clean, tmp_path):
    _upgrade_dropbear(clean, "2025.88-r2", ELF + b"newer dropbear")
    got = findings(full_scan(make_source(clean, tmp_path / "upgrade")))
    detail = got[("shadowed", "/usr/sbin/dropbear")].detail
    assert (detail["package"], detail["package_version"], detail["rom_package_version"]) == (
        "dropbear", "2025.88-r2", "2025.88-r1")
    assert detail["package_upgraded"] is True and detail["package_verified"] is True
    assert ("package_mismatch", "/usr/sbin/dropbear") not in got


def test_a_database_edited_to_match_a_replaced_program_is_not_an_upgrade(clean, tmp_path):
    _upgrade_dropbear(clean, "2025.88-r1", ELF + b"trojan")     # same version as /rom
    got = findings(full_scan(make_source(clean, tmp_path / "edited")))
    detail = got[("shadowed", "/usr/sbin/dropbear")].detail
    assert detail["package_upgraded"] is False and detail["package_verified"] is True


# ----------------------------------------------------------------------- floods and special files
from fixtures.junk_flood import JUNK_DIR, flood, replace_dropbear   # noqa: E402


def test_a_junk_flood_never_pushes_out_a_replaced_program(clean, tmp_path):
    upper = clean / "overlay/upper"
    flood(upper, 3000, per_directory=1000)
    replace_dropbear(upper)
    source = make_source(clean, tmp_path / "state", "integrity.max_files=500")
    got = findings(full_scan(source))
    assert got[("shadowed", "/usr/sbin/dropbear")].detail["class"] == "executable"
    assert ("package_mismatch", "/usr/sbin/dropbear") in got
    # what every router has is still looked at too: the routine shadows and the whiteout
    assert {("shadowed", "/etc/shadow"), ("whiteout", "/etc/uci-defaults/10_migrate-shadow")} \
        <= set(got)
    (cap,) = [e for e in got.values() if e.finding == "flood"]
    assert cap.path == "/" + JUNK_DIR
    assert cap.detail["files"] > 3000 and cap.detail["max_files"] == 500
    assert cap.detail["dropped"] == cap.detail["files"] - 500
    assert set(cap.detail["dropped_by_rank"]) == {"data"}      # nothing but junk was dropped
    assert [d["files"] for d in cap.detail["directories"]][:3] == [1000, 1000, 1000]
    assert cap.detail["subtrees"][0] == {"path": "/" + JUNK_DIR, "files": 3000}
    assert source.drops()["integrity_untracked_files"] == cap.detail["dropped"]
    assert not os.path.exists(tmp_path / "state" / "baseline.gz")   # no partial baseline


def test_a_flood_of_programs_still_leaves_rom_shadows_and_access_paths_first(clean, tmp_path):
    upper = clean / "overlay/upper"
    bin_dir = upper / "usr/bin"
    bin_dir.mkdir(parents=True)
    for n in range(600):
        (bin_dir / ("tool%04d" % n)).write_bytes(ELF + str(n).encode())
    replace_dropbear(upper)
    (upper / "etc/crontabs").mkdir(parents=True)
    (upper / "etc/crontabs/root").write_text("* * * * * /tmp/.x\n")
    source = make_source(clean, tmp_path / "state", "integrity.max_files=300")
    events = full_scan(source)
    got = findings(events)
    assert ("shadowed", "/usr/sbin/dropbear") in got
    (cap,) = [e for e in got.values() if e.finding == "flood"]
    assert cap.path == "/usr/bin"
    # programs outrank config, so both were dropped; nothing that shadows /rom or gives access
    assert set(cap.detail["dropped_by_rank"]) == {"code", "config"}
    assert source.hasher.head("/etc/crontabs/root") == b"* * "   # an access path: hashed
    assert source.hashes <= 300 + 40                          # the cap bounds the reading too


def test_new_findings_beyond_the_per_scan_limit_wait_for_the_next_scan(clean, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setattr(overlay, "MAX_NEW_FINDINGS_PER_SCAN", 5)
    bin_dir = clean / "overlay/upper/usr/bin"
    bin_dir.mkdir(parents=True)
    for n in range(12):
        (bin_dir / ("x%02d" % n)).write_bytes(ELF + bytes([n]))
    source = make_source(clean, tmp_path / "state")
    seen = set()
    for scan in range(6):
        seen |= set(findings(full_scan(source, 1000.0 + scan * 1000), "new_executable"))
    assert len(seen) == 12
    assert source.drops()["integrity_findings_deferred"] > 0


def test_a_fifo_over_etc_passwd_is_reported_and_never_read(clean, tmp_path):
    fifo = clean / "overlay/upper/etc/passwd"
    os.mkfifo(fifo)        # opening it for reading would block the scan forever
    source = make_source(clean, tmp_path / "state")
    got = findings(full_scan(source), "special_file")
    detail = got[("special_file", "/etc/passwd")].detail
    assert (detail["file_type"], detail["shadows_rom"], detail["sensitive"]) == ("fifo", True, True)
    assert detail["rom_mode"] == "100644"
    assert "/etc/passwd" not in baseline.load(str(tmp_path / "state" / "baseline.gz"))


def test_special_files_are_reported_where_they_matter_only(clean, tmp_path):
    import socket
    upper = clean / "overlay/upper"
    (upper / "etc/init.d").mkdir(parents=True, exist_ok=True)
    os.mkfifo(upper / "etc/init.d/backdoor")           # sensitive place, not in /rom
    (upper / "root").mkdir(exist_ok=True)
    os.mkfifo(upper / "root/my-pipe")                  # the owner's own: not reported
    (upper / "usr/sbin").mkdir(parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(str(upper / "usr/sbin/helper"))  # a code directory
        got = findings(full_scan(make_source(clean, tmp_path / "state")), "special_file")
    finally:
        listener.close()
    assert set(got) == {("special_file", "/etc/init.d/backdoor"),
                        ("special_file", "/usr/sbin/helper")}
    assert got[("special_file", "/usr/sbin/helper")].detail["file_type"] == "socket"
    assert got[("special_file", "/usr/sbin/helper")].detail["shadows_rom"] is False


@pytest.mark.skipif(not can_make_devices(), reason="creating device nodes needs root")
def test_a_device_node_over_a_rom_program_is_reported_with_its_numbers(clean, tmp_path):
    import stat as stat_module
    target = clean / "overlay/upper/usr/sbin/dropbear"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(target, stat_module.S_IFCHR | 0o755, os.makedev(1, 5))     # /dev/zero's numbers
    got = findings(full_scan(make_source(clean, tmp_path / "state")))
    detail = got[("special_file", "/usr/sbin/dropbear")].detail
    assert (detail["file_type"], detail["rdev"], detail["shadows_rom"]) == (
        "char_device", "1:5", True)
    assert ("whiteout", "/usr/sbin/dropbear") not in got


def test_with_a_baseline_a_flood_is_one_anomaly_not_thousands_of_drifts(clean, tmp_path):
    state = tmp_path / "state"
    full_scan(make_source(clean, state, "integrity.max_files=500"))       # the baseline
    upper = clean / "overlay/upper"
    flood(upper, 2000, per_directory=1000)
    replace_dropbear(upper)
    (upper / "etc/crontabs").mkdir(parents=True)
    (upper / "etc/crontabs/root").write_text("* * * * * /tmp/.x\n")
    got = findings(full_scan(make_source(clean, state, "integrity.max_files=500")))
    assert ("shadowed", "/usr/sbin/dropbear") in got
    assert [k for k in got if k[0] == "flood"] == [("flood", "/" + JUNK_DIR)]
    drift = {path for finding, path in got if finding == "baseline_drift"}
    assert drift == {"/etc/crontabs/root", "/usr/sbin/dropbear"}   # no junk


# names as bytes: anything but NUL and '/', including invalid UTF-8, newlines, tabs, backslashes
ODD_NAME = st.binary(min_size=1, max_size=30).filter(
    lambda b: b"\0" not in b and b"/" not in b and b not in (b".", b".."))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(names=st.lists(ODD_NAME, min_size=1, max_size=6, unique=True))
def test_any_file_name_is_scanned_reported_and_kept_in_the_baseline_as_its_bytes(names, tmp_path):
    work = tempfile.mkdtemp(dir=tmp_path)
    try:
        tree = build_tree("router-clean", os.path.join(work, "t"), native_whiteouts=False)
        bin_dir = os.path.join(os.fsencode(tree), b"overlay", b"upper", b"usr", b"bin")
        os.makedirs(bin_dir)
        for name in names:
            with open(os.path.join(bin_dir, name), "wb") as handle:
                handle.write(ELF + name)
        state = os.path.join(work, "state")
        got = findings(full_scan(make_source(tree, state)), "new_executable")
        reported = {os.fsencode(path) for _finding, path in got}
        assert reported == {b"/usr/bin/" + name for name in names}
        stored = baseline.load(os.path.join(state, "baseline.gz"))
        assert {b"/usr/bin/" + name for name in names} <= {os.fsencode(p) for p in stored}
        again = findings(full_scan(make_source(tree, state)))     # the same tree, remembered
        assert not [k for k in again if k[0] == "baseline_drift"]
    finally:
        shutil.rmtree(work)


# ----------------------------------------------------------------------- the package database kept
from routerwatch.sources import overlay_packages   # noqa: E402

APK_DB = "overlay/upper/lib/apk/db/installed"


@pytest.fixture
def trusted_at_once(monkeypatch):
    """A database written by the test just before its first scan is kept at once (the agent
    waits RACY_NS after a change before trusting a database's timestamps)."""
    monkeypatch.setattr(overlay_packages, "RACY_NS", 0)


def _flip_checksum(data, name):
    """The database with one character of file `name`'s checksum changed: same size."""
    at = data.index(b"R:%s\nZ:Q1" % name) + len(b"R:%s\nZ:Q1" % name)
    return data[:at] + (b"B" if data[at:at + 1] != b"B" else b"C") + data[at + 1:]


def test_an_unchanged_database_is_not_read_again(clean, tmp_path, trusted_at_once):
    source = make_source(clean, tmp_path / "state")
    first = full_scan(source, 1000.0)
    assert source.package_cache.reads == 1
    assert ("package_mismatch", "/etc/shadow") in findings(first)
    for n in (1, 2, 3):
        again = full_scan(source, 1000.0 + n * source.config.intervals.integrity)
        assert findings(again) == {}
        assert identity(again).package_manager == "apk"
    assert source.package_cache.reads == 1 and source.package_cache.reuses == 3
    assert source.counters()["integrity_package_db_reads"] == 1


def test_a_checksum_edited_in_place_with_the_mtime_set_back_is_read_again(clean, tmp_path,
                                                                           trusted_at_once):
    source = make_source(clean, tmp_path / "state")
    assert ("package_mismatch", "/usr/sbin/tcpdump") not in findings(full_scan(source, 1000.0))
    db = clean / APK_DB
    before = os.stat(db)
    time.sleep(0.02)        # past one tick of the clock timestamps come from (HZ >= 100)
    with open(db, "r+b") as handle:          # same inode, same size
        edited = _flip_checksum(handle.read(), b"tcpdump")
        handle.seek(0)
        handle.write(edited)
    os.utime(db, ns=(before.st_atime_ns, before.st_mtime_ns))    # touch -d, in effect
    after = os.stat(db)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns)
    assert after.st_ctime_ns != before.st_ctime_ns
    got = findings(full_scan(source, 1000.0 + source.config.intervals.integrity))
    assert source.package_cache.reads == 2
    detail = got[("package_mismatch", "/usr/sbin/tcpdump")].detail
    assert detail["package"] == "tcpdump" and detail["version"] == "4.99.5-r1"


def test_a_database_replaced_by_rename_is_read_again(clean, tmp_path, trusted_at_once):
    source = make_source(clean, tmp_path / "state")
    full_scan(source, 1000.0)
    db = clean / APK_DB
    before = os.stat(db)
    staged = db.with_name("installed.new")
    staged.write_bytes(_flip_checksum(db.read_bytes(), b"tcpdump"))
    os.utime(staged, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.rename(staged, db)
    got = findings(full_scan(source, 1000.0 + source.config.intervals.integrity))
    assert source.package_cache.reads == 2
    assert ("package_mismatch", "/usr/sbin/tcpdump") in got


def test_a_database_written_just_before_its_reading_is_not_trusted_yet(clean, tmp_path):
    """Without the test's shortcut: a database changed within RACY_NS of its reading could
    change again within the same timestamp (jffs2 keeps whole seconds), so it is read again."""
    os.utime(clean / APK_DB)                # changed now, as a package install would
    source = make_source(clean, tmp_path / "state")
    full_scan(source, 1000.0)
    full_scan(source, 1000.0 + source.config.intervals.integrity)
    assert source.package_cache.reads == 2 and source.package_cache.reuses == 0


def test_a_new_overlay_file_gets_its_owner_and_checksum_from_a_kept_database(clean, tmp_path,
                                                                          trusted_at_once):
    """The kept read holds only the paths the last scan asked about: a file the walk finds
    later must still get its package's word."""
    source = make_source(clean, tmp_path / "state")
    first = findings(full_scan(source, 1000.0))
    assert ("shadowed", "/usr/sbin/dropbear") not in first
    replace_dropbear(clean / "overlay/upper")
    got = findings(full_scan(source, 1000.0 + source.config.intervals.integrity))
    shadowed = got[("shadowed", "/usr/sbin/dropbear")].detail
    assert (shadowed["package"], shadowed["package_verified"]) == ("dropbear", False)
    mismatch = got[("package_mismatch", "/usr/sbin/dropbear")].detail
    assert mismatch["package"] == "dropbear" and mismatch["conffile"] is False
    # the same file, now known to the kept read: answered without reading again
    reads = source.package_cache.reads
    full_scan(source, 1000.0 + 2 * source.config.intervals.integrity)
    assert source.package_cache.reads == reads


def test_a_database_past_its_caps_is_still_reported_when_kept(clean, tmp_path, trusted_at_once):
    from fixtures.hostile_packages import hostile_apk
    hostile_apk(clean / "overlay/upper", 2)
    with open(clean / APK_DB, "ab") as handle:       # past MAX_PACKAGES
        handle.write(b"".join(b"P:p%d\nV:1\n\n" % n
                              for n in range(overlay_packages.MAX_PACKAGES + 1)))
    source = make_source(clean, tmp_path / "state")
    events = full_scan(source, 1000.0)
    flood = findings(events)[("flood", "/lib/apk/db/installed")].detail
    assert "packages" in flood["limits"]
    for n in (1, 2):
        again = full_scan(source, 1000.0 + n * source.config.intervals.integrity)
        assert findings(again) == {}          # reported once, as any standing finding
    assert source.package_cache.reads == 1
    # still standing for the detectors: remembered as reported, not dropped
    assert source._reported.get(("flood", "/lib/apk/db/installed")) == "database:" + \
        ",".join(flood["limits"])


def test_a_new_file_no_package_lists_costs_no_reading(clean, tmp_path, trusted_at_once):
    source = make_source(clean, tmp_path / "state")
    full_scan(source, 1000.0)
    (clean / "overlay/upper/usr/bin").mkdir(parents=True)
    (clean / "overlay/upper/usr/bin/xlogin").write_bytes(ELF)
    got = findings(full_scan(source, 1000.0 + source.config.intervals.integrity))
    assert ("new_executable", "/usr/bin/xlogin") in got
    assert source.package_cache.reads == 1
