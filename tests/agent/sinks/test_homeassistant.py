"""Home Assistant MQTT discovery: the configs follow Home Assistant's documented schema (the
`mqtt` integration's discovery section and the `binary_sensor.mqtt`, `event.mqtt` and
`sensor.mqtt` pages), the state says what the agent judges, and over a real broker the configs
are retained, sent again on Home Assistant's birth message, and bound to the agent's status and
Last Will. tests/homeassistant runs the real Home Assistant against them."""
import json
import random
import re
import tempfile
import time

import pytest

from routerwatch.config import ConfigError, load
from routerwatch.contract import DEVICE_ID_RE, SEVERITIES, Anomaly, Inventory
from routerwatch.detectors import detector_classes
from routerwatch.sinks.homeassistant import HomeAssistantDiscovery, ha_id

from test_mqtt import make_config, make_sink, wait_until

DEVICE = "rw-test01"
RUN = "0123456789abcdef"
T0 = 1764000000.0

# --------------------------------------------------------------------------- the documented schema
# Keys each page documents (abbreviations aside) with their type; "required" per the docs.
ID_RE = re.compile(r"\A[a-zA-Z0-9_-]+\Z")
COMMON = {"name": str, "unique_id": str, "object_id": str, "availability": list,
          "availability_mode": str, "availability_template": str, "availability_topic": str,
          "device": dict, "origin": dict, "enabled_by_default": bool, "encoding": str,
          "entity_category": str, "entity_picture": str, "icon": str,
          "json_attributes_template": str, "json_attributes_topic": str, "qos": int,
          "payload_available": str, "payload_not_available": str, "state_topic": str,
          "value_template": str, "device_class": str}
PLATFORMS = {
    "binary_sensor": ({"expire_after": int, "force_update": bool, "off_delay": int,
                       "payload_off": str, "payload_on": str}, {"state_topic"}),
    "event": ({"event_types": list}, {"state_topic", "event_types"}),
    "sensor": ({"expire_after": int, "force_update": bool, "last_reset_value_template": str,
                "options": list, "suggested_display_precision": int, "state_class": str,
                "unit_of_measurement": str}, {"state_topic"}),
}
DEVICE_KEYS = {"configuration_url": str, "connections": list, "hw_version": str,
               "identifiers": list, "manufacturer": str, "model": str, "model_id": str,
               "name": str, "serial_number": str, "suggested_area": str, "sw_version": str,
               "via_device": str}
ORIGIN_KEYS = {"name": str, "sw_version": str, "support_url": str}
AVAILABILITY_KEYS = {"topic": str, "payload_available": str, "payload_not_available": str,
                     "value_template": str}
DEVICE_CLASSES = {"binary_sensor": {"problem", "connectivity", "running", "safety", "tamper"},
                  "sensor": {"data_size"}, "event": {"button", "doorbell", "motion"}}
STATE_CLASSES = {"measurement", "total", "total_increasing"}
ENTITY_CATEGORIES = {"config", "diagnostic"}


def check_documented(component, config):
    extra, required = PLATFORMS[component]
    allowed = dict(COMMON, **extra)
    for key, value in config.items():
        assert key in allowed, "%s: %s is not a documented option" % (component, key)
        assert isinstance(value, allowed[key]), "%s.%s must be %s" % (component, key,
                                                                    allowed[key].__name__)
    assert required <= set(config), "%s needs %s" % (component, required - set(config))
    for key, value in config["device"].items():
        assert isinstance(value, DEVICE_KEYS[key]), "device.%s" % key
    assert config["device"]["identifiers"] and all(isinstance(i, str)
                                                   for i in config["device"]["identifiers"])
    assert set(config["origin"]) <= set(ORIGIN_KEYS) and config["origin"]["name"]
    for entry in config["availability"]:
        assert set(entry) <= set(AVAILABILITY_KEYS) and "topic" in entry
    if "device_class" in config:
        assert config["device_class"] in DEVICE_CLASSES[component]
    if "state_class" in config:
        assert config["state_class"] in STATE_CLASSES
    if "entity_category" in config:
        assert config["entity_category"] in ENTITY_CATEGORIES
    if "configuration_url" in config["device"]:
        assert re.match(r"\Ahttps?://", config["device"]["configuration_url"])
    if component == "event":
        assert config["event_types"] and all(isinstance(t, str) for t in config["event_types"])


def template_paths(template):
    return re.findall(r"value_json((?:\.[a-z_0-9]+)+)", template)


