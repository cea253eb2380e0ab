"""Agent -> real mosquitto -> collector -> SQLite or PostgreSQL, with real processes.

Given a log file that an attack replay writes into, when routerwatch-agent follows it and
publishes to the broker, then the collector stores each anomaly once, field by field as the
agent made it; and when the broker (or the collector) dies and comes back while the agent keeps
detecting, every anomaly still lands exactly once.
"""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker import MosquittoBroker, find_mosquitto, missing_tool
from store_rows import store_rows
from routerwatch import jsonio
from routerwatch.detectors import login_bruteforce

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "demo"))
import attack_replay  # noqa: E402

DEVICE = "rw-e2e-router"



@pytest.fixture(autouse=True)
def needs_mosquitto():
    if not find_mosquitto():
        missing_tool("mosquitto is not installed")


def wait_until(condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


rows = store_rows


def start_collector(port, db, workdir, *options):
    log = open(workdir / "collector.log", "ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "routerwatch_collector.cli", "run", "--port", str(port),
             "--db", str(db), "--print"] + list(options),
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True)
    finally:
        log.close()


def start_agent(port, log_file, workdir):
    state = workdir / "agent-state"
    state.mkdir(exist_ok=True)
    err = open(workdir / "agent.log", "ab")
    try:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "routerwatch-agent"), "--log-file", str(log_file),
             "--set", "mqtt.host=127.0.0.1", "--set", "mqtt.port=%d" % port,
             "--set", "device_id=" + DEVICE, "--set", "state_dir=%s" % state,
             "--set", "run_dir=%s" % state, "--set", "intervals.heartbeat=5",
             "--set", "watchers.connections=false", "--set", "watchers.processes=false",
             "--set", "watchers.integrity=false"],
            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    finally:
        err.close()


def stop(process, sig=signal.SIGTERM):
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
        raise AssertionError("%s did not stop on %s" % (process.args[:3], sig))
    return process.returncode


def device_online(db):
    return rows(db, "SELECT 1 FROM devices WHERE device = ? AND status = 'online'", (DEVICE,))


def agent_anomalies(db):
    return rows(db, "SELECT * FROM anomalies WHERE device = ? AND origin = 'agent' ORDER BY seq",
                (DEVICE,))


def test_a_replayed_attack_arrives_in_the_store_field_by_field(mosquitto_broker, tmp_path,
                                                                store_url):
    db = store_url
    log_file = tmp_path / "messages"
    log_file.touch()
    collector = start_collector(mosquitto_broker.port, db, tmp_path)
    agent = start_agent(mosquitto_broker.port, log_file, tmp_path)
    try:
        wait_until(lambda: device_online(db), what="the agent's online status in the store")
        attack_replay.replay(str(log_file), duration=0)
        stored = wait_until(lambda: len(agent_anomalies(db)) >= len(attack_replay.EXPECTED)
                            and agent_anomalies(db), what="the replay's anomalies")
    finally:
        agent_code = stop(agent)
    time.sleep(0.5)   # the agent's clean "offline" on its way
    collector_code = stop(collector)
    printed = collector.stdout.read()

    assert agent_code == 0 and collector_code == 0
    reported = [(row["kind"], jsonio.loads(row["evidence"]).get("source_ip")) for row in stored]
    assert sorted(reported, key=str) == sorted(attack_replay.EXPECTED, key=str)
    by_kind = {row["kind"]: row for row in stored
               if jsonio.loads(row["evidence"]).get("source_ip") != attack_replay.WINNER_SOURCE
               or row["kind"] != "login.bruteforce"}
    runs = {row["run"] for row in stored}
    assert len(runs) == 1 and len(runs.pop()) == 16
    assert [row["seq"] for row in stored] == list(range(1, len(stored) + 1))

    brute = by_kind["login.bruteforce"]
    evidence = jsonio.loads(brute["evidence"])
    assert (brute["device"], brute["severity"], brute["count"], brute["v"]) == (
        DEVICE, "medium", 1, 1)
    assert evidence["source_ip"] == attack_replay.BRUTE_SOURCE
    # reported when an outside source reaches the default threshold
    outside_threshold = login_bruteforce.Config().threshold
    assert evidence["users"] == ["root"] and evidence["failures"] == outside_threshold
    assert attack_replay.BRUTE_SOURCE in brute["summary"]

    success = by_kind["login.success_after_failures"]
    assert success["severity"] == "high"
    assert jsonio.loads(success["evidence"])["source_ip"] == attack_replay.WINNER_SOURCE
    assert jsonio.loads(by_kind["login.spray"]["evidence"])["distinct_sources"] >= 10

    for row in stored:   # --print wrote one line per stored anomaly
        assert any(row["kind"] in line and "seq=%d" % row["seq"] in line
                   for line in printed.splitlines())

    (device,) = rows(db, "SELECT * FROM devices")
    assert device["status"] == "stopped"          # a clean stop is not a silence
    assert device["anomalies"] == len(stored) and device["silent_since"] is None
    assert rows(db, "SELECT * FROM anomalies WHERE kind = 'agent.silent'") == []
    assert rows(db, "SELECT * FROM rejected") == []


