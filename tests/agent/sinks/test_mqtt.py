"""The MQTT sink against a real mosquitto: topics, QoS, retained status and inventory, the Last
Will, heartbeats, a loop that never waits for the broker, and delivery through broker outages
and agent crashes (every anomaly arrives; duplicates are possible with QoS 1 and are counted)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker import MosquittoBroker, find_mosquitto, missing_tool
from routerwatch.config import load
from routerwatch.contract import Anomaly, Inventory, decode
from routerwatch.detectors.base import Detector, DetectorConfig, Finding
from routerwatch.runtime import Agent
from routerwatch.sinks.mqtt import MqttSink

HERE = Path(__file__).resolve().parent
RUN = "0123456789abcdef"
DEVICE = "rw-test01"


def make_config(tmp_path, broker, protocol="3.1.1", **sections):
    raw = {"device_id": DEVICE, "run_dir": str(tmp_path / "run"),
           "state_dir": str(tmp_path / "state"), "intervals": {"heartbeat": 5},
           "mqtt": {"host": broker.host, "port": broker.port, "protocol": protocol,
                    "keepalive": 5}}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return load(defaults=raw), raw


def make_sink(config, run=RUN, start=True):
    sink = MqttSink(config, config.device_id, run)
    sink.reconnect_min, sink.reconnect_max = 0.1, 0.5   # quick returns keep the tests short
    if start:
        sink.start()
    return sink


def anomaly(seq, severity="high", run=RUN):
    return Anomaly(device=DEVICE, run=run, seq=seq, time=1700000000.0 + seq,
                   kind="login.bruteforce", severity=severity,
                   summary="5 failed logins for \"root\" from 192.0.2.7",
                   evidence={"source_ip": "192.0.2.7", "users": ["root", "a b\"c"], "n": seq})


def decoded(messages, kind):
    return [decode(m.payload, kind) for m in messages if m.topic.endswith("/" + kind)]


def anomaly_seqs(messages):
    return [(a.run, a.seq) for a in decoded(messages, "anomaly")]


def wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


@pytest.fixture
def persistent_broker(tmp_path):
    """A broker that keeps sessions and queued messages over a graceful restart."""
    if not find_mosquitto():
        missing_tool("mosquitto is not installed (ci/install-system-packages.sh installs it)")
    broker = MosquittoBroker(tmp_path / "mosquitto", persistent=True)
    try:
        yield broker.start()
    finally:
        broker.close()


# ---------------------------------------------------------------- topics, QoS, payloads

@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_anomalies_arrive_on_the_anomaly_topic_at_qos1_exactly_as_sent(
        tmp_path, mosquitto_broker, mqtt_recorder, protocol):
    recorder = mqtt_recorder(mosquitto_broker, ["routerwatch/#"])
    config, _ = make_config(tmp_path, mosquitto_broker, protocol)
    sink = make_sink(config)
    sent = [anomaly(1, "critical"), anomaly(2, "info"), anomaly(3, "medium")]
    for item in sent:
        sink.send_anomaly(item)
    messages = recorder.wait_for(lambda m: len(anomaly_seqs(m)) >= 3)
    got = [m for m in messages if m.topic == "routerwatch/%s/anomaly" % DEVICE]
    assert [decode(m.payload, "anomaly") for m in got] == sent
    assert {m.qos for m in got} == {1}
    assert wait_until(lambda: sink.counters()["sent"] == 3), "every PUBACK came back"
    assert sink.spool_depth() == 0
    sink.close()


def test_status_online_and_inventory_are_retained_for_a_later_subscriber(
        tmp_path, mosquitto_broker, mqtt_recorder):
    config, _ = make_config(tmp_path, mosquitto_broker)
    sink = make_sink(config)
    inventory = Inventory(device=DEVICE, run=RUN, seq=1, time=1700000000.0,
                          agent_version="0.1.0", firmware={"DISTRIB_RELEASE": "24.10.0"},
                          firmware_hash="a" * 64, baseline_hash="", package_manager="apk")
    sink.send_inventory(inventory)
    assert wait_until(lambda: sink.connected() and sink._inventory is None), "inventory acked"
    late = mqtt_recorder(mosquitto_broker, ["routerwatch/+/status", "routerwatch/+/inventory"])
    messages = late.wait_for(lambda m: len(m) >= 2)
    by_topic = {m.topic: m for m in messages}
    status = by_topic["routerwatch/%s/status" % DEVICE]
    assert status.retain and status.qos == 1
    online = decode(status.payload, "status")
    assert (online.state, online.run, online.seq) == ("online", RUN, 1)
    stored = by_topic["routerwatch/%s/inventory" % DEVICE]
    assert stored.retain and decode(stored.payload, "inventory") == inventory
    sink.close()


def test_a_clean_stop_leaves_a_retained_offline_status(tmp_path, mosquitto_broker, mqtt_recorder):
    config, _ = make_config(tmp_path, mosquitto_broker)
    sink = make_sink(config)
    assert wait_until(sink.connected)
    sink.close()
    late = mqtt_recorder(mosquitto_broker, ["routerwatch/+/status"])
    status = decode(late.wait_for(lambda m: m)[0].payload, "status")
    assert (status.state, status.seq) == ("offline", 2), "online was 1"


def start_agent_process(tmp_path, raw_config, run, first, count):
    path = tmp_path / ("agent-%s.json" % run)
    path.write_text(json.dumps(raw_config))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(HERE.parents[2] / "agent"), os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen(
        [sys.executable, str(HERE / "mqtt_agent_process.py"), str(path), run, str(first),
         str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        start_new_session=True)
    line = process.stdout.readline().decode()
    assert line.startswith("queued %d" % count), line
    return process


def kill(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_last_will_is_a_retained_offline_status_with_seq_0_when_the_agent_dies(
        tmp_path, mosquitto_broker, mqtt_recorder):
    watcher = mqtt_recorder(mosquitto_broker, ["routerwatch/+/status"])
    _, raw = make_config(tmp_path, mosquitto_broker)
    run = "00000000000000a1"
    process = start_agent_process(tmp_path, raw, run, 1, 0)
    try:
        watcher.wait_for(lambda m: any(decode(x.payload).state == "online" for x in m))
    finally:
        kill(process)
    messages = watcher.wait_for(lambda m: any(decode(x.payload).state == "offline" for x in m))
    states = [(s.state, s.seq, s.run) for s in decoded(messages, "status")]
    assert states == [("online", 1, run), ("offline", 0, run)]
    late = mqtt_recorder(mosquitto_broker, ["routerwatch/+/status"])
    kept = late.wait_for(lambda m: m)[0]
    assert kept.retain and decode(kept.payload).state == "offline"


# ---------------------------------------------------------------- heartbeats, never waiting

class EveryPass(Detector):
    """One low-severity finding per loop pass while active, each a new incident."""
    kind = "test.every_pass"
    Config = DetectorConfig
    active = True

    def tick(self, now):
        if not self.active:
            return []
        return [Finding(kind=self.kind, severity="low", summary="pass at %s" % now,
                        evidence={}, incident=str(now), time=now)]


def test_the_loop_never_waits_for_a_missing_broker_and_heartbeats_count_what_happened(
        tmp_path, persistent_broker, mqtt_recorder):
    broker = persistent_broker
    recorder = mqtt_recorder(broker, ["routerwatch/#"], client_id="loop-recorder", clean=False)
    config, _ = make_config(tmp_path, broker)
    sink = make_sink(config)
    detector = EveryPass(DetectorConfig())
    agent = Agent(config, DEVICE, [], [detector], sink, run_id=RUN, started=1000.0)
    assert wait_until(sink.connected)
    agent.step(1000.0)                                   # anomaly 1 and heartbeat 1, online
    recorder.wait_for(lambda m: decoded(m, "heartbeat") and anomaly_seqs(m))
    broker.stop(graceful=True)                           # keeps the recorder's session
    assert wait_until(lambda: not sink.connected())
    steps = 300
    for i in range(1, steps + 1):                        # 300 passes, 60 heartbeats due
        agent.step(1000.0 + i)
    # counted, not timed: every pass ran, each anomaly waits in the spool
    assert agent.anomalies_made == steps + 1
    assert sink.spool_depth() >= steps
    assert wait_until(lambda: sink.drops()["mqtt.heartbeats"] >= 59), sink.drops()
    broker.start()
    messages = recorder.wait_for(lambda m: len(set(anomaly_seqs(m))) == steps + 1, timeout=60)
    assert sorted(set(anomaly_seqs(messages))) == [(RUN, s) for s in range(1, steps + 2)]
    assert wait_until(lambda: sink.spool_depth() == 0)
    detector.active = False
    agent.step(1000.0 + steps + 5)                      # the next heartbeat tells the story
    messages = recorder.wait_for(lambda m: len(decoded(m, "heartbeat")) >= 2)
    heartbeat = decoded(messages, "heartbeat")[-1]
    assert [m.qos for m in messages if m.topic.endswith("/heartbeat")] == [0, 0]
    assert heartbeat.drops["mqtt.heartbeats"] >= 59
    assert heartbeat.counters["sent"] == steps + 1
    assert heartbeat.counters["mqtt.connects"] == 2
    assert heartbeat.spool_depth == 0
    sink.close()


# ---------------------------------------------------------------- faults

def test_every_anomaly_arrives_through_repeated_broker_restarts(
        tmp_path, persistent_broker, mqtt_recorder):
    broker = persistent_broker
    recorder = mqtt_recorder(broker, ["routerwatch/+/anomaly"], client_id="fault-recorder",
                             clean=False)
    config, _ = make_config(tmp_path, broker)
    sink = make_sink(config)
    seq = 0
    restarts = 5
    for restart in range(restarts):
        assert wait_until(lambda: sink.counters()["mqtt.connects"] == restart + 1)
        for _ in range(40):                      # connected: some will be in flight at the stop
            seq += 1
            sink.send_anomaly(anomaly(seq))
        broker.stop(graceful=True)               # keeps the recorder's session for it
        for _ in range(40):                      # while the broker is away
            seq += 1
            sink.send_anomaly(anomaly(seq))
        broker.start()
    messages = recorder.wait_for(lambda m: len(set(anomaly_seqs(m))) >= seq, timeout=90)
    got = anomaly_seqs(messages)
    assert set(got) == {(RUN, s) for s in range(1, seq + 1)}
    duplicates = len(got) - len(set(got))
    print("fault test: %d anomalies, %d broker restarts, %d duplicates, %d connects"
          % (seq, restarts, duplicates, sink.counters()["mqtt.connects"]))
    assert sink.counters()["mqtt.connects"] == restarts + 1
    assert wait_until(lambda: sink.spool_depth() == 0)
    assert sink.drops()["spool"] == 0
    sink.close()


def test_an_agent_killed_while_the_broker_is_down_delivers_after_its_restart(
        tmp_path, mosquitto_broker, mqtt_recorder):
    _, raw = make_config(tmp_path, mosquitto_broker, spool={"mode": "tmp"})
    mosquitto_broker.stop()
    first_run = "00000000000000b1"
    process = start_agent_process(tmp_path, raw, first_run, 1, 100)
    kill(process)                                # 100 anomalies were only in the spool file
    assert (tmp_path / "run" / "spool").stat().st_size > 0
    mosquitto_broker.start()
    recorder = mqtt_recorder(mosquitto_broker, ["routerwatch/+/anomaly"])
    second = start_agent_process(tmp_path, raw, "00000000000000b2", 1, 0)
    try:
        messages = recorder.wait_for(lambda m: len(set(anomaly_seqs(m))) >= 100)
    finally:
        second.stdin.close()                     # a clean stop
        assert second.stdout.readline().decode().strip() == "closed"
        second.wait(timeout=10)
    assert set(anomaly_seqs(messages)) == {(first_run, s) for s in range(1, 101)}
    assert (tmp_path / "run" / "spool").stat().st_size == 0, "all acknowledged"


# ---------------------------------------------------------------- no broker needed

def test_reconnect_delays_double_with_jitter_up_to_the_cap_and_restart_after_a_connect(tmp_path):
    config = load(defaults={"device_id": DEVICE, "mqtt": {"host": "127.0.0.1"}})
    sink = MqttSink(config, DEVICE, RUN)
    sink.reconnect_min, sink.reconnect_max = 1.0, 60.0
    delays = [sink._next_delay()[0] for _ in range(10)]
    ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings)), delays
    assert len({round(d, 6) for d in delays[6:]}) > 1, "jittered, not one fixed value"
    sink._attempt = 0                      # what a successful connect does
    assert 0.5 <= sink._next_delay()[0] <= 1.0


def test_a_config_reload_hands_what_the_ram_spool_holds_to_the_next_sink(tmp_path):
    if not find_mosquitto():
        missing_tool("mosquitto is not installed")
    broker = MosquittoBroker(tmp_path / "mosquitto")   # never started: the broker is away
    config, _ = make_config(tmp_path, broker)
    old = make_sink(config)
    for seq in range(1, 4):
        old.send_anomaly(anomaly(seq))
    old.close(final=False)
    new = make_sink(config, run="fedcba9876543210", start=False)
    assert new.spool_depth() == 3
    taken = new.spool.take(10)
    assert [decode(p).seq for _, p in taken] == [1, 2, 3]
    for sid, _ in taken:                   # delivered, so nothing is handed on again
        new.spool.ack(sid)
    new.close()
    assert new.spool_depth() == 0


def test_a_flash_spool_is_written_at_close_and_read_by_the_next_start(tmp_path):
    if not find_mosquitto():
        missing_tool("mosquitto is not installed")
    broker = MosquittoBroker(tmp_path / "mosquitto")   # never started: the broker is away
    config, _ = make_config(tmp_path, broker, spool={"mode": "flash"})
    old = make_sink(config)
    for seq in range(1, 6):
        old.send_anomaly(anomaly(seq, "critical"))
    assert not (tmp_path / "state" / "spool").exists() or \
        (tmp_path / "state" / "spool").stat().st_size == 0, "not before the batch is due"
    old.close()
    assert old.counters()["spool.file_writes"] == 1
    new = make_sink(config, run="fedcba9876543210", start=False)
    assert [(a.run, a.seq) for a in (decode(p) for _, p in new.spool.take(10))] == \
        [(RUN, s) for s in range(1, 6)]


def test_the_unreachable_broker_warning_gives_the_reason(tmp_path, caplog):
    if not find_mosquitto():
        missing_tool("mosquitto is not installed")
    broker = MosquittoBroker(tmp_path / "mosquitto")   # never started: nothing listens there
    config, _ = make_config(tmp_path, broker)
    with caplog.at_level("WARNING", logger="routerwatch"):
        sink = make_sink(config)
        try:
            assert wait_until(lambda: sink.counters()["mqtt.connect_failures"] >= 3)
        finally:
            sink.close()
    warnings = [r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage()]
    assert warnings == ["cannot reach the broker %s:%d (Connection refused); trying again with "
                        "back-off" % (broker.host, broker.port)]      # once per outage


def test_a_final_stop_says_how_many_anomalies_a_ram_spool_drops(tmp_path, caplog):
    if not find_mosquitto():
        missing_tool("mosquitto is not installed")
    broker = MosquittoBroker(tmp_path / "mosquitto")   # never started: the broker is away
    config, _ = make_config(tmp_path, broker)
    sink = make_sink(config)
    for seq in range(1, 4):
        sink.send_anomaly(anomaly(seq))
    with caplog.at_level("INFO", logger="routerwatch"):
        sink.close()
    assert [r.getMessage() for r in caplog.records if "stopping" in r.getMessage()] == [
        "stopping: 3 anomalies the broker has not acknowledged are dropped (spool.mode=ram; "
        "spool.mode=tmp or flash keeps them for the next start)"]
    again = make_sink(config, start=False)
    assert again.spool_depth() == 0             # a stop is not a reload: nothing handed on
    again.close()


def test_a_final_stop_keeps_a_file_spool_and_says_where(tmp_path, caplog):
    if not find_mosquitto():
        missing_tool("mosquitto is not installed")
    broker = MosquittoBroker(tmp_path / "mosquitto")   # never started: the broker is away
    config, _ = make_config(tmp_path, broker, spool={"mode": "tmp"})
    sink = make_sink(config)
    for seq in range(1, 3):
        sink.send_anomaly(anomaly(seq))
    with caplog.at_level("INFO", logger="routerwatch"):
        sink.close()
    assert [r.getMessage() for r in caplog.records if "stopping" in r.getMessage()] == [
        "stopping: 2 anomalies the broker has not acknowledged stay in %s for the next start"
        % (tmp_path / "run" / "spool")]
    again = make_sink(config, run="fedcba9876543210", start=False)
    assert [decode(p).seq for _, p in again.spool.take(10)] == [1, 2]
    again.close(final=False)
