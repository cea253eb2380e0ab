"""Home Assistant MQTT discovery: the router appears in Home Assistant as a device with its
entities, with no collector and no YAML (homeassistant.discovery, off by default).

What is published, on the broker connection of the MQTT sink (mqtt.py does the I/O):

    <ha>/<component>/<node>/<object>/config   retained discovery config per entity, sent on every
                                              connect, again when Home Assistant announces itself
                                              (<ha>/status = online) and when the inventory changes
    <prefix>/<device>/homeassistant           retained JSON with what the agent judges for Home
                                              Assistant: compromise suspected (and the anomaly
                                              behind it), anomalies per severity in the last 24 h,
                                              each watcher's health

Everything else comes from the contract's own topics, which nothing here changes: the "Security
event" entity reads `<prefix>/<device>/anomaly`, the memory, CPU and spool sensors read the
heartbeat, and every entity's availability is the retained status with its Last Will, so the
whole device shows `unavailable` when the agent dies. The collector subscribes to
`<prefix>/+/{anomaly,heartbeat,status,inventory}` only and never sees the extra topic.

Ids: Home Assistant allows `[a-zA-Z0-9_-]` in node and object ids; a device id may also hold '.'
and ':', which become '_'. Every entity has a unique_id (`routerwatch_<node>_<object>`).

Small on the router: the configs are built when they are sent (a few per connect) and not kept;
the state is one dict, the 24 h counts 24 hourly buckets of five counters.

The latest serious anomaly and the counts are kept in run_dir (RAM) as well, written when they
change (at most once per heartbeat, at once for a serious anomaly): an attacker who kills the
agent and lets procd start it again must not switch "Compromise suspected" off.
"""
import logging
import math
import os
import re
from collections import deque

from .. import __version__, jsonio
from ..contract import KIND_RE, MAX_SUMMARY_CHARS, SEVERITIES, topic

log = logging.getLogger("routerwatch")

ORIGIN = {"name": "routerwatch", "sw_version": __version__}
STATE_LEVEL = "homeassistant"      # <prefix>/<device>/homeassistant
SERIOUS = ("high", "critical")
HOUR = 3600
WATCHER_NAMES = {"logins": "Login watcher", "connections": "Connection watcher",
                 "processes": "Process watcher", "integrity": "Integrity watcher"}
_ID_RE = re.compile(r"[^a-zA-Z0-9_-]")


def ha_id(text):
    """An id Home Assistant accepts in a discovery topic: [a-zA-Z0-9_-]."""
    return _ID_RE.sub("_", text)


