"""What only the PostgreSQL store has: versioned migrations, day partitions made ahead and dropped
past the retention (heartbeat samples past the dashboard's day), indexes the silence sweep can
use, and several writers at once. Against a real server (the session's `postgres_server`)."""
import threading

import psycopg
import pytest

from collector_messages import DEVICE, RUN, T0, anomaly, heartbeat
from routerwatch_collector.cli import main
from routerwatch_collector.stores import StoreError, StoreMissing, open_store
from routerwatch_collector.stores.postgres import SCHEMA_VERSION

DAY = 86400.0
NOW = 1795000000.0      # 2026-11-18, a fixed clock


@pytest.fixture
def url(postgres_server):
    return postgres_server.new_database()


def sql(url, statement, args=()):
    with psycopg.connect(url, autocommit=True) as con:
        cursor = con.execute(statement, args)
        return cursor.fetchall() if cursor.description else None


def test_migrations_are_applied_once_and_recorded_with_their_version(url):
    open_store(url).close()
    open_store(url).close()
    assert sql(url, "SELECT version FROM schema_migrations ORDER BY version") == [
        (version,) for version in range(1, SCHEMA_VERSION + 1)]


def test_a_database_of_an_older_schema_is_migrated_forward_keeping_its_rows(url):
    store = open_store(url)
    store.upsert_device(DEVICE, RUN, T0)
    store.add_anomalies([anomaly(1)], T0)
    store.close()
    _as_version(url, 1)
    store = open_store(url)
    try:
        assert store.anomaly_count() == 1 and store.heard_until(T0, 30) == T0
    finally:
        store.close()
    assert sql(url, "SELECT max(version) FROM schema_migrations") == [(SCHEMA_VERSION,)]


# what each migration added, undone: a database as a collector of an older version left it
_UNDO = {2: "DROP TABLE collector_progress",
         4: "ALTER TABLE devices DROP COLUMN firmware_release, DROP COLUMN firmware_model",
         5: "DROP TABLE anomaly_counts_hourly"}


def _as_version(url, version):
    for undone in range(SCHEMA_VERSION, version, -1):
        if undone in _UNDO:
            sql(url, _UNDO[undone])
    sql(url, "DELETE FROM schema_migrations WHERE version > %s", (version,))


def test_a_database_of_a_newer_schema_is_refused_and_left_untouched(url):
    open_store(url).close()
    sql(url, "INSERT INTO schema_migrations (version, description) VALUES (%s, 'future')",
        (SCHEMA_VERSION + 1,))
    sql(url, "CREATE TABLE future_table (x int)")
    with pytest.raises(StoreError, match="newer than this collector"):
        open_store(url)
    assert sql(url, "SELECT count(*) FROM future_table") == [(0,)]
    assert sql(url, "SELECT to_regclass('anomalies') IS NOT NULL") == [(True,)]


def test_queries_on_a_database_without_the_schema_do_not_create_it(url, capsys):
    with pytest.raises(StoreMissing):
        open_store(url, create=False)
    assert sql(url, "SELECT to_regclass('schema_migrations')") == [(None,)]
    assert main(["devices", "--db", url]) == 3
    assert "no database at" in capsys.readouterr().err


def test_an_unreachable_server_is_exit_3_with_the_password_hidden(capsys, postgres_server):
    bad = "postgresql://someone:s3cret@127.0.0.1:1/nothing"
    assert main(["anomalies", "--db", bad]) == 3
    err = capsys.readouterr().err
    assert "cannot connect to the database" in err and "s3cret" not in err
    assert "Traceback" not in err


def test_partitions_are_made_ahead_and_rows_land_in_the_day_they_were_received(url):
    store = open_store(url)
    try:
        store.maintain(NOW)
        days = store.partitions("anomalies")
        assert days == ["anomalies_p20261117", "anomalies_p20261118", "anomalies_p20261119",
                        "anomalies_p20261120", "anomalies_p20261121"]
        assert len(store.partitions("heartbeat_samples")) == 5
        store.upsert_device(DEVICE, RUN, NOW)
        store.add_anomalies([anomaly(1)], NOW)
        store.add_anomalies([anomaly(2)], 1.0e9)         # a clock far off: kept, not refused
        store.record_heartbeat(heartbeat(1), NOW + DAY)
    finally:
        store.close()
    assert sql(url, "SELECT seq, tableoid::regclass::text FROM anomalies ORDER BY seq") == [
        (1, "anomalies_p20261118"), (2, "anomalies_default")]
    assert sql(url, "SELECT rss_kb, tableoid::regclass::text FROM heartbeat_samples") == [
        (9000, "heartbeat_samples_p20261119")]


