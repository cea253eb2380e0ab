"""Shared fixtures. tests/ is on sys.path, so tests import helpers as `from broker import ...`."""
import pytest

try:  # some CI lines run a few suites in a venv without hypothesis
    from hypothesis import settings
except ImportError:
    pass
else:
    # Tests assert behaviour, never timing: on a loaded machine one slow example must not fail a run.
    settings.register_profile("routerwatch", deadline=None)
    settings.load_profile("routerwatch")

from broker import MosquittoBroker, find_mosquitto, missing_tool


@pytest.fixture
def mosquitto_broker(tmp_path):
    """A started mosquitto on a free loopback port; stop()/start() keep the port; always killed."""
    if not find_mosquitto():
        missing_tool("mosquitto is not installed (ci/install-system-packages.sh installs it)")
    broker = MosquittoBroker(tmp_path / "mosquitto")
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.fixture
def mqtt_recorder():
    """Factory: mqtt_recorder(broker, topics, **kw) -> a subscribed Recorder, stopped at teardown."""
    from broker import Recorder

    made = []

    def make(broker, topics=("#",), **kwargs):
        recorder = Recorder(broker, topics, **kwargs).start()
        made.append(recorder)
        return recorder

    yield make
    for recorder in made:
        recorder.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL for the whole run (initdb in a temp dir, stopped at the end). Skips
    when PostgreSQL is not installed, except under CI=true, where that is a failure."""
    import os

    from pgserver import PostgresServer, find_postgres_bin
    if not find_postgres_bin():
        message = "PostgreSQL is not installed (ci/install-system-packages.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with PostgresServer() as server:
        yield server


@pytest.fixture
def nats_cluster(tmp_path):
    """Three started nats-server nodes routed to each other, MQTT over JetStream (natscluster.py);
    all killed at teardown."""
    from natscluster import NatsCluster, find_nats_server
    if not find_nats_server():
        missing_tool("nats-server is not installed (ci/install-system-packages.sh installs it)")
    made = NatsCluster(tmp_path / "nats", nodes=3)
    try:
        yield made.start()
    finally:
        made.close()
