"""files/routerwatch.init under busybox ash with the OpenWrt test doubles (tests/openwrt/shim):
UCI options become the agent's JSON config, procd is asked for the right instance, a reload
sends HUP, and a bad value is one clear line in the log with no instance started."""
import json
import re
import stat
from dataclasses import fields

import pytest

from routerdouble import FILES, RouterDouble, busybox
from routerwatch import config as agent_config
from routerwatch.config import AgentConfig


@pytest.fixture
def router(tmp_path):
    busybox()
    return RouterDouble(tmp_path)


MINIMAL = """
config agent 'agent'
	option enabled '1'

config mqtt 'mqtt'
	option host 'broker.example'
"""


def instance_params(calls):
    """{param: [args, ...]} of the procd_set_param/append_param calls inside the instance."""
    params = {}
    inside = False
    for name, args in calls:
        if name == "procd_open_instance":
            inside = True
        elif name == "procd_close_instance":
            inside = False
        elif inside and name == "procd_set_param":
            params.setdefault(args[0], []).append(list(args[1:]))
        elif inside and name == "procd_append_param":
            params[args[0]][-1].extend(args[1:])
    return params


def load_written(router):
    return agent_config.load(str(router.config_json), defaults={"root": str(router.root)})


def test_shipped_config_starts_the_agent_with_the_defaults(router):
    result = router.initscript("start")
    assert result.returncode == 0, result.stderr
    conf = load_written(router)
    defaults = agent_config.load(defaults={"root": str(router.root)})
    assert conf == defaults, "files/routerwatch.config must only show the defaults"
    assert router.syslog() == ""


def test_procd_gets_command_respawn_output_file_and_reload_trigger(router):
    router.write_uci(MINIMAL)
    assert router.initscript("start").returncode == 0
    calls = router.procd_calls()
    names = [name for name, _ in calls]
    assert names[0] == "procd_open_service" and calls[0][1][0] == "routerwatch"
    assert names.count("procd_open_instance") == 1
    assert names[-2:] == ["procd_add_reload_trigger", "procd_close_service"]
    assert calls[-2][1] == ("routerwatch",)
    params = instance_params(calls)
    json_path = str(router.config_json)
    assert params["command"] == [[str(router.env()["SHIM_PROG"]), "--config", json_path]]
    assert params["respawn"] == [["3600", "5", "5"]]
    assert params["stdout"] == [["1"]] and params["stderr"] == [["1"]]
    assert params["file"] == [[json_path]]
    assert params["env"] == [["PYTHONPYCACHEPREFIX=%s/pycache" % router.run_dir]]


def test_config_is_private_because_it_may_hold_the_mqtt_password(router):
    router.write_uci(MINIMAL + "\toption password 'secret'\n")
    assert router.initscript("start").returncode == 0
    assert stat.S_IMODE(router.config_json.stat().st_mode) == 0o600
    assert stat.S_IMODE(router.run_dir.stat().st_mode) == 0o700


def test_uci_options_become_the_agents_json(router):
    kind, cls = next(iter(agent_config.detector_classes().items()))
    int_option = next(f for f in fields(cls.Config) if f.type in (int, "int")
                      and f.name != "cooldown")
    low = f_min = int_option.metadata["min"]
    router.write_uci("""
config agent 'agent'
	option device_id 'edge-17'
	option prefix 'isp/routers'
	list router_addresses '192.0.2.1'
	list router_addresses '2001:db8::1'

config mqtt 'mqtt'
	option host 'broker.example'
	option port '8883'
	option tls 'yes'
	option username 'router'
	option password 'p"a\\ss\tw$rd'\\''!'

config spool 'spool'
	option mode 'tmp'
	option max_items '200'

config watchers 'watchers'
	option processes '0'

config intervals 'intervals'
	option heartbeat '30'

config detector '%(section)s'
	option enabled 'off'
	option %(option)s '%(value)d'
""" % {"section": kind.replace(".", "_"), "option": int_option.name, "value": low})
    result = router.initscript("start")
    assert result.returncode == 0, result.stderr + router.syslog()
    raw = json.loads(router.config_json.read_text())
    # UCI holds text; the agent converts each value by the type config.py declares for it
    assert raw["mqtt"]["port"] == "8883"
    assert raw["mqtt"]["password"] == "p\"a\\ss\tw$rd'!"
    assert "\\u0009" in router.config_json.read_text(), "control characters are escaped"
    conf = load_written(router)
    assert conf.device_id == "edge-17" and conf.prefix == "isp/routers"
    assert conf.router_addresses == "192.0.2.1,2001:db8::1"
    assert (conf.mqtt.host, conf.mqtt.port, conf.mqtt.tls) == ("broker.example", 8883, True)
    assert conf.mqtt.username == "router"
    assert conf.mqtt.password == "p\"a\\ss\tw$rd'!"
    assert (conf.spool.mode, conf.spool.max_items) == ("tmp", 200)
    assert conf.watchers.processes is False and conf.watchers.logins is True
    assert conf.intervals.heartbeat == 30
    assert conf.detectors[kind].enabled is False
    assert getattr(conf.detectors[kind], int_option.name) == f_min
    assert "enabled" not in raw and "verbose" not in raw, "the init script's own options"


