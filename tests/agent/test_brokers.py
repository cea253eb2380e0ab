"""mqtt.host's broker list: host[:port] entries separated by commas, parsed strictly."""
import pytest
from hypothesis import given, strategies as st

from routerwatch.brokers import MAX_BROKERS, parse_brokers
from routerwatch.config import ConfigError, load


def test_entries_keep_their_order_and_take_mqtt_port_unless_they_name_one():
    assert parse_brokers(" node1 ,node2:1884,[fd00::1]:8883,fd00::2,10.0.0.1", 1883) == (
        ("node1", 1883), ("node2", 1884), ("fd00::1", 8883), ("fd00::2", 1883),
        ("10.0.0.1", 1883))


def test_the_same_node_twice_is_tried_once():
    assert parse_brokers("a,b,a:1883", 1883) == (("a", 1883), ("b", 1883))


@pytest.mark.parametrize("text, message", [
    ("a,,b", "empty broker entry"),
    ("a,", "empty broker entry"),
    ("a:", "a port must follow"),
    ("a:0", "1-65535"),
    ("a:65536", "1-65535"),
    ("a:1x", "1-65535"),
    ("a:\u0661\u0662", "1-65535"),          # Arabic-Indic digits are digits, not a port
    ("a b", "the host must be"),
    ("a\nb", "the host must be"),
    ("[example]:1", "IPv6"),
    ("[::1]1883", "only ':port'"),
    ("[::1", "IPv6"),
    ("x" * 254, "at most 253"),
    (",".join("n%d" % i for i in range(MAX_BROKERS + 1)), "at most %d brokers" % MAX_BROKERS),
])
def test_bad_entries_are_refused_naming_the_entry(text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        parse_brokers(text, 1883)


def test_the_config_error_names_the_option_and_the_entry(tmp_path):
    with pytest.raises(ConfigError) as error:
        load(defaults={"root": str(tmp_path)}, overrides=["mqtt.host=a:1883,b:70000"])
    assert str(error.value) == ("config error: mqtt.host: broker 'b:70000': the port must be "
                                "1-65535 (from defaults and --set)")


def test_a_uci_list_joined_by_the_init_script_is_accepted(tmp_path):
    config = load(defaults={"root": str(tmp_path), "mqtt": {"host": "a,b:1884", "port": "8883"}})
    assert config.mqtt.host == "a,b:1884"


@given(st.text(max_size=300))
def test_any_text_parses_to_bounded_valid_brokers_or_raises_valueerror(text):
    try:
        brokers = parse_brokers(text, 1883)
    except ValueError:
        return
    assert 1 <= len(brokers) <= MAX_BROKERS
    for host, port in brokers:
        assert host and host.isascii() and host.isprintable() and " " not in host
        assert 1 <= port <= 65535
