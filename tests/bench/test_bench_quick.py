"""The benchmarks keep working: each runs with tiny sizes and yields a well-formed result.

Nothing here looks at speed. Where agreement is a behaviour (which failed logins routerwatch and
fail2ban's stock dropbear filter find, and with which address), it is asserted.
"""
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import bench_conntrack  # noqa: E402
import bench_delivery  # noqa: E402
import bench_devices  # noqa: E402
import bench_footprint  # noqa: E402
import bench_homeassistant  # noqa: E402
import bench_integrity  # noqa: E402
import bench_latency  # noqa: E402
import bench_logins  # noqa: E402
import harness  # noqa: E402
from broker import missing_tool  # noqa: E402
import run_all  # noqa: E402
from gen_openwrt_log import FAILURE_CATEGORIES, generate  # noqa: E402
from gen_rootfs import change_files, plan  # noqa: E402


def mosquitto_or_skip():
    from services import mosquitto_missing
    reason = mosquitto_missing()
    if reason:
        missing_tool(reason)


def assert_well_formed(res, name):
    assert res["benchmark"] == name
    assert res["rows"], "no rows"
    assert set(res["machine"]) >= {"nproc", "cpu", "kernel", "python", "date_utc"}
    json.dumps(res)     # serialisable as it is written to build/bench-results.json
    for row in res["rows"]:
        assert "skipped" not in row, row
        for side in ("reference", "routerwatch"):
            summary = row.get(side)
            if isinstance(summary, dict) and "median" in summary:
                assert summary["n"] >= 1
                assert summary["min"] <= summary["median"] <= summary["max"]
                assert summary["median"] > 0
        if "ratio" in row:
            assert row["ratio"]["median"] > 0
    assert harness.table_lines(res)[0].startswith("== " + name)


# --------------------------------------------------------------------------- generators

def test_log_generator_is_seeded_and_its_truth_points_at_login_lines(tmp_path):
    first = generate(tmp_path / "a.log", lines=3000, seed=5)
    second = generate(tmp_path / "b.log", lines=3000, seed=5)
    assert (tmp_path / "a.log").read_bytes() == (tmp_path / "b.log").read_bytes()
    assert first["counts"] == second["counts"]
    lines = (tmp_path / "a.log").read_text().splitlines()
    assert len(lines) == 3000
    for entry in first["entries"]:
        text = lines[entry["line"] - 1]
        assert ("dropbear[" in text) or ("luci:" in text), text
        if entry["category"] in ("bad_password", "nonexistent_2024", "luci_failure"):
            assert text.endswith(entry["ip"]) or (" from %s:" % entry["ip"]) in text


