"""The running agent against a real mosquitto: a file name that is not UTF-8 is reported and the
agent keeps running; an agent that ends on an error says so the way a crash does (the Last Will's
seq-0 "offline"), never with the clean stop's "offline"."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.build_tree import build_tree
from routerwatch import cli
from routerwatch.contract import decode, wire_unescape
from routerwatch.runtime import Agent

REPO = Path(__file__).resolve().parents[2]
DEVICE = "rw-hostile01"


def agent_config(tmp_path, broker, tree):
    path = tmp_path / "agent.json"
    path.write_text(json.dumps({
        "device_id": DEVICE, "root": str(tree), "state_dir": str(tmp_path / "state"),
        "run_dir": str(tmp_path / "run"), "intervals": {"heartbeat": 5},
        "log": {"source": "file", "path": str(tree / "var/log/messages")},
        "mqtt": {"host": broker.host, "port": broker.port, "keepalive": 5}}))
    return path


def tree_with_bad_name(tmp_path, name):
    tree = build_tree("router-clean", tmp_path / "tree")
    init_d = os.path.join(os.fsencode(str(tree)), b"overlay/upper/etc/init.d")
    os.makedirs(init_d, exist_ok=True)
    with open(os.path.join(init_d, name), "wb") as handle:
        handle.write(b"#!/bin/sh\nexec /tmp/.x\n")
    os.chmod(os.path.join(init_d, name), 0o755)
    return tree


def test_an_agent_with_a_0xff_file_name_keeps_running_and_the_anomaly_arrives(
        tmp_path, mosquitto_broker, mqtt_recorder):
    name = b"S50\xff\xfe\\xff"
    tree = tree_with_bad_name(tmp_path, name)
    recorder = mqtt_recorder(mosquitto_broker, ["routerwatch/#"])
    env = dict(os.environ, LC_ALL="C", LANG="C", PYTHONUTF8="0",
               PYTHONPATH=os.pathsep.join([str(REPO / "agent"), os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "routerwatch.cli", "--config",
         str(agent_config(tmp_path, mosquitto_broker, tree))],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        start_new_session=True)
    wanted = "/etc/init.d/S50\\xff\\xfe\\\\xff"
    try:
        def arrived(messages):
            return [m for m in messages if m.topic.endswith("/anomaly")
                    and decode(m.payload, "anomaly").evidence.get("path") == wanted]
        messages = recorder.wait_for(lambda m: arrived(m), timeout=60)
        assert arrived(messages), [m.payload[:200] for m in messages]
        anomaly = decode(arrived(messages)[0].payload, "anomaly")
        assert os.fsencode(wire_unescape(anomaly.evidence["path"])) == b"/etc/init.d/" + name
        # still running, and heartbeating after the anomaly went out
        seen = len(messages)
        later = recorder.wait_for(
            lambda m: any(x.topic.endswith("/heartbeat") for x in m[seen:]), timeout=30)
        assert any(x.topic.endswith("/heartbeat") for x in later[seen:])
        assert process.poll() is None, process.stderr.read().decode("utf-8", "replace")
        heartbeat = decode([x for x in later if x.topic.endswith("/heartbeat")][-1].payload)
        assert heartbeat.drops["send_errors"] == 0 and heartbeat.drops["mqtt.invalid"] == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    assert process.returncode == 0      # a SIGTERM is a clean stop
    statuses = [decode(m.payload) for m in recorder.messages if m.topic.endswith("/status")]
    assert statuses[-1].state == "offline" and statuses[-1].seq > 0


def test_an_agent_that_ends_on_an_error_leaves_the_last_will_not_a_clean_offline(
        tmp_path, mosquitto_broker, mqtt_recorder, monkeypatch):
    tree = build_tree("router-clean", tmp_path / "tree")
    recorder = mqtt_recorder(mosquitto_broker, ["routerwatch/+/status"])
    real_step = Agent.step

    def failing_step(agent, now, force_poll=False):
        if agent.sink.connected():
            raise RuntimeError("an unforeseen bug in the loop")
        return real_step(agent, now, force_poll)

    monkeypatch.setattr(Agent, "step", failing_step)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        started = time.monotonic()
        code = cli.main(["--config", str(agent_config(tmp_path, mosquitto_broker, tree))])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert code == cli.EXIT_ERROR
    assert time.monotonic() - started < 30
    messages = recorder.wait_for(
        lambda m: any(decode(x.payload).state == "offline" for x in m), timeout=10)
    states = [(s.state, s.seq) for s in (decode(m.payload) for m in messages)]
    assert states[0] == ("online", 1)
    assert ("offline", 0) in states and not any(st == "offline" and seq > 0 for st, seq in states)


@pytest.fixture(autouse=True)
def _no_leftover_handover():
    from routerwatch.sinks import mqtt
    yield
    mqtt._handover.pop(DEVICE, None)