def test_the_retention_drops_whole_days_and_keeps_the_rest(url):
    store = open_store(url, retention_days=2)
    try:
        store.maintain(NOW)
        store.upsert_device(DEVICE, RUN, NOW)
        store.add_anomalies([anomaly(1)], NOW - 0.5 * DAY)     # yesterday
        store.add_anomalies([anomaly(2)], NOW + 2 * DAY)       # two days ahead
        store.maintain(NOW + 4 * DAY)
        assert "anomalies_p20261117" not in store.partitions("anomalies")
        assert "anomalies_p20261120" in store.partitions("anomalies")
        assert [a.seq for a in store.query_anomalies()] == [2]
        # the identity of a dropped anomaly went with it; a kept one still dedupes
        assert store.add_anomalies([anomaly(2)], NOW + 4 * DAY) == []
    finally:
        store.close()


def test_heartbeat_samples_are_dropped_by_the_day_once_past_the_dashboards_history(url):
    store = open_store(url)      # no --retention-days: anomalies are kept, samples are not
    try:
        store.maintain(NOW)
        store.upsert_device(DEVICE, RUN, NOW)
        store.record_heartbeat(heartbeat(1), NOW)
        store.add_anomalies([anomaly(1)], NOW)
        store.record_heartbeat(heartbeat(2), NOW + 3 * DAY)
        assert len(store.heartbeat_history(DEVICE, 0)) == 2
        store.maintain(NOW + 3 * DAY)
        assert [h["at"] for h in store.heartbeat_history(DEVICE, 0)] == [NOW + 3 * DAY]
        assert [a.seq for a in store.query_anomalies()] == [1]
    finally:
        store.close()


def test_the_silence_sweep_can_be_answered_from_the_partial_indexes(url):
    store = open_store(url)
    try:
        store.upsert_device(DEVICE, RUN, T0)
        store.record_heartbeat(heartbeat(1), T0)
        store._x("SET enable_seqscan = off")    # a tiny table: show that the indexes fit
        plan = " ".join(r["QUERY PLAN"] for r in store._x(
            "EXPLAIN SELECT device FROM devices WHERE silent_since IS NULL AND "
            "status = 'offline' UNION ALL SELECT device FROM devices WHERE silent_since IS NULL "
            "AND status = 'online' AND alive_at + heartbeat_interval < ?", (T0,)))
        assert "devices_last_will" in plan and "devices_heartbeat_due" in plan
        assert [c[0] for c in store.silence_candidates(T0 + 3600, 3)] == [DEVICE]
    finally:
        store.close()


def test_writers_on_several_connections_store_each_anomaly_once_and_claim_a_silence_once(url):
    stores = [open_store(url) for _ in range(4)]
    try:
        stores[0].upsert_device(DEVICE, RUN, T0)
        claims, errors = [], []

        def write(store, offset):
            try:
                for start in range(0, 200, 20):
                    seqs = [1 + (start + offset + i) % 200 for i in range(20)]
                    with store.transaction():
                        store.add_anomalies([anomaly(s) for s in seqs], T0 + start)
                claims.append(store.claim_silence(DEVICE, T0 + 999))
            except Exception as exc:      # reported below, with the thread's store
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(s, 50 * i))
                   for i, s in enumerate(stores)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert stores[0].anomaly_count() == 200
        assert stores[0].devices()[0].anomalies == 200
        assert sorted(claims) == [False, False, False, True]
    finally:
        for store in stores:
            store.close()


def test_a_database_from_before_the_firmware_columns_gets_them_filled_from_its_rows(url):
    store = open_store(url)
    store.upsert_device(DEVICE, RUN, T0)
    store.close()
    # as a collector of the version before the firmware columns left it, an inventory stored
    _as_version(url, 3)
    sql(url, "UPDATE devices SET firmware = %s::jsonb",
        ('{"DISTRIB_RELEASE": "23.05.3", "model": "Old box"}',))
    with pytest.raises(StoreError, match="schema version 3"):
        open_store(url, create=False)           # the query commands do not migrate
    store = open_store(url)
    try:
        (listing,) = store.iter_devices()
        assert (listing.firmware_release, listing.firmware_model) == ("23.05.3", "Old box")
    finally:
        store.close()
    assert sql(url, "SELECT max(version) FROM schema_migrations") == [(SCHEMA_VERSION,)]


def test_the_hourly_counts_of_a_database_of_the_previous_version_are_filled_from_its_counts(
        url):
    from routerwatch_collector.stores.base import AnomalyFilter
    store = open_store(url)
    store.add_anomalies([anomaly(n) for n in range(1, 31)], [T0 + 200 * n for n in range(1, 31)])
    store.close()
    _as_version(url, 4)
    store = open_store(url)
    try:
        assert store._x("SELECT SUM(n)::int AS n FROM anomaly_counts_hourly").fetchone()["n"] == 30
        where = AnomalyFilter(since=T0 - 7200, until=T0 + 14400)
        assert sum(store.anomaly_histogram(where, 3600).values()) == 30
    finally:
        store.close()