def test_rootfs_plan_has_the_requested_count_and_total():
    layout = plan(500, 3 * 1024 * 1024, seed=1)
    assert len(layout) == 500
    assert sum(size for _, size in layout) == 3 * 1024 * 1024
    sizes = sorted(size for _, size in layout)
    assert sizes[len(sizes) // 2] < 16 * 1024      # mostly small files, like a real rootfs


def test_change_files_changes_content_and_mtime(tmp_path):
    for i in range(5):
        (tmp_path / ("f%d" % i)).write_bytes(b"x" * 100)
    changed = change_files(tmp_path, 2)
    assert len(changed) == 2
    for rel in changed:
        assert (tmp_path / rel).read_bytes() != b"x" * 100
        assert (tmp_path / rel).stat().st_size == 100


# --------------------------------------------------------------------------- benchmarks

def test_logins_routerwatch_and_fail2ban_agree_where_both_can_see(tmp_path):
    if not bench_logins.fail2ban_available():
        missing_tool("fail2ban is not installed (ci/install-system-packages.sh installs it)")
    res = bench_logins.run(quick=True, workdir=tmp_path, lines=4000, repeat=1)
    assert_well_formed(res, "logins")
    assert set(res["agreements"]) == {"quiet", "attack"}      # both mixes, side by side
    assert res["agreement"] == res["agreements"]["quiet"]
    for agreement in res["agreements"].values():
        rows = agreement["by_category"]
        # what the stock filter is written for: both find every line, with the true address
        for category in ("bad_password", "nonexistent_2024", "hostile_user"):
            row = rows[category]
            assert row["expected"] > 0, category
            assert row["fail2ban"] == row["routerwatch"] == row["expected"], (category, row)
            assert row["fail2ban_true_address"] == row["routerwatch_true_address"] == \
                row["expected"]
        # what it cannot see (no address on the line, or not a dropbear line): routerwatch does
        for category in ("nonexistent_2022", "luci_failure"):
            row = rows[category]
            assert row["fail2ban"] == 0, (category, row)
            assert row["routerwatch"] == row["routerwatch_true_address"] == row["expected"]
        assert {d["category"] for d in agreement["disagreements"]} <= set(FAILURE_CATEGORIES)
        assert not agreement["unexplained"]


def test_integrity(tmp_path):
    res = bench_integrity.run(quick=True, workdir=tmp_path, files=60, megabytes=0.5, repeat=1,
                              drop_cache=False, flood_files=1500, flood_max_files=300)
    assert_well_formed(res, "integrity")
    flood_time, flood_memory = [r for r in res["rows"] if "junk files" in r["case"]]
    assert flood_time["exit_code"] == 1 and flood_time["dropbear_reported"] is True
    (where,) = flood_time["flood_reported_at"]
    assert where.startswith("/www/luci-static/cache")       # the junk, not /usr
    assert flood_memory["unit"] == "MB" and flood_memory["routerwatch"]["median"] > 5
    rescan = [r for r in res["rows"] if r["case"].startswith("integrity: re-scan")][0]
    assert rescan["files_rehashed"]["median"] == 10    # only the changed files are read again


def test_conntrack(tmp_path):
    res = bench_conntrack.run(quick=True, workdir=tmp_path, sizes=[200, 800], repeat=2)
    assert_well_formed(res, "conntrack")
    for row in res["rows"]:
        assert row["snapshot"]["entries"] == row["amount"]
        assert row["snapshot"]["unparsed"] == 0
        assert "conn.scan" in row["detectors"]


def test_delivery(tmp_path):
    mosquitto_or_skip()
    res = bench_delivery.run(quick=True, workdir=tmp_path, anomalies=200, devices=200, repeat=1)
    assert_well_formed(res, "delivery")
    rows = {row["case"].split(" (")[0]: row for row in res["rows"]}
    anomalies = rows["anomalies: sink -> broker -> collector"]
    assert anomalies["routerwatch_info"]["stored"] == 200
    assert anomalies["reference_delivered"]["delivered"] == 200
    assert rows["anomalies: sink alone"]["routerwatch_info"]["delivered"] == 200
    assert rows["anomalies: collector alone"]["routerwatch_info"]["stored"] == 200
    assert rows["fleet: 200 devices x 1 heartbeat"]["routerwatch_info"]["recorded"] == 200


def test_devices(tmp_path):
    res = bench_devices.run(quick=True, workdir=tmp_path, devices=2000, repeat=1)
    assert_well_formed(res, "devices")
    cases = [row["case"] for row in res["rows"]]
    for backend in ("SQLite", "PostgreSQL"):
        assert "devices, %s, 2000 devices" % backend in cases
        assert "devices --json, %s, 2000 devices" % backend in cases
        assert "silence sweep, %s, 2000 devices (2 due)" % backend in cases


def test_latency(tmp_path):
    mosquitto_or_skip()
    res = bench_latency.run(quick=True, workdir=tmp_path, events=20, rate=50.0)
    assert_well_formed(res, "latency")
    # the file follower, the pipe reader (as from logread -f) and the pipe reader at the broker:
    # every event went through each of them
    assert len(res["rows"]) == 3
    for row in res["rows"]:
        assert row["routerwatch"]["received"] == 20, row["case"]
        assert row["reference"]["received"] == 20
        assert row["routerwatch"]["p50"] <= row["routerwatch"]["p95"] <= row["routerwatch"]["p99"]


def test_footprint(tmp_path):
    mosquitto_or_skip()
    res = bench_footprint.run(quick=True, workdir=tmp_path, flood_seconds=3, flood_rate=2000,
                              repeat=1, settle=1.0, sample_every=1.0)
    assert_well_formed(res, "footprint")
    cases = {row["case"]: row for row in res["rows"]}
    assert cases["floor: bare python3"]["RssAnon"] > 0
    assert cases["agent idle (all watchers, MQTT sink)"]["RssAnon"] > 0
    flood = [row for row in res["rows"] if row["case"].startswith("agent under a flood")][0]
    assert flood["samples"] >= 3
    assert flood["agent_heartbeat"]["counters"]["log_lines"] == flood["lines_written"]
    # a few seconds of flood show a level still settling, not a trend: no slope is reported
    assert flood["RssAnon"]["slope_kb_per_min"] is None
    table = "\n".join(harness.table_lines(res))
    assert "kB/min" not in table and "too short for one" in table


def test_a_memory_slope_needs_a_long_enough_run():
    rising = [(t, 10000 + t) for t in range(0, 61, 5)]          # +1 kB/s for a minute
    assert bench_footprint.slope_kb_per_min(rising) is None
    long_rising = [(t, 10000 + t / 60) for t in range(0, 601, 10)]     # +1 kB/min, 10 min
    assert bench_footprint.slope_kb_per_min(long_rising) == pytest.approx(1.0)
    assert bench_footprint.slope_kb_per_min(rising, min_seconds=30) == pytest.approx(60.0)


def test_run_all_writes_the_results_file(tmp_path, monkeypatch):
    def tiny(quick=False, workdir=None):
        return harness.result("conntrack", quick, [{"case": "x", "value": 1}])
    monkeypatch.setattr(bench_conntrack, "run", tiny)
    out = tmp_path / "results.json"
    assert run_all.main(["--quick", "--only", "conntrack", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["results"][0]["benchmark"] == "conntrack"
    assert data["results"][0]["wall_seconds"] >= 0


def test_homeassistant(tmp_path):
    mosquitto_or_skip()
    res = bench_homeassistant.run(quick=True, workdir=tmp_path, seconds=3, rate=20, repeat=1)
    assert_well_formed(res, "homeassistant")
    (round_,) = res["rounds"]
    # discovery adds the configs and the state; both agents saw the same brute force
    assert round_["messages"]["on"] > round_["messages"]["off"] > 0
    assert round_["lines"] == 60
