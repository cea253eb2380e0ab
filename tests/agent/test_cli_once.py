"""`routerwatch-agent --root <tree> --once`: the whole picture of a router tree in one scan.

The attacked tree (tests/fixtures/router-attacked, built by fixtures/build_tree.py) carries
evidence for every watcher. This file asserts the integrity.* kinds; the login.* and conn.* kinds
belong in EXPECTED_ATTACKED_KINDS as well once their watchers assert them here.
"""
import io
import json
import os
import subprocess
import sys

import pytest

from fixtures.build_tree import build_tree
from routerwatch import config as cfg
from routerwatch.detectors import detector_classes
from routerwatch.runtime import Agent
from routerwatch.sinks.stdout import StdoutSink
from routerwatch.sources.overlay import IntegritySource
from routerwatch.sources.processes import ProcessSource

# kinds `--once` must report for tests/fixtures/router-attacked (extend as watchers land)
EXPECTED_ATTACKED_KINDS = {
    "integrity.rom_shadowed",       # /usr/sbin/dropbear replaced in the overlay
    "integrity.package_mismatch",   # dropbear and tcpdump fail their apk checksums
    "integrity.baseline_drift",     # authorized_keys gained a key, a crontab appeared
    "integrity.exec_from_tmp",      # pid 4242 runs /tmp/.x
    "integrity.deleted_exe",        # ... which was deleted from disk
    "conn.raw_socket",              # ... and holds a raw TCP socket
}
SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")


def run_once(tree, *extra):
    result = subprocess.run(
        [sys.executable, "-m", "routerwatch.cli", "--root", str(tree), "--once",
         "--log-file", str(tree / "var/log/messages")] + list(extra),
        capture_output=True, text=True, timeout=120)
    anomalies = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result, anomalies


def test_attacked_router_once_exits_1_with_the_expected_kinds(tmp_path):
    tree = build_tree("router-attacked", tmp_path / "attacked")
    result, anomalies = run_once(tree)
    assert result.returncode == 1, result.stderr
    kinds = {a["kind"] for a in anomalies}
    assert EXPECTED_ATTACKED_KINDS <= kinds, sorted(kinds)
    by_kind = {}
    for anomaly in anomalies:
        by_kind.setdefault(anomaly["kind"], []).append(anomaly)
    deleted = by_kind["integrity.deleted_exe"][0]
    assert deleted["severity"] == "critical"
    assert deleted["evidence"]["exe"] == "/tmp/.x"
    assert deleted["evidence"]["listening_ports"] == [7777, 11288]
    shadowed = {a["evidence"]["path"]: a["severity"] for a in by_kind["integrity.rom_shadowed"]}
    assert shadowed["/usr/sbin/dropbear"] == "high"
    assert shadowed["/etc/shadow"] == "info"
    drift = {a["evidence"]["path"]: a["severity"] for a in by_kind["integrity.baseline_drift"]}
    assert drift["/etc/dropbear/authorized_keys"] == "high"
    assert drift["/etc/crontabs/root"] == "high"
    mismatched = {a["evidence"]["path"] for a in by_kind["integrity.package_mismatch"]}
    assert mismatched == {"/usr/sbin/dropbear", "/usr/sbin/tcpdump"}


def test_clean_router_once_exits_0_and_raises_nothing_above_info(tmp_path):
    tree = build_tree("router-clean", tmp_path / "clean")
    result, anomalies = run_once(tree)
    loud = [a for a in anomalies if a["severity"] != "info"]
    assert loud == []
    assert result.returncode == 0, result.stderr
    integrity = {(a["kind"], a["evidence"].get("path")) for a in anomalies
                 if a["kind"].startswith("integrity.")}
    assert ("integrity.rom_shadowed", "/etc/shadow") in integrity   # seen, but only info


# ---------------------------------------------------------------- sources + detectors in the loop

def integrity_agent(tree, state):
    conf = cfg.load(overrides=["state_dir=%s" % state], defaults={"root": str(tree)})
    classes = detector_classes()
    detectors = [classes[k](c) for k, c in conf.detectors.items() if k.startswith("integrity.")]
    return Agent(conf, "r1", [IntegritySource(conf), ProcessSource(conf)], detectors,
                 StdoutSink(io.StringIO()), run_id="0123456789abcdef", started=0.0)


def scan(tree, state, now=1000.0):
    agent = integrity_agent(tree, state)
    produced = agent.step(now, force_poll=True)
    agent.sink.close()
    return produced


