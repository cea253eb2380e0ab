"""What the fleet detections' tests share: a store of the backend under test (SQLite, then
PostgreSQL) with an Ingest handed messages as the subscriber hands them over."""
import pytest
from routerwatch_collector.ingest import Ingest

from fleet_messages import T0, feed


class FleetUnderTest:
    def __init__(self, open_test_store):
        self._open = open_test_store
        self.store = open_test_store()
        self.ingest = Ingest(self.store)

    def feed(self, messages, now=T0):
        return feed(self.ingest, messages, now)

    def another_collector(self):
        """An Ingest on its own connection to the same store: a second collector (or this one
        restarted, its memory of replayed messages gone)."""
        return Ingest(self._open())

    def found(self, kind):
        return self.store.query_anomalies(kind=kind, limit=1000)


@pytest.fixture
def fleet(open_test_store):
    return FleetUnderTest(open_test_store)
