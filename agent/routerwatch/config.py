"""Typed agent configuration: a JSON file (the OpenWrt init script writes it from UCI) plus
`--set section.option=value` overrides, validated with messages that name the option, the bad
value and the allowed range.

Layout of the JSON file (every key optional; the defaults are below, beside each option):

    {
      "device_id": "", "prefix": "routerwatch", "root": "/", ...,
      "log":       {"source": "logread", ...},
      "watchers":  {"logins": true, "connections": true, "processes": true, "integrity": true},
      "intervals": {"connections": 10, ...},
      "integrity": {...}, "mqtt": {...}, "spool": {...},
      "detectors": {"login.bruteforce": {"threshold": 5, ...}, ...}
    }

A value may also be a JSON string, as UCI stores it ("port": "8883", "tls": "1"): it is converted
by the option's declared type and checked against its range exactly like a --set value. The
OpenWrt init script relies on this and writes every UCI value as a string, so the types live here
alone.
"""
import difflib
import os
import re
from dataclasses import dataclass, field, fields, is_dataclass, replace

from . import jsonio
from .brokers import parse_brokers
from .contract import DEVICE_ID_RE, PREFIX_RE
from .detectors import detector_classes
from .options import option


class ConfigError(Exception):
    """Bad configuration; str() is the whole message for people (exit code 2)."""


@dataclass(frozen=True)
class LogConfig:
    source: str = option("logread", why="where login events come from",
                         choices=("logread", "file", "stdin", "none"))
    path: str = option("", why="the file to follow when source is 'file'")
    command: str = option("logread -f", why="the stream to follow when source is 'logread'")
    max_line_bytes: int = option(2048, 256, 65536,
                                 "longer lines are cut; logd itself caps messages at 1024 bytes")
    queue_lines: int = option(10000, 100, 1000000,
                              "lines waiting for the detectors; beyond this the oldest are dropped")
    restart_max_seconds: int = option(60, 1, 3600, "longest back-off before restarting logread")


@dataclass(frozen=True)
class WatchersConfig:
    logins: bool = option(True, why="dropbear and LuCI logins from the log")
    connections: bool = option(True, why="conntrack and listening sockets")
    processes: bool = option(True, why="executables in /tmp or deleted from disk")
    integrity: bool = option(True, why="overlay vs /rom, package checksums, baseline")


@dataclass(frozen=True)
class IntervalsConfig:
    connections: int = option(10, 1, 3600, "seconds between reads of conntrack and sockets")
    processes: int = option(30, 1, 3600, "seconds between process scans")
    integrity: int = option(900, 10, 86400, "seconds between overlay scans")
    heartbeat: int = option(60, 5, 3600, "seconds between heartbeats")
    inventory: int = option(21600, 60, 604800, "seconds between inventory refreshes")


@dataclass(frozen=True)
class ConnectionsConfig:
    max_flows: int = option(16384, 64, 1000000,
                            "router-originated and inbound conntrack entries kept per read; "
                            "beyond this they are counted (forwarded ones are only ever counted)")
    max_listeners: int = option(2048, 16, 100000,
                                "listening sockets kept per read; beyond this they are counted")


@dataclass(frozen=True)
class IntegrityConfig:
    baseline: str = option("", why="operator-supplied baseline manifest; empty = the state dir's")
    cpu_budget: float = option(2.0, 0.1, 600.0,
                               "CPU seconds one scan may spend hashing before it yields to the loop")
    max_file_bytes: int = option(64 * 1024 * 1024, 1024, 2 ** 40,
                                 "larger files are judged by size/mtime/inode only")
    max_files: int = option(50000, 100, 10000000,
                            "files the scan tracks (about 400 bytes each); the most important "
                            "are kept, and more than this is integrity.file_flood")


@dataclass(frozen=True)
class MqttConfig:
    host: str = option("", why="broker host name, or the nodes of a cluster as host[:port] "
                       "separated by commas (tried in turn: on a lost connection the agent "
                       "moves to the next); empty = print anomalies as JSON lines on stdout")
    port: int = option(1883, 1, 65535, "broker port (8883 is the usual TLS port)")
    protocol: str = option("3.1.1", why="MQTT protocol version", choices=("3.1.1", "5"))
    tls: bool = option(False, why="connect with TLS")
    ca_file: str = option("", why="CA certificate file for TLS; empty = the system store")
    cert_file: str = option("", why="client certificate for mutual TLS")
    key_file: str = option("", why="client key for mutual TLS")
    tls_insecure: bool = option(False, why="skip the server host name check (testing only)")
    username: str = option("", why="broker user name")
    password: str = option("", why="broker password")
    keepalive: int = option(60, 5, 3600, "seconds between MQTT keepalives")
    queue_messages: int = option(1000, 10, 100000,
                                 "messages in flight to the client before the spool takes over")