def test_detector_section_names_the_kind_with_the_first_underscore_as_dot(router):
    kinds = [k for k in agent_config.detector_classes() if "_" in k.split(".", 1)[1]]
    if not kinds:
        pytest.skip("no registered detector has '_' in its name")
    kind = kinds[0]
    router.write_uci(MINIMAL + "\nconfig detector '%s'\n\toption enabled '0'\n"
                     % kind.replace(".", "_"))
    assert router.initscript("start").returncode == 0, router.syslog()
    assert load_written(router).detectors[kind].enabled is False


def test_option_kind_names_a_detector_outright(router):
    kind = next(iter(agent_config.detector_classes()))
    router.write_uci(MINIMAL + "\nconfig detector 'mine'\n\toption kind '%s'\n"
                     "\toption cooldown '5'\n" % kind)
    assert router.initscript("start").returncode == 0, router.syslog()
    assert load_written(router).detectors[kind].cooldown == 5


def test_bad_value_is_one_clear_log_line_and_no_instance(router):
    router.write_uci(MINIMAL + "\toption port '70000'\n")
    result = router.initscript("start")
    assert result.returncode != 0
    assert router.syslog() == ("daemon.err routerwatch: config error: mqtt.port must be 1-65535, "
                               "got 70000 (from /etc/config/routerwatch); not starting\n")
    names = [name for name, _ in router.procd_calls()]
    assert "procd_open_instance" not in names, "no instance: procd has nothing to respawn"
    # the reload trigger stays, so fixing the value and `uci commit` starts the agent
    assert "procd_add_reload_trigger" in names
    assert not router.config_json.exists()
    assert not (router.run_dir / "config.json.new").exists()


@pytest.mark.parametrize("uci, message", [
    (MINIMAL + "\toption portt '1883'\n", "unknown option mqtt.portt"),
    (MINIMAL + "\toption tls 'maybe'\n", "mqtt.tls must be true or false, got 'maybe'"),
    (MINIMAL + "\nconfig detector 'login_nonsense'\n\toption enabled '1'\n",
     "unknown detector login.nonsense"),
    (MINIMAL + "\nconfig mqtt 'second'\n\toption port '1'\n", "more than one 'mqtt' section"),
    (MINIMAL + "\nconfig detector 'login_bruteforce'\n\toption enabled '1'\n"
     "\nconfig detector 'x'\n\toption kind 'login.bruteforce'\n",
     "more than one 'detector login.bruteforce' section"),
    (MINIMAL + "\nconfig agent\n\toption prefix 'x'\n", "more than one 'agent' section"),
    (MINIMAL + "\nconfig spoool 'spoool'\n\toption mode 'ram'\n", "unknown option spoool"),
])
def test_typos_are_named(router, uci, message):
    router.write_uci(uci)
    assert router.initscript("start").returncode != 0
    log = router.syslog()
    assert message in log and log.startswith("daemon.err routerwatch: "), log
    assert "procd_open_instance" not in [name for name, _ in router.procd_calls()]


def test_disabled_starts_nothing(router):
    router.write_uci(MINIMAL.replace("option enabled '1'", "option enabled '0'"))
    assert router.initscript("start").returncode == 0
    assert "procd_open_instance" not in [name for name, _ in router.procd_calls()]
    assert "daemon.notice routerwatch: disabled" in router.syslog()


