"""The stores, each test on SQLite and on PostgreSQL: exactly-once anomalies, device rows, gaps,
rejected counts, queries."""
import sqlite3

import pytest

from collector_messages import DEVICE, RUN, T0, anomaly, heartbeat, inventory, status
from routerwatch_collector.store import SqliteStore, open_store


@pytest.fixture
def store(open_test_store):
    return open_test_store()


def test_the_sqlite_database_is_in_wal_mode_with_a_unique_index_on_device_run_seq(tmp_path):
    SqliteStore(tmp_path / "collector.sqlite").close()
    db = sqlite3.connect(tmp_path / "collector.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    index = db.execute("SELECT sql FROM sqlite_master WHERE name = 'anomalies_identity'").fetchone()
    assert "UNIQUE" in index[0] and "(device, run, seq)" in index[0]


def test_an_anomaly_stored_twice_is_one_row_and_only_the_first_insert_reports_it(store):
    store.upsert_device(DEVICE, RUN, T0)
    first = store.add_anomalies([anomaly(1), anomaly(2)], T0 + 1)
    again = store.add_anomalies([anomaly(2), anomaly(1), anomaly(3)], T0 + 2)
    assert [a.seq for a in first] == [1, 2]
    assert [a.seq for a in again] == [3]
    assert store.anomaly_count() == 3
    assert store.devices()[0].anomalies == 3


def test_stored_anomalies_keep_every_contract_field_and_the_evidence(store):
    store.add_anomalies([anomaly(7, source="198.51.100.9", kind="login.spray")], T0 + 30)
    (row,) = store.query_anomalies()
    assert (row.device, row.run, row.seq, row.kind, row.severity, row.count) == (
        DEVICE, RUN, 7, "login.spray", "high", 1)
    assert row.time == T0 + 7 and row.received_at == T0 + 30 and row.origin == "agent"
    assert row.evidence == {"source_ip": "198.51.100.9", "failures": 10, "service": "dropbear"}


def test_a_batch_inside_a_transaction_that_fails_leaves_nothing_behind(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_anomalies([anomaly(1)], T0)
            raise RuntimeError("disk full")
    assert store.anomaly_count() == 0


def test_a_commit_sqlite_refuses_is_rolled_back_and_the_next_transaction_begins(tmp_path):
    store = SqliteStore(tmp_path / "collector.sqlite")
    # a deferred foreign key is checked at COMMIT: the one way to make SQLite refuse a commit
    store._x("PRAGMA foreign_keys = ON")
    store._x("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)")
    store._x("CREATE TEMP TABLE child (p INTEGER REFERENCES parent (id) "
             "DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction():
            store.add_anomalies([anomaly(1)], T0)
            store._x("INSERT INTO child VALUES (7)")
    assert store.anomaly_count() == 0
    with store.transaction():
        with store.transaction():          # nested: joins the outer one
            store.add_anomalies([anomaly(1)], T0)
    assert store.anomaly_count() == 1
    store.close()


def test_a_batch_repeating_a_key_stores_it_once_and_reports_the_first(store):
    batch = [anomaly(seq, device="rw-d%04d" % (seq % 600)) for seq in range(1, 1201)]
    new = store.add_anomalies(batch + batch[:3], [T0 + n for n in range(len(batch) + 3)])
    assert [(a.device, a.seq, a.received_at) for a in new] == [
        (a.device, a.seq, T0 + n) for n, a in enumerate(batch)]
    assert store.anomaly_count() == 1200
    assert store.highest_anomaly_seqs([("rw-d0001", RUN), ("rw-d9999", RUN)]) == {
        ("rw-d0001", RUN): 1201 - 600}


def test_queries_filter_by_device_kind_family_and_arrival_time_newest_first(store):
    store.add_anomalies([anomaly(1, kind="login.bruteforce")], T0 + 10)
    store.add_anomalies([anomaly(2, kind="conn.new_listener")], T0 + 20)
    store.add_anomalies([anomaly(1, device="rw-other", kind="login.spray")], T0 + 30)
    assert [a.seq for a in store.query_anomalies(device=DEVICE)] == [2, 1]
    assert [a.kind for a in store.query_anomalies(kind="login.*")] == ["login.spray",
                                                                       "login.bruteforce"]
    assert [a.kind for a in store.query_anomalies(kind="conn.new_listener")] == [
        "conn.new_listener"]
    assert [a.device for a in store.query_anomalies(since=T0 + 15)] == ["rw-other", DEVICE]
    assert len(store.query_anomalies(limit=1)) == 1


def test_a_device_row_follows_heartbeat_inventory_and_status(store):
    store.upsert_device(DEVICE, RUN, T0)
    store.record_inventory(inventory(), T0)
    store.record_heartbeat(heartbeat(1, interval=30.0), T0 + 30)
    store.upsert_device(DEVICE, RUN, T0 + 30)
    (row,) = store.devices()
    assert row.first_seen == T0 and row.last_seen == T0 + 30
    assert row.status == "online" and row.alive_at == T0 + 30
    assert row.heartbeat_interval == 30.0 and row.heartbeats == 1
    assert row.last_heartbeat["counters"] == {"lines": 10, "anomalies": 1}
    assert row.firmware["DISTRIB_RELEASE"] == "23.05.3" and row.package_manager == "opkg"
    assert store.highest_seq(DEVICE, RUN, "heartbeat") == 1


def test_the_last_will_is_offline_and_a_clean_stop_is_stopped(store):
    store.upsert_device(DEVICE, RUN, T0)
    store.record_status(status("offline", 0), T0 + 1)
    assert store.devices()[0].status == "offline"
    store.record_status(status("online", 1), T0 + 2)
    store.record_status(status("offline", 2), T0 + 3)
    assert store.devices()[0].status == "stopped"


def test_a_retained_status_of_an_older_run_is_ignored(store):
    store.upsert_device(DEVICE, "1111111111111111", T0)
    assert not store.record_status(status("offline", 0, run="2222222222222222"), T0 + 1,
                                   retained=True)
    assert store.devices()[0].status is None


def test_gaps_are_recorded_and_late_arrivals_fill_them(store):
    store.record_gap(DEVICE, RUN, "anomaly", 3, 5, T0)
    assert store.fill_gap(DEVICE, RUN, "anomaly", 4)
    assert not store.fill_gap(DEVICE, RUN, "anomaly", 9)
    (gap,) = store.gaps()
    assert (gap["first_seq"], gap["last_seq"], gap["filled"], gap["missing"]) == (3, 5, 1, 2)


def test_rejected_counts_add_up_by_reason_and_only_touch_known_devices(store):
    store.upsert_device(DEVICE, RUN, T0)
    store.record_rejected("not_json", 2, T0, DEVICE, "payload is not JSON")
    store.record_rejected("not_json", 1, T0 + 1, "rw-unknown", "payload is not JSON")
    store.record_rejected("device_mismatch", 1, T0 + 2, DEVICE, "x")
    assert store.rejected() == {"device_mismatch": 1, "not_json": 3}
    assert [d.device for d in store.devices()] == [DEVICE]
    assert store.devices()[0].rejected == 3


def test_only_one_claim_on_a_silence_succeeds(store):
    store.upsert_device(DEVICE, RUN, T0)
    assert store.claim_silence(DEVICE, T0 + 100)
    assert not store.claim_silence(DEVICE, T0 + 101)


def test_opening_a_missing_database_for_queries_is_an_error_not_an_empty_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_store(tmp_path / "typo.sqlite", create=False)
    assert not (tmp_path / "typo.sqlite").exists()


# ---------------------------------------------------------------- the dashboard's reads

def test_find_anomalies_filters_by_kind_glob_severity_and_range_and_pages_by_id(store):
    from routerwatch_collector.store import AnomalyFilter
    store.add_anomalies([anomaly(1, kind="login.bruteforce", severity="medium"),
                         anomaly(2, kind="login.spray", severity="high"),
                         anomaly(3, kind="conn.new_listener", severity="critical")], T0 + 10)
    store.add_anomalies([anomaly(4, kind="agent.silent", severity="high")], T0 + 20)
    def kinds(**where):
        return [a.kind for a in store.find_anomalies(AnomalyFilter(**where))]
    assert kinds() == ["agent.silent", "conn.new_listener", "login.spray", "login.bruteforce"]
    assert kinds(kind="login.*") == ["login.spray", "login.bruteforce"]
    assert kinds(kind="*.silent") == ["agent.silent"]
    assert kinds(kind="login_bruteforce") == [] and kinds(kind="login.b*") == ["login.bruteforce"]
    assert kinds(kind="login.%") == []                  # LIKE wildcards are literal
    assert kinds(severities=("high", "critical")) == ["agent.silent", "conn.new_listener",
                                                      "login.spray"]
    assert kinds(since=T0 + 15) == ["agent.silent"] and kinds(until=T0 + 15)[0] == "conn.new_listener"
    first = store.find_anomalies(AnomalyFilter(), limit=2)
    rest = store.find_anomalies(AnomalyFilter(), limit=2, before_id=first[-1].id)
    assert [a.seq for a in first + rest] == [4, 3, 2, 1]
    assert store.anomaly(first[0].id).as_dict()["id"] == first[0].id
    assert store.anomaly(10 ** 9) is None


def test_histogram_and_tops_count_within_the_range(store):
    from routerwatch_collector.store import AnomalyFilter
    store.add_anomalies([anomaly(1, severity="medium"), anomaly(2, severity="high")], T0 + 10)
    store.add_anomalies([anomaly(3, kind="conn.scan", severity="critical")], T0 + 70)
    store.add_anomalies([anomaly(4, device="rw-b", severity="low")], T0 + 500)  # out of range
    where = AnomalyFilter(since=T0, until=T0 + 120)
    assert store.anomaly_histogram(where, 60) == {(T0, "medium"): 1, (T0, "high"): 1,
                                                  (T0 + 60, "critical"): 1}
    assert store.top_kinds(where) == [("login.bruteforce", 2, "high"), ("conn.scan", 1, "critical")]
    assert store.top_devices(where) == [(DEVICE, 3, "critical")]
    with pytest.raises(ValueError):
        store.anomaly_histogram(AnomalyFilter(), 60)


def test_fleet_counts_and_device_pages_by_state(store):
    store.record_status(status("online", 1), T0)
    store.record_status(status("online", 1, device="rw-b"), T0)
    store.record_status(status("offline", 5, device="rw-b"), T0 + 1)      # a clean stop
    store.record_status(status("online", 1, device="rw-c"), T0)
    store.claim_silence("rw-c", T0 + 500)
    assert store.fleet_counts() == {"online": 1, "silent": 1, "stopped": 1, "offline": 0,
                                    "unknown": 0, "total": 3}
    assert [d.device for d in store.device_page(status="silent")] == ["rw-c"]
    assert [d.device for d in store.device_page(limit=2)] == [DEVICE, "rw-b"]
    assert [d.device for d in store.device_page(after="rw-b")] == ["rw-c"]
    assert [d.device for d in store.device_page(prefix="rw-")] == [DEVICE, "rw-b", "rw-c"]
    assert store.device("rw-b").status == "stopped" and store.device("rw-x") is None


def test_heartbeat_history_is_sampled_and_pruned_to_a_day(tmp_path):
    from routerwatch_collector.store import HEARTBEAT_HISTORY_SECONDS
    s = SqliteStore(tmp_path / "h.sqlite", heartbeat_sample_spacing=60)
    s.record_status(status("online", 1), T0)
    for i in range(10):                      # every 20 s: one sample per minute is kept
        s.record_heartbeat(heartbeat(i + 1, interval=20), T0 + 20 * i)
    assert [h["at"] for h in s.heartbeat_history(DEVICE, 0)] == [T0, T0 + 60, T0 + 120, T0 + 180]
    later = T0 + HEARTBEAT_HISTORY_SECONDS + 200
    s.record_heartbeat(heartbeat(11, interval=20), later)
    assert [h["at"] for h in s.heartbeat_history(DEVICE, 0)] == [later]
    s.record_heartbeat(heartbeat(1, device="rw-unknown"), later)   # no device row: no sample
    assert s.heartbeat_history("rw-unknown", 0) == []
    s.close()


def test_rollup_counts_equal_counting_the_anomalies_for_any_range(store):
    """The chart and top kinds read anomaly_counts_hourly for whole hours, anomaly_counts for
    whole 5-minute buckets and the anomalies for the ends: for random arrivals (stored in
    batches) and ranges they agree with plain counting."""
    import random
    from routerwatch_collector.store import AnomalyFilter
    rng = random.Random(7)
    s = store
    arrivals = []
    kinds = ("login.bruteforce", "login.spray", "conn.scan")
    severities = ("low", "high", "critical")
    seq = 0
    while seq < 600:
        batch, times = [], []
        for _ in range(rng.choice((1, 1, 5, 40))):
            seq += 1
            batch.append(anomaly(seq, kind=rng.choice(kinds), severity=rng.choice(severities),
                                 device=rng.choice((DEVICE, "rw-b"))))
            times.append(T0 + rng.uniform(0, 6 * 3600))
        s.add_anomalies(batch + batch[:1], times + times[:1])     # a repeat is not counted
        arrivals.extend(zip(times, batch))
    for _ in range(60):
        since = T0 + rng.uniform(-100, 6 * 3600)
        until = since + rng.choice((rng.uniform(1, 3000), rng.uniform(3000, 5 * 3600)))
        where = AnomalyFilter(since=since, until=until,
                              kind=rng.choice((None, "login.*", "conn.scan")),
                              severities=rng.choice(((), ("high", "critical"))),
                              device=rng.choice((None, None, "rw-b")))
        chosen = [(t, a) for t, a in arrivals if since <= t < until
                  and (where.kind is None or a.kind.startswith(where.kind.rstrip("*")))
                  and (not where.severities or a.severity in where.severities)
                  and (where.device is None or a.device == where.device)]
        size = rng.choice((60, 300, 900, 1800, 3600, 3 * 3600))
        expected = {}
        for t, a in chosen:
            key = (float(int(t // size) * size), a.severity)
            expected[key] = expected.get(key, 0) + 1
        assert s.anomaly_histogram(where, size) == expected
        by_kind = {}
        for _, a in chosen:
            by_kind[a.kind] = by_kind.get(a.kind, 0) + 1
        assert {k: n for k, n, _ in s.top_kinds(where, 10)} == by_kind


def test_a_store_from_before_the_rollup_is_counted_once_on_open(tmp_path):
    from routerwatch_collector.store import AnomalyFilter
    path = tmp_path / "old.sqlite"
    s = SqliteStore(path)
    s.add_anomalies([anomaly(1), anomaly(2), anomaly(3, kind="conn.scan")], T0 + 10)
    s._x("DELETE FROM anomaly_counts")          # as a store made by an older collector
    s.close()
    s = SqliteStore(path)
    where = AnomalyFilter(since=T0 - 600, until=T0 + 600)
    assert s.top_kinds(where) == [("login.bruteforce", 2, "high"), ("conn.scan", 1, "high")]
    s.close()
    s = SqliteStore(path)                       # and not again
    assert s._x("SELECT SUM(n) FROM anomaly_counts").fetchone()[0] == 3
    s.close()


def test_silence_is_judged_up_to_the_slowest_live_collector(store):
    store.report_progress("collector-a", T0 + 100, T0 + 100)
    store.report_progress("collector-b", T0 + 40, T0 + 100)      # 60 s behind its queue
    assert store.heard_until(T0 + 100, stale=30) == T0 + 40
    store.report_progress("collector-a", T0 + 200, T0 + 200)     # b went quiet: it is gone
    assert store.heard_until(T0 + 200, stale=30) == T0 + 200
    assert store.heard_until(T0 + 300, stale=30) == T0 + 300     # nobody reported: now


def test_the_collectors_may_have_missed_messages_until_the_latest_reconnection_or_death(store):
    assert store.deaf_until(T0, stale=30, gone=3600) is None      # nobody reported
    store.report_progress("collector-a", T0 + 100, T0 + 100, deaf_until=T0 - 50)
    store.report_progress("collector-b", T0 + 100, T0 + 100, deaf_until=T0 + 90)  # reconnected
    assert store.deaf_until(T0 + 100, stale=30, gone=3600) == T0 + 90
    store.report_progress("collector-a", T0 + 200, T0 + 200, deaf_until=T0 - 50)
    # b stopped reporting at T0 + 100: it died by T0 + 130, with what it held
    assert store.deaf_until(T0 + 200, stale=30, gone=3600) == T0 + 130
    # long gone: forgotten
    store.report_progress("collector-a", T0 + 4000, T0 + 4000, deaf_until=None)
    assert store.deaf_until(T0 + 4000, stale=30, gone=3600) is None