@pytest.mark.parametrize("name", ["router-clean", "router-attacked"])
def test_a_restart_with_nothing_changed_reports_the_same_state_and_no_change(tmp_path, name):
    tree = build_tree(name, tmp_path / name)
    first = scan(tree, tmp_path / "state")      # takes the baseline and remembers the firmware

    def seen(anomalies):
        return {(a.kind, a.evidence.get("path") or a.evidence.get("exe")) for a in anomalies}
    again = scan(tree, tmp_path / "state")
    assert seen(again) == seen(first)
    assert not [a for a in again if a.kind in ("integrity.firmware_changed",
                                               "integrity.baseline_drift")]


def test_a_sysupgrade_is_info_and_a_same_version_rom_swap_is_high(tmp_path):
    tree = build_tree("router-clean", tmp_path / "clean")
    state = tmp_path / "state"
    scan(tree, state)
    # a new /rom with the same claimed version and packages: one program differs
    (tree / "rom/usr/sbin/uhttpd").write_bytes(b"\x7fELF other build of the same version, longer")
    (swapped,) = [a for a in scan(tree, state) if a.kind == "integrity.firmware_changed"]
    assert swapped.severity == "high" and "claims" in swapped.summary
    release = tree / "rom/etc/openwrt_release"
    release.write_text(release.read_text().replace("25.12.0", "25.12.1"))
    (upgrade,) = [a for a in scan(tree, state) if a.kind == "integrity.firmware_changed"]
    assert upgrade.severity == "info"
    assert upgrade.evidence["release"].startswith("25.12.1")
    assert upgrade.evidence["previous_release"].startswith("25.12.0")


def test_baseline_create_accepts_the_changes_and_show_prints_it(tmp_path):
    tree = build_tree("router-attacked", tmp_path / "attacked")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "routerwatch.cli", "--root", str(tree)]
                              + list(args), capture_output=True, text=True, timeout=120)
    before = cli("baseline", "show")
    assert before.returncode == 0
    assert "/etc/crontabs/root" not in before.stdout      # the committed (pre-attack) baseline
    created = cli("baseline", "create")
    assert created.returncode == 0 and "paths written to" in created.stdout
    after = cli("baseline", "show")
    assert "/etc/crontabs/root\t" in after.stdout
    assert after.stdout.splitlines()[0].startswith("# baseline ")
    result, anomalies = run_once(tree)
    assert not [a for a in anomalies if a["kind"] == "integrity.baseline_drift"]
    assert {"integrity.rom_shadowed", "integrity.package_mismatch"} <= {
        a["kind"] for a in anomalies}                    # what needs no history stays
    assert cli("baseline", "bogus").returncode == 2


