"""Every collector test that touches a store runs once per backend: `store_url` is a SQLite file
or a PostgreSQL database (on the session's real server), emptied for each test."""
import pytest

BACKENDS = ("sqlite", "postgresql")
_TABLES = ("anomalies, anomaly_keys, anomaly_counts, anomaly_counts_hourly, heartbeat_samples, devices, gaps, "
           "collector_progress, "
           "fleet_sightings, fleet_incidents, fleet_firmware, fleet_firmware_counts, "
           "rejected")


@pytest.fixture(scope="session")
def _shared_postgres_database(postgres_server):
    """One database migrated once; each test empties it instead of creating one (0.5 s each)."""
    from routerwatch_collector.stores import open_store
    url = postgres_server.new_database("collector_tests")
    open_store(url).close()
    return url


def empty_postgres(url):
    import psycopg
    with psycopg.connect(url, autocommit=True) as con:
        # triggers a test made to play a refusing store go too, even if the test failed
        con.execute("DO $$ DECLARE r record; BEGIN FOR r IN SELECT tgname, tgrelid::regclass AS t "
                    "FROM pg_trigger WHERE NOT tgisinternal AND tgparentid = 0 LOOP "
                    "EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.t); END LOOP; END $$")
        con.execute("TRUNCATE %s RESTART IDENTITY" % _TABLES)
        con.execute("ALTER SEQUENCE anomalies_id_seq RESTART")


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """--db for the backend under test."""
    if request.param == "sqlite":
        return str(tmp_path / "collector.sqlite")
    url = request.getfixturevalue("_shared_postgres_database")
    empty_postgres(url)
    return url


@pytest.fixture
def open_test_store(store_url):
    """Factory: open_test_store() -> a new connection to the test's store, closed at teardown
    (several may be open at once, like several collector processes)."""
    from routerwatch_collector.stores import open_store
    opened = []

    def make(**kwargs):
        store = open_store(store_url, **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