def test_verbose_adds_the_flag(router):
    router.write_uci(MINIMAL.replace("option enabled '1'", "option verbose '1'"))
    assert router.initscript("start").returncode == 0
    command = instance_params(router.procd_calls())["command"][0]
    assert command[-1] == "--verbose"


def test_reload_of_a_running_agent_rewrites_the_json_and_sends_hup(router):
    router.write_uci(MINIMAL)
    assert router.initscript("start").returncode == 0
    router.write_uci(MINIMAL + "\toption port '8883'\n")
    router.running = True
    router.clear_procd_log()
    result = router.initscript("reload")
    assert result.returncode == 0, result.stderr
    assert load_written(router).mqtt.port == 8883
    calls = router.procd_calls()
    assert ("procd_send_signal", ("routerwatch", "*", "HUP")) in calls
    assert "procd_open_instance" not in [name for name, _ in calls]


def test_bad_value_on_reload_keeps_the_running_config(router):
    router.write_uci(MINIMAL)
    assert router.initscript("start").returncode == 0
    before = router.config_json.read_text()
    router.write_uci(MINIMAL + "\toption port '0'\n")
    router.running = True
    router.clear_procd_log()
    assert router.initscript("reload").returncode != 0
    assert router.config_json.read_text() == before
    assert [name for name, _ in router.procd_calls()] == ["procd_running"]
    assert re.search(r"mqtt\.port must be 1-65535, got 0 .*the running agent keeps its previous "
                     r"configuration", router.syslog())


def test_reload_after_an_earlier_error_starts_the_agent(router):
    router.write_uci(MINIMAL + "\toption port '70000'\n")
    assert router.initscript("start").returncode != 0
    router.write_uci(MINIMAL + "\toption port '1883'\n")
    router.running = False
    router.clear_procd_log()
    assert router.initscript("reload").returncode == 0
    names = [name for name, _ in router.procd_calls()]
    assert "procd_open_instance" in names and "procd_send_signal" not in names


def test_enable_and_disable_link_the_script_into_rc_d(router):
    assert router.initscript("enable").returncode == 0
    rc_d = router.root / "etc/rc.d"
    assert sorted(p.name for p in rc_d.iterdir()) == ["K10routerwatch", "S99routerwatch"]
    assert (rc_d / "S99routerwatch").resolve() == router.init_path.resolve()
    assert router.initscript("disable").returncode == 0
    assert list(rc_d.iterdir()) == []


def test_init_script_follows_the_procd_conventions():
    text = (FILES / "routerwatch.init").read_text()
    assert text.startswith("#!/bin/sh /etc/rc.common\n")
    for line in ("USE_PROCD=1", "START=99", "STOP=10"):
        assert re.search(r"^%s$" % line, text, re.M), line
    for function in ("start_service", "service_triggers", "reload_service"):
        assert re.search(r"^%s\(\) \{$" % function, text, re.M), function


# --------------------------------------------------------------------------- the shipped config

def shipped_sections():
    """[(type, name, [(commented, keyword, option, value)])] of files/routerwatch.config."""
    sections = []
    for line in (FILES / "routerwatch.config").read_text().splitlines():
        match = re.match(r"^config (\w+) '(\w+)'$", line)
        if match:
            sections.append((match.group(1), match.group(2), []))
            continue
        match = re.match(r"^\t(#?)(option|list) (\w+) '([^']*)'$", line)
        if match and sections:
            sections[-1][2].append((match.group(1) == "#",) + match.groups()[1:])
    return sections


def test_shipped_detector_sections_name_registered_detectors():
    classes = agent_config.detector_classes()
    for type_, name, _options in shipped_sections():
        if type_ == "detector":
            kind = name.replace("_", ".", 1)
            assert kind in classes, "routerwatch.config has a section for unknown %s" % kind


