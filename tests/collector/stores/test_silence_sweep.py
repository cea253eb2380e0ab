"""The silence sweep reads the devices that are due, not the fleet: the plan of its statement on
a fleet of a few thousand devices (statistics gathered, as a running database has them), on
SQLite and on PostgreSQL. Proven by the plan and the rows it reads, not by timing."""
import json

import pytest

FLEET = 20000
DUE_EVERY = 500          # devices FLEET / DUE_EVERY are late on heartbeats
NOW = 1795000000.0


@pytest.fixture
def fleet(open_test_store):
    store = open_test_store()
    postgres = type(store).__name__ == "PostgresStore"
    modulo = "%%" if postgres else "%"
    numbers = ("SELECT n FROM generate_series(1, ?) AS n" if postgres else
               "WITH RECURSIVE n(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM n WHERE n < ?) "
               "SELECT n FROM n")
    with store.transaction():
        # every device heard a few seconds ago, one in DUE_EVERY an hour ago; a few said
        # goodbye by Last Will or stopped cleanly
        store._x(("INSERT INTO devices (device, first_seen, last_seen, run, status, status_at, "
                  "alive_at, heartbeat_interval) SELECT 'rw-' || n, ?, ?, 'r', "
                  "CASE WHEN n MOD 997 = 0 THEN 'offline' WHEN n MOD 991 = 0 THEN 'stopped' "
                  "ELSE 'online' END, ?, CASE WHEN n MOD ? = 0 THEN ? ELSE ? END, 60 "
                  "FROM (" + numbers + ") AS numbers").replace("MOD", modulo),
                 (NOW - 7200, NOW, NOW - 7200, DUE_EVERY, NOW - 3600, NOW - 5, FLEET))
    store._x("ANALYZE")
    return store


def _due(store):
    return store.silence_candidates(NOW, 3)


def test_the_sweep_finds_exactly_the_late_and_the_last_wills(fleet):
    found = _due(fleet)
    late = {"rw-%d" % n for n in range(1, FLEET + 1)
            if n % DUE_EVERY == 0 and n % 997 and n % 991}
    wills = {"rw-%d" % n for n in range(1, FLEET + 1) if n % 997 == 0}
    assert {d for d, reason, *_ in found if reason == "heartbeats"} == late
    assert {d for d, reason, *_ in found if reason == "last_will"} == wills


def test_the_sweep_is_answered_from_the_indexes_reading_only_the_due(fleet):
    statements = [fleet.silence_due_sql(NOW, 3, float("-inf")),
                  fleet.silence_stopped_sql(NOW, 1800)]
    if type(fleet).__name__ == "SqliteStore":
        for sql, args in statements:
            plan = [r["detail"] for r in fleet._x("EXPLAIN QUERY PLAN " + sql, args)]
            reads = [step for step in plan if " devices" in step]
            # each read of the table goes through an index (SCAN ... USING INDEX of a partial
            # one reads only the rows in it), never all of it
            assert reads and all("USING INDEX" in step for step in reads), plan
        return
    touched = 0
    for sql, args in statements:
        (row,) = fleet._x("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, args).fetchall()
        plan = row["QUERY PLAN"]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        scans = list(_scans(plan[0]["Plan"]))
        assert scans and all(s["Node Type"] in ("Index Scan", "Index Only Scan",
                                                "Bitmap Heap Scan") for s in scans), scans
        # rows the scans touched: the due devices, none of the thousands that are fine
        touched += sum(s["Actual Rows"] + s.get("Rows Removed by Filter", 0) +
                       s.get("Rows Removed by Index Recheck", 0) for s in scans)
    stopped = [d for d in range(1, FLEET + 1) if d % 991 == 0 and d % 997]
    assert touched == len(_due(fleet)) + len(stopped) < FLEET / 100


def _scans(node):
    """The plan's nodes that read the devices table."""
    if node.get("Relation Name") == "devices":
        yield node
    for child in node.get("Plans", ()):
        yield from _scans(child)