@dataclass(frozen=True)
class SpoolConfig:
    mode: str = option("ram", why="where undelivered anomalies wait: RAM, a file under /tmp "
                       "(survives an agent restart) or on flash (survives a reboot)",
                       choices=("ram", "tmp", "flash"))
    path: str = option("", why="spool file; empty = /tmp/routerwatch/spool or <state_dir>/spool")
    max_items: int = option(5000, 10, 1000000, "anomalies kept; beyond this the oldest "
                            "low-severity ones are dropped (and counted)")
    max_bytes: int = option(2 * 1024 * 1024, 16 * 1024, 256 * 1024 * 1024,
                            "size cap of the spool file")
    flash_flush_seconds: int = option(300, 10, 86400,
                                      "flash mode writes in batches at most this often")


@dataclass(frozen=True)
class HomeAssistantConfig:
    discovery: bool = option(False, why="announce this router and its entities to Home Assistant "
                             "by MQTT discovery (needs mqtt.host)")
    prefix: str = option("homeassistant", why="Home Assistant's discovery prefix")
    hold_time: int = option(86400, 60, 30 * 86400,
                            "seconds 'Compromise suspected' stays on after a high or critical "
                            "anomaly: a day, so one at night is still on in the morning")
    quiet_log_seconds: int = option(21600, 60, 30 * 86400,
                                    "a followed log without a line this long is a watcher "
                                    "problem (a router logs DHCP and cron lines every few hours)")
    configuration_url: str = option("", why="link on the device page; empty = LuCI at the "
                                    "address the agent reaches the broker from")


