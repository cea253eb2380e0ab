"""The collector's MQTT side against a real mosquitto: shared subscriptions split the load without
storing anything twice, a stop writes the batch it holds, the session keeps what arrives while
the collector is away, mutual TLS works, an oversized message is refused without holding up the
rest; and against a broker that breaks the protocol, the collector drops the connection and
comes back, and a quiet connection is kept alive with pings."""
import shutil
import socket
import threading
import time

import pytest

from broker import MosquittoBroker, find_mosquitto, make_certificates, missing_tool
from collector_messages import anomaly, heartbeat, wire
from routerwatch.contract import MAX_PAYLOAD_BYTES
from routerwatch.sinks.mqtt import new_client
from routerwatch_collector.ingest import Ingest
from routerwatch_collector.stores import open_store
from routerwatch_collector.subscriber import Subscriber


class Running:
    """A Subscriber in a thread of its own, with its own store connection, like a process."""

    def __init__(self, broker, db, client_id, share_group=None, flush_interval=0.25):
        self.store = open_store(db)
        self.ingest = Ingest(self.store)
        self.stored = []
        self.subscriber = Subscriber(self.ingest, broker.host, broker.port,
                                     share_group=share_group, client_id=client_id,
                                     flush_interval=flush_interval, on_stored=self.stored.append)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.subscriber.run, args=(self.stop,), daemon=True)

    def start(self):
        self.thread.start()
        wait_until(lambda: self.subscriber.connected)
        time.sleep(0.3)    # SUBACK
        return self

    def close(self):
        self.stop.set()
        self.thread.join(10)
        self.store.close()


def wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out")


