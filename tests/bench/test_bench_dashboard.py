"""bench_dashboard keeps working: with a tiny fleet it serves every page and yields a
well-formed result (nothing here looks at speed)."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import bench_dashboard  # noqa: E402
import harness  # noqa: E402


def test_the_dashboard_benchmark_runs_on_a_tiny_fleet(tmp_path):
    res = bench_dashboard.run(quick=True, workdir=str(tmp_path), devices=50, anomalies=400,
                              repeat=1)
    assert res["benchmark"] == "dashboard" and res["sizes"] == {"devices": 50,
                                                                "anomalies": 400}
    assert [row["case"] for row in res["rows"]][:2] == ["fleet page, last 24 h",
                                                        "fleet page, last 7 days"]
    for row in res["rows"]:
        assert row["routerwatch"]["median"] > 0 and row["reference"]["median"] > 0
    assert harness.table_lines(res)[0] == "== dashboard (quick)"
    # the store is kept in the workdir and reused by the next run
    assert len(list(tmp_path.glob("fleet-50-400.sqlite"))) == 1


def test_the_generated_fleet_is_what_it_says(tmp_path):
    import sqlite3
    from gen_fleet_store import generate
    info = generate(tmp_path / "f.sqlite", devices=30, anomalies=300, now=1.8e9, seed=3)
    con = sqlite3.connect(tmp_path / "f.sqlite")
    assert con.execute("SELECT COUNT(*) FROM devices").fetchone()[0] == 30
    assert con.execute("SELECT COUNT(*), MIN(received_at) >= ?, MAX(received_at) <= ? FROM "
                       "anomalies", (info["since"], info["until"])).fetchone() == (300, 1, 1)
    assert con.execute("SELECT SUM(anomalies) FROM devices").fetchone()[0] == 300