@dataclass(frozen=True)
class AgentConfig:
    device_id: str = option("", why="stable device id; empty = derived from the board's MAC")
    prefix: str = option("routerwatch", why="MQTT topic prefix")
    root: str = option("/", why="root prefix every source reads under (tests use a fixture tree)")
    state_dir: str = option("/etc/routerwatch", why="on flash: baseline, seen sources, device id")
    run_dir: str = option("/tmp/routerwatch", why="in RAM: state that may be lost on reboot")
    router_addresses: str = option("", why="extra addresses (comma separated) that are the router's own")
    lan_networks: str = option("", why="extra networks (comma separated, CIDR) on the owner's side, "
                               "besides RFC 1918, ULA, link-local, loopback and the networks of "
                               "the router's LAN interfaces (read from its routes)")
    log: LogConfig = field(default_factory=LogConfig)
    watchers: WatchersConfig = field(default_factory=WatchersConfig)
    intervals: IntervalsConfig = field(default_factory=IntervalsConfig)
    connections: ConnectionsConfig = field(default_factory=ConnectionsConfig)
    integrity: IntegrityConfig = field(default_factory=IntegrityConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    detectors: dict = field(default_factory=dict)   # kind -> that detector's Config instance

    def state_file(self, name):
        """Where a file of the state dir lives on this machine. The default state dir belongs
        to the router being watched, so with a root prefix (--root, a fixture tree) it is taken
        under that root and a scan of a copied tree never writes into this machine's own /etc;
        a state dir set explicitly is used as given."""
        state_dir = self.state_dir
        if state_dir == AgentConfig.state_dir and self.root not in ("", "/"):
            state_dir = os.path.join(self.root, state_dir.lstrip("/"))
        return os.path.join(state_dir, name)


# --------------------------------------------------------------------------- building

def _describe_range(meta):
    if meta.get("choices"):
        return "one of " + ", ".join(meta["choices"])
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and hi is not None:
        return "%s-%s" % (lo, hi)
    if lo is not None:
        return "at least %s" % lo
    if hi is not None:
        return "at most %s" % hi
    return ""


def _coerce(value, kind, name, meta, origin):
    """Check (and for --set strings, convert) one value against its declared type and range."""
    def fail(expected):
        raise ConfigError("config error: %s must be %s, got %s (from %s)"
                          % (name, expected, _show(value), origin))

    if kind is bool:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on", "enabled"):
                return True
            if lowered in ("0", "false", "no", "off", "disabled"):
                return False
        if isinstance(value, bool):
            return value
        fail("true or false")
    if kind in (int, float):
        if isinstance(value, str):
            try:
                value = kind(value.strip()) if kind is int else float(value.strip())
            except ValueError:
                fail("a number" + (" " + _describe_range(meta) if _describe_range(meta) else ""))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail("a number")
        if kind is int and isinstance(value, float):
            if not value.is_integer():
                fail("a whole number")
            value = int(value)
        lo, hi = meta.get("min"), meta.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            fail(_describe_range(meta))
        return kind(value)
    if kind is str:
        if not isinstance(value, str):
            fail("a string")
        if len(value) > 4096 or "\x00" in value:
            fail("a string of at most 4096 characters")
        if meta.get("choices") and value not in meta["choices"]:
            fail(_describe_range(meta))
        return value
    raise ConfigError("config error: %s has an unsupported type" % name)  # pragma: no cover


def _show(value):
    text = repr(value) if isinstance(value, str) else jsonio.dumps(value) if not isinstance(
        value, bool) else ("true" if value else "false")
    return text if len(text) <= 80 else text[:77] + "..."


def _type_of(f):
    types = {"int": int, "float": float, "str": str, "bool": bool}
    return types.get(f.type, f.type) if isinstance(f.type, str) else f.type


def build_section(cls, raw, where, origin):
    """Dataclass instance from a dict, every key checked; unknown keys are errors (typos)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("config error: %s must be an object, got %s (from %s)"
                          % (where or "the config", _show(raw), origin))
    known = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in known or key == "detectors":
            if key == "detectors" and cls is AgentConfig:
                continue
            raise _unknown_option(where, key, raw[key], known, origin)
    values = {}
    for name, f in known.items():
        if name == "detectors" or name not in raw:
            continue
        full = "%s.%s" % (where, name) if where else name
        kind = _type_of(f)
        if is_dataclass(kind):
            values[name] = build_section(kind, raw[name], full, origin)
        else:
            values[name] = _coerce(raw[name], kind, full, dict(f.metadata), origin)
    return cls(**values)


def _closest(name, candidates):
    """The known name nearest to a misspelled one (difflib's ratio), or None."""
    if not isinstance(name, str):
        return None
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return match[0] if match else None


def _did_you_mean(name, candidates, what):
    """The end of an 'unknown ...' message: the nearest known name, else the list of them."""
    match = _closest(name, candidates)
    if match:
        return "did you mean %s?" % match
    return "known %s: %s" % (what, ", ".join(candidates))


def _first_leaf(path, value):
    """'login.brutefore' + {"threshold": 5} -> 'login.brutefore.threshold': the whole name a
    --set or a JSON file gave, so a misspelling is compared with whole option names."""
    while isinstance(value, dict) and len(value) == 1:
        key, value = next(iter(value.items()))
        path = "%s.%s" % (path, key)
    return path


def _unknown_option(where, key, value, known, origin):
    """The ConfigError for a key no section declares, naming the nearest known option; a key
    that looks like a misspelled detector (login.brutefore.threshold) names that detector."""
    full = "%s.%s" % (where, key) if where else str(key)
    whole = _first_leaf(full, value)
    parts = whole.split(".")
    kinds = detector_classes()
    if len(parts) >= 3 and where.count(".") < 1:
        # sections are one level deep (mqtt.port): a longer name is a detector's option
        return ConfigError("config error: unknown detector %s in %s (from %s); %s" % (
            ".".join(parts[:2]), whole, origin,
            _did_you_mean(".".join(parts[:2]), kinds, "detectors")))
    if where:
        hint = _did_you_mean(key, known, "options of %s" % where)
        if hint.startswith("did you mean"):
            hint = "did you mean %s.%s?" % (where, _closest(key, known))
        return ConfigError("config error: unknown option %s (from %s); %s" % (full, origin, hint))
    match = _closest(whole, [line.split()[0] for line in describe_options()])
    if match is None:
        match = _closest(key, [name for name in known if name != "detectors"])
    hint = ("did you mean %s?" % match if match
            else "known: %s, or a detector (%s)" % (", ".join(n for n in known if n != "detectors"),
                                                    ", ".join(kinds)))
    return ConfigError("config error: unknown option %s (from %s); %s" % (whole, origin, hint))


def _build_detectors(raw, origin):
    classes = detector_classes()
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("config error: detectors must be an object (from %s)" % origin)
    for kind in raw:
        if kind not in classes:
            raise ConfigError("config error: unknown detector %s (from %s); %s"
                              % (kind, origin, _did_you_mean(kind, classes, "detectors")))
    return {kind: build_section(cls.Config, raw.get(kind), kind, origin)
            for kind, cls in classes.items()}


def _apply_override(raw, text, classes):
    """'section.option=value' or '<detector kind>.option=value' into the raw dict."""
    if "=" not in text:
        raise ConfigError("config error: --set wants option=value, got %r" % text)
    path, value = text.split("=", 1)
    parts = path.strip().split(".")
    for kind in classes:
        kind_parts = kind.split(".")
        if parts[: len(kind_parts)] == kind_parts and len(parts) == len(kind_parts) + 1:
            raw.setdefault("detectors", {}).setdefault(kind, {})[parts[-1]] = value
            return
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError("config error: %s is not a section (from --set)" % part)
        node = child
    node[parts[-1]] = value


def load(path=None, overrides=(), defaults=None):
    """AgentConfig from an optional JSON file, then --set overrides (strings, coerced by type).

    `defaults` is a dict applied before the file (the command line's own options, e.g. --root).
    """
    raw = {}
    origin = "defaults"
    if defaults:
        raw.update(defaults)
    if path:
        origin = path
        try:
            with open(path, "rb") as handle:
                data = handle.read(1024 * 1024 + 1)
        except OSError as exc:
            raise ConfigError("config error: cannot read %s: %s" % (path, exc.strerror))
        if len(data) > 1024 * 1024:
            raise ConfigError("config error: %s is larger than 1 MiB" % path)
        try:
            loaded = jsonio.loads(data)
        except ValueError as exc:
            raise ConfigError("config error: %s is not valid JSON: %s" % (path, exc))
        if not isinstance(loaded, dict):
            raise ConfigError("config error: %s must hold a JSON object" % path)
        _merge(raw, loaded)
    classes = detector_classes()
    for text in overrides:
        _apply_override(raw, text, classes)
    if overrides:
        origin = "%s and --set" % origin
    config = build_section(AgentConfig, raw, "", origin)
    config = replace(config, detectors=_build_detectors(raw.get("detectors"), origin))
    _check_cross_fields(config, origin)
    return config


def _merge(into, new):
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _check_cross_fields(config, origin):
    if config.device_id and not DEVICE_ID_RE.match(config.device_id):
        raise ConfigError("config error: device_id must be 1-64 characters of A-Z a-z 0-9 _ . : -"
                          ", got %s (from %s)" % (_show(config.device_id), origin))
    if not PREFIX_RE.match(config.prefix):
        raise ConfigError("config error: prefix must be topic levels of A-Z a-z 0-9 _ -, got %s "
                          "(from %s)" % (_show(config.prefix), origin))
    if config.log.source == "file" and not config.log.path:
        raise ConfigError("config error: log.path must name a file when log.source is 'file' "
                          "(from %s)" % origin)
    if (config.mqtt.cert_file == "") != (config.mqtt.key_file == ""):
        raise ConfigError("config error: mqtt.cert_file and mqtt.key_file go together (from %s)"
                          % origin)
    if config.mqtt.host:
        try:
            parse_brokers(config.mqtt.host, config.mqtt.port)
        except ValueError as exc:
            raise ConfigError("config error: mqtt.host: %s (from %s)" % (exc, origin))
    if config.homeassistant.discovery and not config.mqtt.host:
        raise ConfigError("config error: homeassistant.discovery needs mqtt.host, the broker "
                          "Home Assistant uses (from %s)" % origin)
    if not PREFIX_RE.match(config.homeassistant.prefix):
        raise ConfigError("config error: homeassistant.prefix must be topic levels of A-Z a-z 0-9"
                          " _ -, got %s (from %s)" % (_show(config.homeassistant.prefix), origin))
    url = config.homeassistant.configuration_url
    if url and not re.match(r"\Ahttps?://[^\s/]+(/\S*)?\Z", url):
        raise ConfigError("config error: homeassistant.configuration_url must be an http:// or "
                          "https:// URL, got %s (from %s)" % (_show(url), origin))
    if not os.path.isdir(config.root):
        raise ConfigError("config error: root %s is not a directory (from %s)"
                          % (_show(config.root), origin))


def describe_options():
    """Lines for --help-config: every option with its default, range and reason."""
    lines = []

    def walk(cls, where):
        for f in fields(cls):
            if f.name == "detectors":
                continue
            kind = _type_of(f)
            full = "%s.%s" % (where, f.name) if where else f.name
            if is_dataclass(kind):
                walk(kind, full)
                continue
            meta = dict(f.metadata)
            default = f.default
            rng = _describe_range(meta)
            lines.append("  %-34s default %-12s %s%s" % (
                full, _show(default), meta.get("why", ""), " (%s)" % rng if rng else ""))

    walk(AgentConfig, "")
    for kind, cls in detector_classes().items():
        walk(cls.Config, kind)
    return lines
