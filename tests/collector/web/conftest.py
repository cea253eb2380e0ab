"""A store filled the way the collector fills it (Ingest over wire messages), on SQLite and on
PostgreSQL, and a test client of the dashboard on it, its clock fixed just after the messages
arrived."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))    # collector_messages

from collector_messages import T0, anomaly, heartbeat, inventory, status, wire  # noqa: E402
from routerwatch_collector.ingest import Ingest  # noqa: E402
from routerwatch_collector.store import open_store  # noqa: E402

NOW = T0 + 3600.0


def fill(db, messages, now=T0 + 60):
    store = open_store(db, heartbeat_sample_spacing=1.0)
    ingest = Ingest(store, prefix="routerwatch", missed_heartbeats=3, run_id="c011ec7000000001")
    for i, message in enumerate(messages):
        ingest.handle(*wire(message), now=now + i)
        ingest.flush(now + i)
    store.close()


@pytest.fixture
def db(store_url):
    """The filled store, on each backend (store_url: tests/collector/conftest.py)."""
    path = store_url
    messages = [status("online", 1), inventory()]
    messages += [heartbeat(i) for i in range(1, 6)]
    messages += [anomaly(1, severity="medium"), anomaly(2, kind="conn.new_listener",
                                                         severity="critical", port=7777)]
    messages += [anomaly(4, kind="login.spray")]       # seq 3 never arrives: a gap
    messages += [status("online", 1, device="rw-other"),
                 anomaly(1, device="rw-other", kind="integrity.exec_from_tmp")]
    fill(path, messages)
    return path


@pytest.fixture
def client_for():
    from starlette.testclient import TestClient
    from routerwatch_collector.web.app import create_app
    made = []

    def make(db, credentials=None, now=NOW):
        app = create_app(lambda: open_store(db, create=False, read_only=True),
                         credentials=credentials, clock=lambda: now)
        client = TestClient(app)
        client.__enter__()
        made.append(client)
        return client

    yield make
    for client in made:
        client.__exit__(None, None, None)


@pytest.fixture
def client(db, client_for):
    return client_for(db)
