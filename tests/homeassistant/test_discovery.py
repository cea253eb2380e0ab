"""The agent's MQTT discovery in the real Home Assistant (Core from PyPI): given Home Assistant
with its MQTT integration on the test broker, when a real agent with discovery on watches the
attacked fixture router, then /api/states shows the router's entities with the states the attack
calls for, a new attack fires the event entity, and after kill -9 of the agent every entity is
unavailable (the broker publishes its Last Will)."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from routerwatch.detectors import detector_classes
from routerwatch.contract import SEVERITIES

REPO = Path(__file__).resolve().parents[2]
DEVICE = "rw-ha-test"
NODE = "rw_ha_test"          # the entity ids Home Assistant derives from the device name

pytestmark = [pytest.mark.slow, pytest.mark.homeassistant]


def wait_until(condition, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


def bad_passwords(count, source="203.0.113.50"):
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime())
    return "".join("%s authpriv.warn dropbear[%d]: Bad password attempt for 'root' from %s:%d\n"
                   % (stamp, 3000 + i, source, 40000 + i) for i in range(count))


def entity(name):
    return "%s.%s_%s" % (name.split(".", 1)[0], NODE, name.split(".", 1)[1])


def test_the_router_appears_with_its_states_and_goes_unavailable_when_killed(
        home_assistant, mosquitto_broker, tmp_path):
    ha = home_assistant
    ha.add_mqtt("127.0.0.1", mosquitto_broker.port)
    tree = tmp_path / "router"
    shutil.copytree(REPO / "tests" / "fixtures" / "router-attacked", tree, symlinks=True)
    log_file = tmp_path / "messages"
    log_file.write_text("")
    agent_log = open(tmp_path / "agent.log", "wb")
    agent = subprocess.Popen(
        [sys.executable, "-m", "routerwatch.cli", "--root", str(tree), "--log-file",
         str(log_file), "--set", "device_id=%s" % DEVICE, "--set", "mqtt.host=127.0.0.1",
         "--set", "mqtt.port=%d" % mosquitto_broker.port, "--set", "mqtt.keepalive=5",
         "--set", "intervals.heartbeat=5", "--set", "homeassistant.discovery=1",
         "--set", "run_dir=%s" % (tmp_path / "run")],
        stdout=subprocess.DEVNULL, stderr=agent_log, stdin=subprocess.DEVNULL)
    agent_log.close()
    try:
        compromise = entity("binary_sensor.compromise_suspected")
        wanted = [compromise, entity("event.security_event"), entity("sensor.agent_memory"),
                  entity("sensor.agent_cpu"), entity("sensor.spool_depth"),
                  entity("binary_sensor.login_watcher"), entity("binary_sensor.integrity_watcher")]
        wanted += [entity("sensor.anomalies_24_h_%s" % s) for s in SEVERITIES]
        states = wait_until(lambda: _with(ha.states(), wanted, lambda s: s["state"] not in (
            "unknown", "unavailable") or s["entity_id"].startswith("event.")), 90,
            "the router's entities in Home Assistant")

        # the attacked router: a backdoor listener, code from /tmp, tampered dropbear ...
        assert states[compromise]["state"] == "on"
        assert states[compromise]["attributes"]["severity"] in ("high", "critical")
        assert states[compromise]["attributes"]["kind"] in detector_classes()
        assert states[compromise]["attributes"]["device_class"] == "problem"
        assert int(states[entity("sensor.anomalies_24_h_critical")]["state"]) >= 4
        assert int(states[entity("sensor.anomalies_24_h_high")]["state"]) >= 4
        assert int(states[entity("sensor.agent_memory")]["state"]) > 1000
        assert states[entity("sensor.agent_memory")]["attributes"]["unit_of_measurement"] == "KiB"
        assert states[entity("binary_sensor.login_watcher")]["state"] == "off"
        assert states[entity("event.security_event")]["attributes"]["event_types"] == sorted(
            detector_classes())

        # the device block, as Home Assistant keeps it
        device = "device_id('%s')" % compromise
        assert ha.render("{{ device_attr(%s, 'model') }}" % device) == "GL.iNet GL-MT3000"
        assert ha.render("{{ device_attr(%s, 'manufacturer') }}" % device) == "GL.iNet"
        assert ha.render("{{ device_attr(%s, 'name') }}" % device) == DEVICE
        assert ha.render("{{ device_attr(%s, 'configuration_url') }}" % device) == \
            "http://127.0.0.1/cgi-bin/luci/"
        assert ha.render("{{ device_attr(%s, 'hw_version') }}" % device).startswith("OpenWrt ")

        # a brute force now: one event per anomaly, the kind as its type
        with log_file.open("a") as handle:
            handle.write(bad_passwords(12))
        event = wait_until(lambda: _event_of(ha.states(), entity("event.security_event"),
                                             "login.bruteforce"), 60, "the login.bruteforce event")
        assert event["attributes"]["severity"] in SEVERITIES
        assert "203.0.113.50" in event["attributes"]["summary"]
        assert event["attributes"]["evidence"]["source_ip"] == "203.0.113.50"

        if os.environ.get("ROUTERWATCH_HA_SCREENSHOT"):
            from screenshot import save_device_page
            save_device_page(ha, compromise, Path(os.environ["ROUTERWATCH_HA_SCREENSHOT"]))

        # the agent is killed: the broker publishes its Last Will, everything is unavailable
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        wait_until(lambda: all(ha.states()[e]["state"] == "unavailable" for e in wanted), 60,
                   "every entity unavailable after kill -9")
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)


def _with(states, wanted, ready):
    if all(e in states and ready(states[e]) for e in wanted):
        return states
    return None


def _event_of(states, entity_id, event_type):
    state = states.get(entity_id)
    if state and state["attributes"].get("event_type") == event_type:
        return state
    return None