def resolve(obj, path):
    for part in path.strip(".").split("."):
        obj = obj[part]
    return obj


# --------------------------------------------------------------------------- helpers


def discovery(device_id=DEVICE, hold_time=None, run_dir=None, **sections):
    raw = {"device_id": device_id, "mqtt": {"host": "broker.lan"},
           "run_dir": str(run_dir or tempfile.mkdtemp(prefix="rw-ha-")),
           "homeassistant": dict({"discovery": True}, **sections.pop("homeassistant", {}))}
    raw.update(sections)
    config = load(defaults=raw)
    return HomeAssistantDiscovery(config, device_id, detector_classes(), hold_time=hold_time)


def anomaly(seq, kind="conn.new_listener", severity="critical", at=T0, count=1):
    return Anomaly(device=DEVICE, run=RUN, seq=seq, time=at, kind=kind, severity=severity,
                   summary="port 7777/tcp is listening", evidence={"port": 7777}, count=count)


def inventory():
    return Inventory(device=DEVICE, run=RUN, seq=1, time=T0, agent_version="0.1.0",
                     firmware={"DISTRIB_ID": "OpenWrt", "DISTRIB_RELEASE": "23.05.3",
                               "DISTRIB_DESCRIPTION": "OpenWrt 23.05.3 r23809",
                               "board": "tplink,archer-c7-v5", "model": "TP-Link Archer C7 v5"},
                     firmware_hash="a" * 64, baseline_hash="", package_manager="opkg")


def configs(ha):
    return {t: json.loads(p) for t, p in ha.discovery_messages()}


# --------------------------------------------------------------------------- configs


