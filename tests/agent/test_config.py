"""Config: JSON file + --set overrides, errors that name the option, the value and the range."""
import json

import pytest

from routerwatch import config as cfg
from routerwatch.config import ConfigError


def write(tmp_path, obj):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(obj))
    return str(path)


def test_defaults_are_sane(tmp_path):
    conf = cfg.load(defaults={"root": str(tmp_path)})
    assert conf.mqtt.port == 1883 and conf.mqtt.host == ""
    assert conf.spool.mode == "ram"
    assert conf.log.source == "logread"
    assert set(conf.detectors) == set(cfg.detector_classes())


def test_file_then_overrides(tmp_path):
    path = write(tmp_path, {"root": str(tmp_path), "mqtt": {"host": "broker", "port": 8883}})
    conf = cfg.load(path, ["mqtt.port=1884", "mqtt.tls=yes", "watchers.integrity=0"])
    assert conf.mqtt.host == "broker"
    assert conf.mqtt.port == 1884
    assert conf.mqtt.tls is True
    assert conf.watchers.integrity is False


def test_error_names_option_value_range_and_origin(tmp_path):
    path = write(tmp_path, {"root": str(tmp_path), "mqtt": {"port": 70000}})
    with pytest.raises(ConfigError) as err:
        cfg.load(path)
    assert str(err.value) == ("config error: mqtt.port must be 1-65535, got 70000 (from %s)" % path)


@pytest.mark.parametrize("raw, fragment", [
    ({"mqtt": {"port": "x"}}, "mqtt.port must be"),
    ({"mqtt": {"port": True}}, "mqtt.port must be a number"),
    ({"mqtt": {"portt": 1}}, "unknown option mqtt.portt"),
    ({"spool": {"mode": "disk"}}, "spool.mode must be one of ram, tmp, flash"),
    ({"mqtt": []}, "mqtt must be an object"),
    ({"device_id": "a/b"}, "device_id must be"),
    ({"prefix": "a/+"}, "prefix must be"),
    ({"log": {"source": "file"}}, "log.path must name a file"),
    ({"mqtt": {"cert_file": "/c"}}, "cert_file and mqtt.key_file go together"),
    ({"detectors": {"login.nonsense": {}}}, "unknown detector login.nonsense"),
    ({"intervals": {"connections": 1.5}}, "whole number"),
])
def test_bad_values_are_explained(tmp_path, raw, fragment):
    raw = dict(raw, root=str(tmp_path))
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.").replace("+", r"\+")):
        cfg.load(write(tmp_path, raw))


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        cfg.load(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        cfg.load(str(bad))


def test_detector_options_are_set_by_kind(tmp_path):
    kinds = list(cfg.detector_classes())
    if not kinds:
        pytest.skip("no detector registered")
    kind = kinds[0]
    conf = cfg.load(defaults={"root": str(tmp_path)}, overrides=["%s.enabled=false" % kind,
                                                                 "%s.cooldown=5" % kind])
    assert conf.detectors[kind].enabled is False
    assert conf.detectors[kind].cooldown == 5


def test_help_config_lists_every_option():
    lines = cfg.describe_options()
    text = "\n".join(lines)
    for name in ("mqtt.port", "spool.max_items", "log.queue_lines", "intervals.heartbeat"):
        assert name in text
    for kind in cfg.detector_classes():
        assert "%s.cooldown" % kind in text


@pytest.mark.parametrize("override, message", [
    ("login.brutefore.threshold=5", "unknown detector login.brutefore in login.brutefore.threshold"
                                    " (from defaults and --set); did you mean login.bruteforce?"),
    ("conn.fanot.window=30", "did you mean conn.fanout?"),
    ("integrity.rom_shadow.enabled=0", "did you mean integrity.rom_shadowed?"),
    ("login.bruteforce.treshold=3", "did you mean login.bruteforce.threshold?"),
    ("mqtt.prt=1883", "unknown option mqtt.prt (from defaults and --set); did you mean mqtt.port?"),
    ("mqt.port=1883", "unknown option mqt.port (from defaults and --set); did you mean mqtt.port?"),
    ("logg.source=none", "did you mean log.source?"),
    ("intervals.hartbeat=10", "did you mean intervals.heartbeat?"),
])
def test_a_misspelled_name_names_the_closest_one(tmp_path, override, message):
    with pytest.raises(ConfigError) as err:
        cfg.load(defaults={"root": str(tmp_path)}, overrides=[override])
    assert message in str(err.value)
    assert "known:" not in str(err.value) and "known detectors" not in str(err.value)


def test_a_misspelled_detector_in_the_file_names_the_closest_one(tmp_path):
    path = write(tmp_path, {"root": str(tmp_path), "detectors": {"login.sprey": {}}})
    with pytest.raises(ConfigError, match=r"unknown detector login\.sprey .*did you mean "
                                          r"login\.spray\?"):
        cfg.load(path)


def test_a_name_like_nothing_known_lists_what_is_known(tmp_path):
    with pytest.raises(ConfigError) as err:
        cfg.load(defaults={"root": str(tmp_path)}, overrides=["login.zzzzzzzz.x=1"])
    assert "known detectors: login.bruteforce, " in str(err.value)
