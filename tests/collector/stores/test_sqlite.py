"""What only the SQLite store has: its schema version in PRAGMA user_version, migrations applied
on open (a store made before the schema was versioned, or of the previous version, is upgraded
keeping its rows), and a store of a newer version refused untouched."""
import sqlite3

import pytest

from collector_messages import DEVICE, RUN, T0, anomaly, inventory
from routerwatch_collector.stores import StoreError, open_store
from routerwatch_collector.stores.sqlite import MIGRATIONS, SCHEMA_VERSION, migrate


def _user_version(path):
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


def _old_store(path, version):
    """A store as a collector of schema `version` leaves it (0: before versions), holding one
    device with its inventory and one anomaly, written with that version's columns."""
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, str(path), MIGRATIONS[:max(version, 1)])
    db.execute("PRAGMA user_version = %d" % version)
    db.execute("INSERT INTO devices (device, first_seen, last_seen, run, firmware) "
               "VALUES (?, ?, ?, ?, ?)", (DEVICE, T0, T0, RUN,
                                          '{"DISTRIB_RELEASE":"23.05.3","model":"Old box"}'))
    db.close()


@pytest.mark.parametrize("version", [0, SCHEMA_VERSION - 1])
def test_an_older_store_is_upgraded_on_open_keeping_its_rows(tmp_path, version):
    path = tmp_path / "old.sqlite"
    _old_store(path, version)
    store = open_store(path)
    try:
        (listing,) = store.iter_devices()
        assert (listing.device, listing.firmware_release, listing.firmware_model) == (
            DEVICE, "23.05.3", "Old box")
        store.add_anomalies([anomaly(1)], T0)           # and it takes new rows as before
        store.record_inventory(inventory(), T0 + 1)
        assert store.anomaly_count() == 1
        assert next(store.iter_devices()).firmware_model == "TP-Link Archer C7 v5"
    finally:
        store.close()
    assert _user_version(path) == SCHEMA_VERSION
    open_store(path).close()                            # applied once: opening again is a no-op
    assert _user_version(path) == SCHEMA_VERSION


def test_a_new_store_has_every_version_applied(tmp_path):
    path = tmp_path / "new.sqlite"
    open_store(path).close()
    assert _user_version(path) == SCHEMA_VERSION == MIGRATIONS[-1][0]
    assert [v for v, _, _ in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


def test_a_store_of_a_newer_schema_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "future.sqlite"
    open_store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = %d" % (SCHEMA_VERSION + 1))
        db.execute("CREATE TABLE future_table (x)")
    with pytest.raises(StoreError, match="newer than this collector"):
        open_store(path)
    assert _user_version(path) == SCHEMA_VERSION + 1


def test_a_migration_that_fails_leaves_the_store_as_it_was(tmp_path):
    path = tmp_path / "half.sqlite"
    _old_store(path, SCHEMA_VERSION - 1)
    # the version after this one fails halfway: neither it nor the one before stays applied
    broken = MIGRATIONS + ((SCHEMA_VERSION + 1, "broken", "ALTER TABLE devices ADD COLUMN x "
                            "INTEGER;\nALTER TABLE no_such_table ADD COLUMN y INTEGER;\n"),)
    db = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, str(path), broken)
    db.close()
    assert _user_version(path) == SCHEMA_VERSION - 1
    with sqlite3.connect(path) as db:
        columns = [r[1] for r in db.execute("PRAGMA table_xinfo(devices)")]
        progress = [r[1] for r in db.execute("PRAGMA table_xinfo(collector_progress)")]
    assert "x" not in columns and "deaf_until" not in progress


def test_the_hourly_counts_of_a_store_of_the_previous_version_are_filled_from_its_counts(
        tmp_path):
    from routerwatch_collector.stores.base import AnomalyFilter
    path = tmp_path / "counted.sqlite"
    store = open_store(path)
    store.add_anomalies([anomaly(n, kind="conn.scan" if n % 3 else "login.spray")
                         for n in range(1, 31)], [T0 + 200 * n for n in range(1, 31)])
    store.close()
    with sqlite3.connect(path) as db:                 # as version 2 left it
        db.execute("DROP TABLE anomaly_counts_hourly")
        db.execute("ALTER TABLE collector_progress DROP COLUMN deaf_until")   # version 4's
        db.execute("PRAGMA user_version = 2")
    store = open_store(path)
    try:
        assert store._x("SELECT SUM(n) FROM anomaly_counts_hourly").fetchone()[0] == 30
        where = AnomalyFilter(since=T0 - 7200, until=T0 + 14400)
        assert dict((k, n) for k, n, _ in store.top_kinds(where)) == {"conn.scan": 20,
                                                                      "login.spray": 10}
        assert sum(store.anomaly_histogram(where, 3600).values()) == 30
    finally:
        store.close()