def test_every_config_follows_the_documented_schema_on_a_documented_topic():
    ha = discovery()
    ha.observe_inventory(inventory())
    ha.local_address = "192.168.1.1"
    messages = configs(ha)
    assert len(messages) == 2 + len(SEVERITIES) + 3 + 4
    for topic, config in messages.items():
        match = re.match(r"\Ahomeassistant/(binary_sensor|event|sensor)/([^/]+)/([^/]+)/config\Z",
                         topic)
        assert match, topic
        assert ID_RE.match(match.group(2)) and ID_RE.match(match.group(3))
        check_documented(match.group(1), config)
    unique_ids = [c["unique_id"] for c in messages.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    device = next(iter(messages.values()))["device"]
    assert device == {"identifiers": [DEVICE], "name": DEVICE, "sw_version": "0.1.0",
                      "model": "TP-Link Archer C7 v5", "manufacturer": "TP-Link",
                      "model_id": "tplink,archer-c7-v5", "hw_version": "OpenWrt 23.05.3 r23809",
                      "configuration_url": "http://192.168.1.1/cgi-bin/luci/"}


def test_availability_is_the_agents_retained_status_and_last_will():
    for config in configs(discovery()).values():
        assert config["availability"] == [{
            "topic": "routerwatch/%s/status" % DEVICE, "value_template": "{{ value_json.state }}",
            "payload_available": "online", "payload_not_available": "offline"}]


def test_entities_read_the_contract_topics_and_the_state_topic():
    by_id = {c["unique_id"].rsplit(DEVICE.replace("-", "-") + "_", 1)[-1]: c
             for c in configs(discovery()).values()}
    assert by_id["security_event"]["state_topic"] == "routerwatch/%s/anomaly" % DEVICE
    assert set(by_id["security_event"]["event_types"]) == set(detector_classes())
    assert by_id["memory"]["state_topic"] == "routerwatch/%s/heartbeat" % DEVICE
    assert by_id["memory"]["unit_of_measurement"] == "KiB"
    assert by_id["compromise"]["device_class"] == "problem"
    assert by_id["compromise"]["state_topic"] == "routerwatch/%s/homeassistant" % DEVICE
    assert {k for k in by_id if k.startswith("watcher_")} == {
        "watcher_logins", "watcher_connections", "watcher_processes", "watcher_integrity"}


def test_every_template_reads_a_field_its_topic_carries():
    ha = discovery()
    state = json.loads(ha.state_payload(T0))
    heartbeat_fields = {"spool_depth", "rss_kb", "cpu_percent"}
    for config in configs(ha).values():
        for key in ("value_template", "json_attributes_template"):
            for path in template_paths(config.get(key, "")):
                if config["state_topic"].endswith("/homeassistant"):
                    resolve(state, path)
                elif config["state_topic"].endswith("/heartbeat"):
                    assert path.strip(".") in heartbeat_fields
                else:
                    assert path.strip(".") in Anomaly.__dataclass_fields__


def test_disabled_watchers_have_no_entity_and_the_prefix_is_configurable():
    ha = discovery(watchers={"processes": False}, homeassistant={"prefix": "ha/disc"})
    topics = list(configs(ha))
    assert all(t.startswith("ha/disc/") for t in topics)
    assert not any("watcher_processes" in t for t in topics)
    assert ha.birth_topic == "ha/disc/status"


def device_ids(count=300, seed=14):
    """Valid device ids of every shape (this file also runs under paho-mqtt 1.6 in CI, whose
    venv has no hypothesis): the edges, then random ones from the whole alphabet."""
    alphabet = "ABCxyz0189_.:-"
    rng = random.Random(seed)
    yield from ("a", "rw-0a1b2c3d4e5f", "A:B:C", "x.y.z", "9" * 64, "a" + ".:-_" * 15)
    for _ in range(count):
        yield rng.choice("aZ5") + "".join(rng.choice(alphabet)
                                          for _ in range(rng.randrange(0, 64)))


def test_any_device_id_gives_ids_home_assistant_accepts(tmp_path):
    for device_id in device_ids():
        assert DEVICE_ID_RE.match(device_id)
        node = ha_id(device_id)
        assert ID_RE.match(node)
        for topic, config in discovery(device_id=device_id,
                                       run_dir=tmp_path).discovery_messages():
            assert topic.split("/")[2] == node
            assert json.loads(config)["device"]["identifiers"] == [device_id]


def test_options_are_checked():
    with pytest.raises(ConfigError, match="homeassistant.discovery needs mqtt.host"):
        load(defaults={"homeassistant": {"discovery": True}})
    with pytest.raises(ConfigError, match="homeassistant.prefix"):
        load(defaults={"mqtt": {"host": "b"}, "homeassistant": {"prefix": "home/+"}})
    with pytest.raises(ConfigError, match="configuration_url"):
        load(defaults={"homeassistant": {"configuration_url": "javascript:alert(1)"}})
    assert load().homeassistant.discovery is False


def test_an_ipv6_broker_address_gives_a_bracketed_luci_link_and_the_option_wins():
    ha = discovery()
    ha.local_address = "fd00::1"
    assert ha.device()["configuration_url"] == "http://[fd00::1]/cgi-bin/luci/"
    ha = discovery(homeassistant={"configuration_url": "https://router.lan/"})
    assert ha.device()["configuration_url"] == "https://router.lan/"


# --------------------------------------------------------------------------- the state


def test_compromise_is_on_for_the_hold_time_after_a_high_or_critical_anomaly():
    ha = discovery(hold_time=600)
    assert json.loads(ha.state_payload(T0))["compromise"] == "OFF"
    ha.observe_anomaly(anomaly(1, severity="medium"))
    assert json.loads(ha.state_payload(T0))["compromise"] == "OFF"
    ha.observe_anomaly(anomaly(2, kind="login.success_after_failures", severity="high",
                               at=T0 + 10))
    state = json.loads(ha.state_payload(T0 + 20))
    assert state["compromise"] == "ON"
    assert state["latest"] == {"kind": "login.success_after_failures", "severity": "high",
                               "summary": "port 7777/tcp is listening", "time": T0 + 10}
    assert json.loads(ha.state_payload(T0 + 609))["compromise"] == "ON"
    assert json.loads(ha.state_payload(T0 + 610))["compromise"] == "OFF"


def test_counts_cover_the_last_24_hours_by_severity_in_bounded_buckets():
    ha = discovery()
    for hour in range(48):
        ha.observe_anomaly(anomaly(hour, severity=SEVERITIES[hour % 5], at=T0 + hour * 3600,
                                   count=2))
    counts = json.loads(ha.state_payload(T0 + 47 * 3600))["anomalies_24h"]
    assert sum(counts.values()) == 48 and counts["info"] == 2 * 5
    assert len(ha._buckets) == 24
    assert sum(json.loads(ha.state_payload(T0 + 80 * 3600))["anomalies_24h"].values()) == 0


def test_a_restarted_agent_keeps_the_compromise_and_the_counts(tmp_path):
    ha = discovery(run_dir=tmp_path, hold_time=600)
    ha.observe_anomaly(anomaly(1, severity="low", at=T0))
    ha.observe_anomaly(anomaly(2, at=T0 + 5))        # critical: written at once
    again = discovery(run_dir=tmp_path, hold_time=600)
    state = json.loads(again.state_payload(T0 + 60))
    assert state["compromise"] == "ON" and state["latest"]["time"] == T0 + 5
    assert state["anomalies_24h"]["critical"] == 1 and state["anomalies_24h"]["low"] == 1
    ha.observe_anomaly(anomaly(3, severity="info", at=T0 + 6))
    ha.save()                                          # the rest: with the heartbeat
    assert json.loads(discovery(run_dir=tmp_path).state_payload(T0 + 60))[
        "anomalies_24h"]["info"] == 1


@pytest.mark.parametrize("content", [
    b"not json", b"[]", b'{"latest": {}, "buckets": [[1, [1, 2]]]}',
    b'{"latest": {"kind": "x", "severity": "high", "summary": "s", "time": 1}, "buckets": []}',
    b'{"latest": {"kind": "conn.scan", "severity": "low", "summary": "s", "time": 1},'
    b' "buckets": []}',
    b'{"latest": {}, "buckets": [[1, [1, 2, 3, 4, -5]]]}', b"{" * 20000])
def test_a_damaged_state_file_is_ignored_whole(tmp_path, content):
    (tmp_path / "homeassistant.json").write_bytes(content)
    state = json.loads(discovery(run_dir=tmp_path).state_payload(T0))
    assert state["compromise"] == "OFF" and sum(state["anomalies_24h"].values()) == 0


def test_watcher_health_shows_the_problem_and_its_reason():
    ha = discovery()
    assert ha.observe_health({"logins": "", "connections": ""}) is False
    assert ha.observe_health({"logins": "no log line for 30000 s"}) is True
    watchers = json.loads(ha.state_payload(T0))["watchers"]
    assert watchers["logins"] == {"problem": "ON", "reason": "no log line for 30000 s"}
    assert watchers["integrity"] == {"problem": "OFF", "reason": ""}


# --------------------------------------------------------------------------- over a real broker


def test_over_a_broker_configs_are_retained_resent_on_birth_and_follow_the_status(
        tmp_path, mosquitto_broker, mqtt_recorder):
    config, _ = make_config(tmp_path, mosquitto_broker, homeassistant={"discovery": True})
    sink = make_sink(config)
    try:
        sink.send_anomaly(anomaly(1, at=time.time()))
        assert wait_until(lambda: sink.sent == 1)
        late = mqtt_recorder(mosquitto_broker, ["homeassistant/#", "routerwatch/#"])
        retained = late.wait_for(lambda m: len([x for x in m if x.retain]) >= 16)
        configs_seen = {m.topic for m in retained if m.retain and m.topic.endswith("/config")}
        assert len(configs_seen) == 14
        state = [json.loads(m.payload) for m in retained
                 if m.retain and m.topic == "routerwatch/%s/homeassistant" % DEVICE]
        assert state and state[-1]["compromise"] == "ON"
        assert state[-1]["anomalies_24h"]["critical"] == 1
        config_entry = json.loads(next(m.payload for m in retained if m.retain and
                                       m.topic.endswith("/compromise/config")))
        assert config_entry["device"]["configuration_url"] == "http://127.0.0.1/cgi-bin/luci/"
        before = len(late.snapshot())
        birth = mqtt_recorder(mosquitto_broker, ["x/never"])
        birth.client.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
        again = late.wait_for(lambda m: len([x for x in m[before:]
                                             if x.topic.endswith("/config")]) >= 14)
        assert len([x for x in again[before:] if x.topic.endswith("/config")]) == 14
    finally:
        sink.close()
    status = late.wait_for(lambda m: any(b'"offline"' in x.payload for x in m
                                         if x.topic.endswith("/status")))
    assert json.loads([x for x in status if x.topic.endswith("/status")][-1].payload)[
        "state"] == "offline"


def test_with_discovery_off_nothing_goes_to_home_assistant(tmp_path, mosquitto_broker,
                                                           mqtt_recorder):
    recorder = mqtt_recorder(mosquitto_broker, ["#"])
    config, _ = make_config(tmp_path, mosquitto_broker)
    sink = make_sink(config)
    try:
        sink.send_anomaly(anomaly(1))
        assert wait_until(lambda: sink.sent == 1)
        time.sleep(0.3)
    finally:
        sink.close()
    topics = {m.topic for m in recorder.snapshot()}
    assert topics and not any(t.startswith("homeassistant/") or t.endswith("/homeassistant")
                              for t in topics)
