"""Failover between brokers (mqtt.host "a:port,b:port,..."), against real mosquitto brokers on
loopback: the agent is on broker A, A dies, the agent moves on (past a node that is down) to
B; every anomaly the spool held arrives at B, and B holds the inventory and the retained
"online" status afterwards."""
import pytest

from broker import MosquittoBroker, find_mosquitto, missing_tool
from routerwatch.config import load
from routerwatch.contract import Inventory, decode
from routerwatch.sinks.mqtt import MqttSink

from test_mqtt import DEVICE, RUN, anomaly, anomaly_seqs, wait_until

ANOMALY_TOPIC = "routerwatch/+/anomaly"


@pytest.fixture
def brokers(tmp_path):
    """Three mosquitto brokers on free loopback ports: A and B started, C stopped."""
    if not find_mosquitto():
        missing_tool("mosquitto is not installed (ci/install-system-packages.sh installs it)")
    made = [MosquittoBroker(tmp_path / name) for name in ("a", "b", "c")]
    try:
        made[0].start()
        made[1].start()
        yield made
    finally:
        for broker in made:
            broker.close()


def make_sink(tmp_path, host_list):
    config = load(defaults={"device_id": DEVICE, "run_dir": str(tmp_path / "run"),
                            "state_dir": str(tmp_path / "state"),
                            "mqtt": {"host": host_list, "keepalive": 5}})
    sink = MqttSink(config, DEVICE, RUN)
    sink.reconnect_min, sink.reconnect_max = 0.1, 0.5
    sink.start()
    return sink


def address(broker):
    return "%s:%d" % (broker.host, broker.port)


def test_the_agent_moves_to_the_next_broker_with_its_spool_inventory_and_status(
        tmp_path, brokers, mqtt_recorder):
    a, b, c = brokers
    on_a = mqtt_recorder(a, [ANOMALY_TOPIC])
    on_b = mqtt_recorder(b, [ANOMALY_TOPIC])
    # A first, then C (down: skipped), then B
    sink = make_sink(tmp_path, ",".join(address(x) for x in (a, c, b)))
    assert wait_until(sink.connected) and sink.broker() == (a.host, a.port)
    inventory = Inventory(device=DEVICE, run=RUN, seq=1, time=1700000000.0,
                          agent_version="0.1.0", firmware={"DISTRIB_RELEASE": "24.10.0"},
                          firmware_hash="b" * 64, baseline_hash="", package_manager="opkg")
    sink.send_inventory(inventory)
    for seq in range(1, 51):
        sink.send_anomaly(anomaly(seq))
    assert wait_until(lambda: len(set(anomaly_seqs(on_a.snapshot()))) == 50)
    assert wait_until(lambda: sink.spool_depth() == 0 and sink._inventory is None)

    a.stop()                                   # a crash: no goodbye to the agent
    for seq in range(51, 101):                 # while the agent has no broker
        sink.send_anomaly(anomaly(seq))
    assert wait_until(lambda: sink.connected() and sink.broker() == (b.host, b.port))
    for seq in range(101, 151):                # after it landed on B
        sink.send_anomaly(anomaly(seq))

    messages = on_b.wait_for(lambda m: len(set(anomaly_seqs(m))) >= 100)
    assert set(anomaly_seqs(messages)) == {(RUN, s) for s in range(51, 151)}
    assert set(anomaly_seqs(on_a.snapshot())) == {(RUN, s) for s in range(1, 51)}
    assert wait_until(lambda: sink.spool_depth() == 0)
    assert sink.drops()["spool"] == 0
    counters = sink.counters()
    assert counters["sent"] >= 150
    assert counters["mqtt.failovers"] >= 2, "A -> C (down) -> B"
    assert counters["mqtt.connects"] == 2

    # what B keeps for a later subscriber: the inventory and the agent "online"
    assert wait_until(lambda: sink._inventory is None)
    late = mqtt_recorder(b, ["routerwatch/+/status", "routerwatch/+/inventory"])
    retained = {m.topic: m for m in late.wait_for(lambda m: len(m) >= 2)}
    status = retained["routerwatch/%s/status" % DEVICE]
    assert status.retain
    online = decode(status.payload, "status")
    assert (online.state, online.run) == ("online", RUN)
    stored = retained["routerwatch/%s/inventory" % DEVICE]
    assert stored.retain and decode(stored.payload, "inventory") == inventory
    sink.close()


def test_after_the_last_broker_the_agent_goes_back_to_the_first(tmp_path, brokers, mqtt_recorder):
    a, b, _ = brokers
    sink = make_sink(tmp_path, "%s,%s" % (address(a), address(b)))
    assert wait_until(lambda: sink.connected() and sink.broker() == (a.host, a.port))
    a.stop()
    assert wait_until(lambda: sink.connected() and sink.broker() == (b.host, b.port))
    a.start()
    b.stop()
    assert wait_until(lambda: sink.connected() and sink.broker() == (a.host, a.port))
    on_a = mqtt_recorder(a, [ANOMALY_TOPIC])
    sink.send_anomaly(anomaly(1))
    assert anomaly_seqs(on_a.wait_for(lambda m: m)) == [(RUN, 1)]
    sink.close()


def test_one_broker_keeps_trying_the_same_one(tmp_path, mosquitto_broker):
    sink = make_sink(tmp_path, address(mosquitto_broker))
    assert wait_until(sink.connected)
    mosquitto_broker.stop()
    assert wait_until(lambda: sink.counters()["mqtt.connect_failures"] >= 2)
    assert sink.counters()["mqtt.failovers"] == 0
    mosquitto_broker.start()
    assert wait_until(sink.connected)
    sink.close()