class HomeAssistantDiscovery:
    """The discovery configs and the retained state for one device. Not thread-safe: the MQTT
    sink calls it under its lock."""

    def __init__(self, config, device_id, event_types, hold_time=None):
        self.settings = config.homeassistant
        self.prefix = config.prefix
        self.device_id = device_id
        self.node = ha_id(device_id)
        self.event_types = sorted(event_types)
        self.hold_time = self.settings.hold_time if hold_time is None else hold_time
        self.watchers = [name for name in WATCHER_NAMES if getattr(config.watchers, name)]
        self.anomaly_topic = topic(self.prefix, device_id, "anomaly")
        self.heartbeat_topic = topic(self.prefix, device_id, "heartbeat")
        self.status_topic = topic(self.prefix, device_id, "status")
        self.state_topic = "%s/%s/%s" % (self.prefix, device_id, STATE_LEVEL)
        self.birth_topic = "%s/status" % self.settings.prefix
        self.inventory = None             # the latest Inventory, for the device block
        self.local_address = ""           # the agent's address towards the broker (for LuCI)
        self.latest_serious = None        # {"kind", "severity", "summary", "time"}
        self._buckets = deque(maxlen=24)  # [hour, [count per severity]]
        self._health = {name: "" for name in self.watchers}   # watcher -> problem ("" = ok)
        self.state_file = os.path.join(config.run_dir, "homeassistant.json")
        self._unsaved = False
        self._load()

    # ------------------------------------------------------------------ what happens
    def observe_anomaly(self, anomaly):
        """Count it, and remember it when it is high or critical. Returns True (state changed)."""
        hour = int(anomaly.time // HOUR)
        if not self._buckets or self._buckets[-1][0] < hour:
            self._buckets.append([hour, [0] * len(SEVERITIES)])
        for bucket_hour, counts in reversed(self._buckets):
            if bucket_hour <= hour:      # a late one joins its hour, or the newest one
                counts[SEVERITIES.index(anomaly.severity)] += max(1, anomaly.count)
                break
        self._unsaved = True
        if anomaly.severity in SERIOUS and (self.latest_serious is None
                                            or anomaly.time >= self.latest_serious["time"]):
            self.latest_serious = {"kind": anomaly.kind, "severity": anomaly.severity,
                                   "summary": anomaly.summary, "time": anomaly.time}
            self.save()
        return True

    # ------------------------------------------------------------------ kept across restarts
    def save(self):
        """Write the latest serious anomaly and the counts to run_dir (RAM), if they changed."""
        if not self._unsaved:
            return
        self._unsaved = False
        data = {"latest": self.latest_serious or {}, "buckets": list(self._buckets)}
        temporary = self.state_file + ".new"
        try:
            os.makedirs(os.path.dirname(self.state_file), mode=0o700, exist_ok=True)
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(jsonio.dumps(data))
            os.replace(temporary, self.state_file)
        except OSError as exc:
            log.warning("cannot keep the Home Assistant state in %s: %s", self.state_file, exc)

    def _load(self):
        """What an earlier run of the agent kept; anything malformed is ignored as a whole."""
        try:
            with open(self.state_file, "rb") as handle:
                data = jsonio.loads(handle.read(16 * 1024 + 1))
            latest, buckets = data["latest"], data["buckets"]
            if latest:
                checked = {"kind": latest["kind"], "severity": latest["severity"],
                           "summary": latest["summary"], "time": float(latest["time"])}
                if not (isinstance(checked["kind"], str) and KIND_RE.match(checked["kind"])
                        and checked["severity"] in SERIOUS and isinstance(checked["summary"], str)
                        and len(checked["summary"]) <= MAX_SUMMARY_CHARS
                        and math.isfinite(checked["time"])):
                    raise ValueError("latest")
                latest = checked
            kept = deque(maxlen=24)
            for hour, counts in buckets[-24:]:
                if not (isinstance(hour, int) and len(counts) == len(SEVERITIES)
                        and all(isinstance(n, int) and 0 <= n < 2 ** 53 for n in counts)):
                    raise ValueError("buckets")
                kept.append([hour, list(counts)])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("ignoring %s: %s", self.state_file, exc)
            return
        self.latest_serious = latest or None
        self._buckets = kept

    def observe_health(self, problems):
        """{watcher: problem text, "" when healthy}; True when any changed."""
        changed = False
        for name in self.watchers:
            problem = problems.get(name, "")
            if self._health.get(name) != problem:
                self._health[name] = problem
                changed = True
        return changed

    def observe_inventory(self, inventory):
        """True when the device block changes (the configs are then sent again)."""
        before = self.device()
        self.inventory = inventory
        return self.device() != before

    def compromised(self, now):
        latest = self.latest_serious
        return latest is not None and now - latest["time"] < self.hold_time

    def counts_24h(self, now):
        oldest = int(now // HOUR) - 23
        totals = [0] * len(SEVERITIES)
        for hour, counts in self._buckets:
            if hour >= oldest:
                totals = [a + b for a, b in zip(totals, counts)]
        return dict(zip(SEVERITIES, totals))

    # ------------------------------------------------------------------ messages
    def state_payload(self, now):
        latest = self.latest_serious
        state = {
            "compromise": "ON" if self.compromised(now) else "OFF",
            "latest": dict(latest) if latest else {},
            "anomalies_24h": self.counts_24h(now),
            "watchers": {name: {"problem": "ON" if self._health[name] else "OFF",
                                "reason": self._health[name]} for name in self.watchers},
        }
        return jsonio.dumps(state).encode("utf-8")

    def device(self):
        firmware = dict(self.inventory.firmware) if self.inventory is not None else {}
        block = {"identifiers": [self.device_id], "name": self.device_id,
                 "sw_version": __version__}
        model = str(firmware.get("model") or "")
        board = str(firmware.get("board") or "")
        if model:
            block["model"] = model
            block["manufacturer"] = model.split()[0] if " " in model else model
        elif board:
            block["manufacturer"] = board.split(",")[0]
        if board:
            block["model_id"] = board
        release = firmware.get("DISTRIB_DESCRIPTION") or " ".join(
            str(firmware[k]) for k in ("DISTRIB_ID", "DISTRIB_RELEASE") if firmware.get(k))
        if release:
            block["hw_version"] = str(release)
        url = self.configuration_url()
        if url:
            block["configuration_url"] = url
        return block

    def configuration_url(self):
        if self.settings.configuration_url:
            return self.settings.configuration_url
        address = self.local_address
        if not address:
            return ""
        if ":" in address:
            address = "[%s]" % address.split("%", 1)[0]
        return "http://%s/cgi-bin/luci/" % address

    def _entity(self, component, key, name, **fields):
        config = {
            "name": name,
            "unique_id": "routerwatch_%s_%s" % (self.node, key),
            "availability": [{"topic": self.status_topic,
                              "value_template": "{{ value_json.state }}",
                              "payload_available": "online",
                              "payload_not_available": "offline"}],
            "device": self.device(),
            "origin": ORIGIN,
        }
        config.update(fields)
        config_topic = "%s/%s/%s/%s/config" % (self.settings.prefix, component, self.node, key)
        return config_topic, jsonio.dumps(config).encode("utf-8")

    def discovery_messages(self):
        """[(topic, payload)] of every entity's retained config."""
        state = self.state_topic
        messages = [
            self._entity("binary_sensor", "compromise", "Compromise suspected",
                         device_class="problem", state_topic=state,
                         value_template="{{ value_json.compromise }}",
                         json_attributes_topic=state,
                         json_attributes_template="{{ value_json.latest | to_json }}"),
            self._entity("event", "security_event", "Security event",
                         state_topic=self.anomaly_topic, event_types=self.event_types,
                         icon="mdi:shield-alert",
                         # one event per anomaly; its kind is the event type
                         value_template=(
                             "{{ {'event_type': value_json.kind, 'severity': value_json.severity,"
                             " 'summary': value_json.summary, 'count': value_json.count,"
                             " 'evidence': value_json.evidence} | to_json }}")),
        ]
        for severity in SEVERITIES:
            messages.append(self._entity(
                "sensor", "anomalies_24h_%s" % severity, "Anomalies 24 h %s" % severity,
                state_topic=state, state_class="measurement", icon="mdi:shield-search",
                value_template="{{ value_json.anomalies_24h.%s }}" % severity))
        messages += [
            self._entity("sensor", "spool_depth", "Spool depth",
                         state_topic=self.heartbeat_topic, state_class="measurement",
                         entity_category="diagnostic", icon="mdi:tray-full",
                         value_template="{{ value_json.spool_depth }}"),
            self._entity("sensor", "memory", "Agent memory",
                         state_topic=self.heartbeat_topic, device_class="data_size",
                         unit_of_measurement="KiB", state_class="measurement",
                         entity_category="diagnostic",
                         value_template="{{ value_json.rss_kb }}"),
            self._entity("sensor", "cpu", "Agent CPU",
                         state_topic=self.heartbeat_topic, unit_of_measurement="%",
                         state_class="measurement", entity_category="diagnostic",
                         icon="mdi:cpu-32-bit", value_template="{{ value_json.cpu_percent }}"),
        ]
        for name in self.watchers:
            messages.append(self._entity(
                "binary_sensor", "watcher_%s" % name, WATCHER_NAMES[name],
                device_class="problem", entity_category="diagnostic", state_topic=state,
                value_template="{{ value_json.watchers.%s.problem }}" % name,
                json_attributes_topic=state,
                json_attributes_template="{{ value_json.watchers.%s | to_json }}" % name))
        return messages