def test_commented_detector_options_show_the_current_defaults():
    classes = agent_config.detector_classes()
    for type_, name, options in shipped_sections():
        if type_ != "detector":
            continue
        defaults = cls_defaults = {f.name: f.default
                                   for f in fields(classes[name.replace("_", ".", 1)].Config)}
        commented = {}
        for is_comment, keyword, option, value in options:
            if is_comment:
                commented.setdefault(option, []).append(value)
        for option, values in commented.items():
            assert option in cls_defaults, "%s: no option %s" % (name, option)
            default = defaults[option]
            shown = ",".join(values)
            if isinstance(default, bool):
                shown = shown in ("1", "true", "yes", "on")
            elif isinstance(default, (int, float)):
                shown = type(default)(shown)
            assert shown == default, "%s.%s: the comment shows %r, the default is %r" % (
                name, option, shown, default)


def test_shipped_config_sections_are_agent_sections():
    known = {f.name for f in fields(AgentConfig)} | {"agent", "detector"}
    for type_, name, _options in shipped_sections():
        assert type_ in known, type_
        if type_ != "detector":
            assert type_ == name, "named like its type: config %s '%s'" % (type_, type_)


def uci_value(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def test_every_option_of_the_agent_can_be_set_from_uci(router):
    """Each option of --help-config, written the UCI way at its default, comes back unchanged:
    the generic mapping reaches every section and no option name is taken by the init script."""
    lines = ["config agent 'agent'"]
    sections = []
    for f in fields(AgentConfig):
        if f.name == "detectors":
            continue
        default = f.default_factory() if callable(f.default_factory) else f.default
        if hasattr(default, "__dataclass_fields__"):
            sections.append((f.name, f.name, default))
        elif f.name != "root":      # the test's own root below
            lines.append("\toption %s '%s'" % (f.name, uci_value(default)))
    lines.append("\toption root '%s'" % router.root)
    for kind, cls in agent_config.detector_classes().items():
        sections.append(("detector", kind.replace(".", "_", 1), cls.Config()))
    for type_, name, instance in sections:
        lines += ["", "config %s '%s'" % (type_, name)]
        for f in fields(instance):
            lines.append("\toption %s '%s'" % (f.name, uci_value(getattr(instance, f.name))))
    router.write_uci("\n".join(lines) + "\n")
    result = router.initscript("start")
    assert result.returncode == 0, result.stderr + router.syslog()
    assert load_written(router) == agent_config.load(defaults={"root": str(router.root)})
    raw = json.loads(router.config_json.read_text())
    for f in fields(AgentConfig):      # none taken by the init script's own enabled/verbose/kind
        assert f.name in raw or f.name == "detectors" and not agent_config.detector_classes()
    assert set(raw["detectors"]) == set(agent_config.detector_classes())
    for kind, cls in agent_config.detector_classes().items():
        assert set(raw["detectors"][kind]) == {f.name for f in fields(cls.Config)}


def test_home_assistant_discovery_is_turned_on_from_uci(router):
    router.write_uci(MINIMAL + "\nconfig homeassistant 'homeassistant'\n\toption discovery '1'\n"
                     "\toption prefix 'homeassistant'\n")
    assert router.initscript("start").returncode == 0
    conf = load_written(router)
    assert conf.homeassistant.discovery is True and conf.homeassistant.prefix == "homeassistant"


def test_discovery_without_a_broker_is_refused_with_a_clear_line(router):
    router.write_uci("config agent 'agent'\n\toption enabled '1'\n\n"
                     "config homeassistant 'homeassistant'\n\toption discovery '1'\n")
    router.initscript("start")
    assert "homeassistant.discovery needs mqtt.host" in router.syslog()
    assert "procd_open_instance" not in [name for name, _ in router.procd_calls()]


def test_a_uci_list_of_brokers_becomes_the_agents_broker_list(router):
    router.write_uci("""
config agent 'agent'
	option enabled '1'

config mqtt 'mqtt'
	list host 'mqtt1.isp.example'
	list host 'mqtt2.isp.example:8883'
	list host '[2001:db8::5]:1884'
""")
    result = router.initscript("start")
    assert result.returncode == 0, result.stderr + router.syslog()
    conf = load_written(router)
    assert conf.mqtt.host == "mqtt1.isp.example,mqtt2.isp.example:8883,[2001:db8::5]:1884"
    from routerwatch.brokers import parse_brokers
    assert parse_brokers(conf.mqtt.host, conf.mqtt.port) == (
        ("mqtt1.isp.example", 1883), ("mqtt2.isp.example", 8883), ("2001:db8::5", 1884))