def test_baseline_show_without_one_says_so(tmp_path):
    tree = build_tree("router-clean", tmp_path / "clean")
    shown = subprocess.run([sys.executable, "-m", "routerwatch.cli", "--root", str(tree),
                            "baseline", "show"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 3 and "no baseline" in shown.stderr


def assert_dropbear_replaced(anomalies):
    """The replaced /usr/sbin/dropbear is among --once's anomalies, as high."""
    shadowed = {a["evidence"]["path"]: a["severity"] for a in anomalies
                if a["kind"] == "integrity.rom_shadowed"}
    assert shadowed["/usr/sbin/dropbear"] == "high"


def _once_with_peak_rss(tree, tmp_path):
    """routerwatch-agent --once on `tree` in a fresh process: (exit code, anomalies, peak MB)."""
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from procmem import run_with_peak_rss
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        code, peak_kb, _seconds = run_with_peak_rss(
            [sys.executable, "-m", "routerwatch.cli", "--root", tree, "--once",
             "--log-file", tree / "var/log/messages", "--set",
             "state_dir=%s" % (tmp_path / "state")], stdout=out, stderr=err)
    assert code in (0, 1), err_path.read_text()[-2000:]
    anomalies = [json.loads(line) for line in out_path.read_text().splitlines() if line.strip()]
    return code, anomalies, peak_kb / 1024.0


def test_a_junk_flood_does_not_hide_a_replaced_dropbear_and_memory_stays_bounded(tmp_path):
    """80,000 junk files in the overlay and a replaced /usr/sbin/dropbear: --once reports the
    dropbear and the flood, exits 1, and its peak RSS stays under 64 MB (a 128 MB router)."""
    from fixtures.junk_flood import JUNK_DIR, flood, replace_dropbear
    tree = build_tree("router-clean", tmp_path / "flooded")
    flood(tree / "overlay/upper", 80000)
    replace_dropbear(tree / "overlay/upper")
    code, anomalies, peak_mb = _once_with_peak_rss(tree, tmp_path)
    assert code == 1
    by_kind = {}
    for anomaly in anomalies:
        by_kind.setdefault(anomaly["kind"], []).append(anomaly)
    shadowed = {a["evidence"]["path"]: a["severity"] for a in by_kind["integrity.rom_shadowed"]}
    assert shadowed["/usr/sbin/dropbear"] == "high"
    (cap,) = by_kind["integrity.file_flood"]
    assert cap["severity"] == "medium" and cap["evidence"]["path"] == "/" + JUNK_DIR
    assert cap["evidence"]["dropped"] >= 80000 - 50000
    assert peak_mb < 64, "peak RSS %.1f MB" % peak_mb


def test_a_flood_of_the_longest_names_stays_bounded_in_memory_and_is_reported(tmp_path):
    """15,000 junk files whose paths are as long as Linux allows (about 4 KB each) and a replaced
    dropbear: fewer files than integrity.max_files, but 60 MB of names if all were kept. --once
    reports the dropbear and the flood, and its peak RSS stays under 64 MB."""
    from fixtures.junk_flood import long_names, replace_dropbear
    tree = build_tree("router-clean", tmp_path / "t")
    upper = tree / "overlay/upper"
    directory = long_names(upper, 15000)
    replace_dropbear(upper)
    code, anomalies, peak_mb = _once_with_peak_rss(tree, tmp_path)
    assert code == 1
    assert_dropbear_replaced(anomalies)
    (cap,) = [a for a in anomalies if a["kind"] == "integrity.file_flood"]
    assert cap["severity"] == "medium" and cap["evidence"]["files"] < cap["evidence"]["max_files"]
    assert cap["evidence"]["dropped"] > 10000
    named = cap["evidence"]["path"]                         # clipped at 512 characters
    assert named.endswith("\u2026") and ("/" + os.path.relpath(directory, upper)).startswith(
        named[:-1])
    assert peak_mb < 64, "peak RSS %.1f MB" % peak_mb


@pytest.mark.parametrize("manager", ["apk", "opkg"])
def test_a_hostile_package_database_is_read_in_bounded_memory_and_named(tmp_path, manager):
    """A 34 MB package database of long, undecodable, repeated entries and a 64 KB line (apk's
    installed; opkg's status of 5,000 packages and its .list files), a tampered package file and
    a replaced dropbear: --once reports the dropbear and the tampered file, names the database
    as past its caps, exits 1, and its peak RSS stays under 64 MB (it was 452 MB for apk)."""
    from fixtures.hostile_packages import hostile_apk, hostile_opkg
    from fixtures.junk_flood import replace_dropbear
    tree = build_tree("router-clean", tmp_path / "t")
    upper = tree / "overlay/upper"
    if manager == "apk":
        hostile_apk(upper)
        database, tampered = "/lib/apk/db/installed", "/usr/bin/tool"
    else:
        hostile_opkg(tree)
        database, tampered = "/usr/lib/opkg/status", "/etc/tool.conf"
    replace_dropbear(upper)
    code, anomalies, peak_mb = _once_with_peak_rss(tree, tmp_path)
    assert code == 1
    assert_dropbear_replaced(anomalies)
    mismatched = {a["evidence"]["path"]: a["evidence"] for a in anomalies
                  if a["kind"] == "integrity.package_mismatch"}
    assert mismatched[tampered]["package"] == "tool"
    (cap,) = [a for a in anomalies if a["kind"] == "integrity.file_flood"]
    assert cap["severity"] == "medium" and cap["evidence"]["database"] == database
    assert "bytes" in cap["evidence"]["limits"] and "line_length" in cap["evidence"]["limits"]
    assert database in cap["summary"]
    assert peak_mb < 64, "peak RSS %.1f MB" % peak_mb


def test_a_package_database_listing_every_junk_file_stays_bounded(tmp_path):
    """49,900 junk files (just under integrity.max_files, so every one is kept) that the apk
    database lists with their checksums: the scan keeps an owner and a checksum for each, and
    the peak RSS of --once stays under 64 MB; dropbear is still reported."""
    from fixtures.hostile_packages import apk_listing_junk
    from fixtures.junk_flood import JUNK_DIR, flood, replace_dropbear
    tree = build_tree("router-clean", tmp_path / "t")
    upper = tree / "overlay/upper"
    flood(upper, 49900)
    apk_listing_junk(upper, 49900, JUNK_DIR)
    replace_dropbear(upper)
    code, anomalies, peak_mb = _once_with_peak_rss(tree, tmp_path)
    assert code == 1
    assert_dropbear_replaced(anomalies)
    assert not [a for a in anomalies if a["kind"] == "integrity.file_flood"]
    assert peak_mb < 64, "peak RSS %.1f MB" % peak_mb