def brute_force(log_file, source, failures=12):
    """`failures` bad root passwords from one address: exactly one login.bruteforce."""
    replay = attack_replay.Replay()
    for _ in range(failures):
        replay.bad_password("root", source)
    with open(log_file, "a") as handle:
        for where, message in replay.steps:
            handle.write(attack_replay.logread_line(time.time(), where, message))


def counted_by_agent(db):
    """The agent's own count of anomalies made, from its latest heartbeat."""
    found = rows(db, "SELECT last_heartbeat FROM devices WHERE device = ?", (DEVICE,))
    if not found or not found[0]["last_heartbeat"]:
        return None
    return jsonio.loads(found[0]["last_heartbeat"])["counters"].get("anomalies")


@pytest.mark.slow
def test_every_anomaly_lands_exactly_once_through_broker_and_collector_crashes(tmp_path,
                                                                                  store_url):
    # the broker keeps sessions on disk (saved every second), so a restarted broker still
    # queues for the collector what an agent that reconnects first publishes
    broker = MosquittoBroker(tmp_path / "broker", persistent=True, extra="autosave_interval 1")
    db = store_url
    log_file = tmp_path / "messages"
    log_file.touch()
    sources = iter("203.0.113.%d" % n for n in range(20, 40))
    produced = 0
    with broker:
        collector = start_collector(broker.port, db, tmp_path)
        agent = start_agent(broker.port, log_file, tmp_path)
        try:
            wait_until(lambda: device_online(db), what="the agent online")
            time.sleep(1.5)   # the broker's autosave has the collector's session on disk
            for cycle in range(4):
                brute_force(log_file, next(sources))          # detected while all is up
                produced += 1
                broker.stop()                                 # SIGKILL: a broker crash
                brute_force(log_file, next(sources))          # detected during the outage
                produced += 1
                time.sleep(1.0)
                broker.start()
                if cycle == 1:                                # and once the collector crashes
                    wait_until(lambda: len(agent_anomalies(db)) == produced,
                               what="catching up before the collector crash")
                    collector.kill()
                    collector.wait(10)
                    brute_force(log_file, next(sources))
                    produced += 1
                    time.sleep(1.0)
                    collector = start_collector(broker.port, db, tmp_path)
                wait_until(lambda: len(agent_anomalies(db)) >= produced, timeout=60,
                           what="%d anomalies after cycle %d" % (produced, cycle))
            # the agent's own count, from its latest heartbeat, agrees
            wait_until(lambda: counted_by_agent(db) == produced, timeout=30,
                       what="a heartbeat counting %d anomalies" % produced)
        finally:
            stop(agent)
            stop(collector)

    stored = agent_anomalies(db)
    seqs = [row["seq"] for row in stored]
    assert len(stored) == produced == 9
    assert sorted(set(seqs)) == seqs == list(range(1, produced + 1))
    assert {row["kind"] for row in stored} == {"login.bruteforce"}
    assert sorted(jsonio.loads(row["evidence"])["source_ip"] for row in stored) == sorted(
        "203.0.113.%d" % n for n in range(20, 20 + produced))
    duplicates = rows(db, "SELECT device, run, seq, COUNT(*) AS n FROM anomalies "
                          "GROUP BY device, run, seq HAVING COUNT(*) > 1")
    assert duplicates == []
    assert rows(db, "SELECT * FROM gaps WHERE type = 'anomaly' AND "
                    "last_seq - first_seq + 1 - filled > 0") == []


def publish_raw(port, messages):
    """(topic, payload bytes) pairs, QoS 1, as a router with broker credentials could send them."""
    from routerwatch.sinks.mqtt import new_client
    client = new_client("rw-test-publisher")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def good_anomalies(devices, seq):
    from collector_messages import anomaly, wire
    return [wire(anomaly(seq, device=device)) for device in devices]