def publish(broker, messages):
    client = new_client("test-publisher")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for message in messages:
            client.publish(*wire(message), qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_two_collectors_in_one_share_group_split_the_messages_and_store_each_once(
        mosquitto_broker, store_url):
    db = store_url
    first = Running(mosquitto_broker, db, "collector-a", share_group="collectors").start()
    second = Running(mosquitto_broker, db, "collector-b", share_group="collectors").start()
    try:
        publish(mosquitto_broker, [anomaly(seq) for seq in range(1, 201)])
        wait_until(lambda: len(first.stored) + len(second.stored) >= 200)
    finally:
        first.close()
        second.close()
    assert first.subscriber.topics()[0] == "$share/collectors/routerwatch/+/anomaly"
    assert first.stored and second.stored                      # both did part of the work
    seqs = sorted(a.seq for a in first.stored + second.stored)
    assert seqs == list(range(1, 201))                         # each exactly once
    store = open_store(db)
    try:
        assert store.anomaly_count() == 200
        assert [g for g in store.gaps() if g["missing"]] == []  # split delivery is no loss
    finally:
        store.close()


def test_a_stop_writes_the_batch_it_holds(mosquitto_broker, store_url):
    db = store_url
    running = Running(mosquitto_broker, db, "collector", flush_interval=60.0).start()
    publish(mosquitto_broker, [anomaly(1), heartbeat(1)])
    wait_until(lambda: running.ingest.counters["accepted"] == 2)
    running.close()
    store = open_store(db)
    try:
        assert store.anomaly_count() == 1 and store.devices()[0].heartbeats == 1
    finally:
        store.close()


def test_messages_sent_while_the_collector_is_away_wait_in_its_session(mosquitto_broker,
                                                                        store_url):
    db = store_url
    Running(mosquitto_broker, db, "collector").start().close()   # the session exists
    publish(mosquitto_broker, [anomaly(seq) for seq in range(1, 21)])
    running = Running(mosquitto_broker, db, "collector").start()
    try:
        wait_until(lambda: len(running.stored) == 20)
    finally:
        running.close()
    assert sorted(a.seq for a in running.stored) == list(range(1, 21))


def test_the_collector_receives_over_mutual_tls(tmp_path):
    if not (find_mosquitto() and shutil.which("openssl")):
        missing_tool("needs mosquitto and openssl (ci/install-system-packages.sh installs them)")
    pki = make_certificates(tmp_path / "pki", clients=("collector", "rw-0a1b2c3d4e5f"))
    extra = "certfile %s\nkeyfile %s\ncafile %s\nrequire_certificate true\n" % (
        pki["server"] + (pki["ca"],))
    with MosquittoBroker(tmp_path / "broker", extra=extra) as broker:
        store = open_store(tmp_path / "collector.sqlite")
        stored = []
        subscriber = Subscriber(Ingest(store), broker.host, broker.port, tls=True,
                                ca_file=pki["ca"], cert_file=pki["collector"][0],
                                key_file=pki["collector"][1], on_stored=stored.append)
        stop = threading.Event()
        thread = threading.Thread(target=subscriber.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_until(lambda: subscriber.connected)
            time.sleep(0.3)
            client = new_client("rw-0a1b2c3d4e5f")
            client.tls_set(ca_certs=pki["ca"], certfile=pki["rw-0a1b2c3d4e5f"][0],
                           keyfile=pki["rw-0a1b2c3d4e5f"][1])
            client.connect(broker.host, broker.port)
            client.loop_start()
            client.publish(*wire(anomaly(1)), qos=1).wait_for_publish(10)
            wait_until(lambda: len(stored) == 1)
            client.disconnect()
            client.loop_stop()
        finally:
            stop.set()
            thread.join(10)
            store.close()
    assert stored[0].seq == 1 and stored[0].evidence["source_ip"] == "203.0.113.7"


def test_a_failing_stored_hook_ends_the_run_with_its_error(mosquitto_broker, store_url):
    store = open_store(store_url)

    def hook(row):
        raise RuntimeError("the hook failed")
    subscriber = Subscriber(Ingest(store), mosquitto_broker.host, mosquitto_broker.port,
                            client_id="hook-fails", on_stored=hook)
    stop = threading.Event()
    errors = []

    def run():
        try:
            subscriber.run(stop)
        except RuntimeError as exc:
            errors.append(str(exc))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: subscriber.connected)
        time.sleep(0.3)    # SUBACK
        publish(mosquitto_broker, [anomaly(1)])
        thread.join(20)
    finally:
        stop.set()
        thread.join(10)
        store.close()
    assert errors == ["the hook failed"]


def test_an_oversized_message_is_rejected_and_the_ones_after_it_are_stored(mosquitto_broker,
                                                                           store_url):
    running = Running(mosquitto_broker, store_url, "collector-oversized").start()
    try:
        client = new_client("oversized-publisher")
        client.connect(mosquitto_broker.host, mosquitto_broker.port)
        client.loop_start()
        topic, payload = wire(anomaly(1))
        client.publish(topic, payload + b" " * (MAX_PAYLOAD_BYTES * 3), qos=1).wait_for_publish(10)
        client.publish(*wire(anomaly(2)), qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        wait_until(lambda: len(running.stored) == 1)
        assert running.ingest.rejects == {"oversized": 1}
        assert running.stored[0].seq == 2
    finally:
        running.close()


class HostileBroker:
    """A TCP server on loopback that answers CONNECT with a CONNACK, then sends `attack`:
    counts the connections it was given."""

    def __init__(self, attack):
        self.attack = attack
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.pings = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(1024)                       # CONNECT
                    conn.sendall(b"\x20\x02\x00\x00")     # accepted
                    conn.recv(1024)                       # SUBSCRIBE, packet id 1
                    conn.sendall(b"\x90\x07\x00\x01\x01\x01\x01\x01\x00")
                    conn.sendall(self.attack)
                    while True:
                        data = conn.recv(1024)
                        if not data:
                            break
                        if data.startswith(b"\xc0\x00"):
                            self.pings += 1
                            conn.sendall(b"\xd0\x00")
                except OSError:
                    pass

    def close(self):
        self.server.close()


@pytest.mark.parametrize("attack", [
    b"\x90\xff\xff\xff\x7f",                 # a SUBACK claiming 256 MiB
    b"\x30\xff\xff\xff\xff\xff",             # a remaining length of five bytes
    b"\x32\x10\x00\x40" + b"x" * 14,         # a topic longer than its packet
    b"\x20\x02\x00\x00",                     # a second CONNACK
])
def test_a_broker_speaking_broken_mqtt_is_dropped_and_reconnected(tmp_path, attack):
    broker = HostileBroker(attack)
    store = open_store(tmp_path / "collector.sqlite")
    subscriber = Subscriber(Ingest(store), "127.0.0.1", broker.port, client_id="hostile",
                            reconnect_min=0.05, reconnect_max=0.1)
    stop = threading.Event()
    thread = threading.Thread(target=subscriber.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: broker.connections >= 3)     # dropped, and back, again and again
        assert thread.is_alive() and subscriber.connections >= 2
        assert subscriber.ingest.counters["received"] == 0
        assert len(subscriber._reader._buffer) < 1024 if subscriber._reader else True
    finally:
        stop.set()
        thread.join(10)
        broker.close()
        store.close()
    assert not thread.is_alive()


def test_a_quiet_connection_is_kept_alive_with_pings(tmp_path):
    broker = HostileBroker(b"")
    store = open_store(tmp_path / "collector.sqlite")
    subscriber = Subscriber(Ingest(store), "127.0.0.1", broker.port, client_id="quiet",
                            keepalive=1)
    subscriber.tick_interval = 3600.0     # no probe: only pings keep the connection busy
    stop = threading.Event()
    thread = threading.Thread(target=subscriber.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: broker.pings >= 2, timeout=10)
        assert broker.connections == 1 and subscriber.connected
    finally:
        stop.set()
        thread.join(10)
        broker.close()
        store.close()


def test_a_backlog_far_larger_than_a_batch_is_stored_whole_while_silence_is_judged(tmp_path):
    if not find_mosquitto():
        missing_tool("needs mosquitto (ci/install-system-packages.sh installs it)")
    with MosquittoBroker(tmp_path / "broker", extra="max_queued_messages 100000\n") as broker:
        backlog_is_stored_whole(broker, tmp_path)


def backlog_is_stored_whole(mosquitto_broker, tmp_path):
    # the broker hands a resumed session its whole queue at once: reading stays ahead of
    # writing, and the silence check (every tick) must not pull the inbox into one endless
    # batch, which Ingest would have to cut (and whose cut messages would be acknowledged)
    db = tmp_path / "collector.sqlite"
    Running(mosquitto_broker, db, "collector-backlog").start().close()
    devices = ["rw-backlog%03d" % n for n in range(20)]
    messages = [anomaly(seq, device=device) for seq in range(1, 301) for device in devices]
    publish(mosquitto_broker, messages)
    store = open_store(db)
    ingest = Ingest(store, max_pending=2000)
    subscriber = Subscriber(ingest, mosquitto_broker.host, mosquitto_broker.port,
                            client_id="collector-backlog", tick_interval=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=subscriber.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: ingest.counters["stored"] >= len(messages), timeout=120)
    finally:
        stop.set()
        thread.join(10)
    try:
        assert ingest.counters["dropped"] == 0
        assert store.anomaly_count() == len(messages)
    finally:
        store.close()