def test_poison_messages_never_stop_storage_for_the_other_devices_nor_after_a_restart(
        mosquitto_broker, tmp_path):
    from collector_messages import anomaly, wire
    from routerwatch_collector.store import SqliteStore

    db = tmp_path / "collector.sqlite"
    # a store with a limit the contract does not know (as PostgreSQL refuses NUL): a trigger
    # that refuses one summary plays it, so a message passes the decoder and fails in the store
    store = SqliteStore(db)
    store._x("CREATE TRIGGER poison BEFORE INSERT ON anomalies WHEN NEW.summary LIKE "
             "'%poison%' BEGIN SELECT RAISE(ABORT, 'this store cannot hold it'); END")
    store.close()
    collector = start_collector(mosquitto_broker.port, db, tmp_path)
    wait_until(lambda: collector_subscribed(tmp_path), what="the collector subscribed")
    stop(collector)            # its persistent session now queues what comes next

    topic, surrogate = wire(anomaly(1, device="rw-evil"))
    surrogate = surrogate.replace(b'"summary":"', b'"summary":"\\ud800')
    bad = anomaly(1, device="rw-evil-2")
    refused = wire(type(bad)(**dict(bad.__dict__, summary="poison")))
    good = ["rw-good-%d" % n for n in range(5)]
    publish_raw(mosquitto_broker.port, [(topic, surrogate), refused]
                + good_anomalies(good, 1))

    collector = start_collector(mosquitto_broker.port, db, tmp_path)
    try:
        wait_until(lambda: len(rows(db, "SELECT * FROM anomalies")) == len(good), timeout=30,
                   what="the good devices' anomalies behind the poison")
        wait_until(lambda: len(rows(db, "SELECT * FROM rejected")) == 2,
                   what="both poison messages in rejected")
    finally:
        assert stop(collector) == 0
    rejected = {r["reason"]: r for r in rows(db, "SELECT * FROM rejected")}
    assert {reason: r["count"] for reason, r in rejected.items()} == {
        "invalid_field": 1, "unstorable": 1}
    assert rejected["unstorable"]["last_device"] == "rw-evil-2"
    assert "cannot hold it" in rejected["unstorable"]["last_detail"]

    # a restart: the poison was acknowledged, so nothing comes again and storage goes on
    collector = start_collector(mosquitto_broker.port, db, tmp_path)
    try:
        wait_until(lambda: collector_subscribed(tmp_path, count=3), what="the restarted collector")
        publish_raw(mosquitto_broker.port, good_anomalies(good, 2))
        wait_until(lambda: len(rows(db, "SELECT * FROM anomalies")) == 2 * len(good),
                   what="the anomalies sent after the restart")
    finally:
        assert stop(collector) == 0
    assert {r["reason"]: r["count"] for r in rows(db, "SELECT * FROM rejected")} == {
        "invalid_field": 1, "unstorable": 1}
    assert sorted(r["device"] for r in rows(db, "SELECT device FROM anomalies WHERE seq = 2")) \
        == good


def collector_subscribed(workdir, count=1):
    """The collector logged its subscription `count` times (once per start)."""
    log = workdir / "collector.log"
    return log.exists() and log.read_text(errors="replace").count("subscribed to") >= count


def silences(db):
    return [jsonio.loads(row["evidence"])["reason"] for row in rows(
        db, "SELECT evidence FROM anomalies WHERE kind = 'agent.silent' ORDER BY id")]


@pytest.mark.slow
def test_what_the_owner_sees_when_the_agent_is_stopped_rebooted_or_killed(
        mosquitto_broker, tmp_path):
    db = tmp_path / "collector.sqlite"
    log_file = tmp_path / "messages"
    log_file.touch()
    collector = start_collector(mosquitto_broker.port, db, tmp_path, "--stop-grace", "6")
    agent = start_agent(mosquitto_broker.port, log_file, tmp_path)
    try:
        wait_until(lambda: device_online(db), what="the agent online")
        # stopped (`/etc/init.d/routerwatch stop`, `kill <pid>`): a clean offline, then nothing
        assert stop(agent) == 0
        wait_until(lambda: silences(db) == ["stopped"], timeout=40,
                   what="agent.silent (stopped) once the grace is over")
        # a reboot or sysupgrade: stopped cleanly and back within the grace, no alarm
        agent = start_agent(mosquitto_broker.port, log_file, tmp_path)
        wait_until(lambda: rows(db, "SELECT 1 FROM devices WHERE status = 'online' AND "
                                    "silent_since IS NULL"), what="the agent back online")
        assert stop(agent) == 0
        agent = start_agent(mosquitto_broker.port, log_file, tmp_path)
        wait_until(lambda: rows(db, "SELECT 1 FROM devices WHERE status = 'online' AND "
                                    "silent_since IS NULL"), what="the agent back after a reboot")
        time.sleep(8)                                   # past the grace of that stop
        assert silences(db) == ["stopped"]
        # killed (kill -9, the OOM killer, a crash): the broker publishes the Last Will at once
        agent.kill()
        agent.wait(10)
        wait_until(lambda: silences(db) == ["stopped", "last_will"], timeout=30,
                   what="agent.silent (last_will) after kill -9")
    finally:
        if agent.poll() is None:
            stop(agent)
        assert stop(collector) == 0
