"""The MQTT publisher: anomalies, heartbeats, status and inventory per routerwatch.contract.

    <prefix>/<device>/anomaly     QoS 1, through the spool, removed from it only on PUBACK
    <prefix>/<device>/heartbeat   QoS 0, only while connected (a missed one is counted in drops)
    <prefix>/<device>/status      QoS 1, retained: "online" on every connect; the Last Will is a
                                  retained "offline" with seq 0; a clean close sends "offline" too
    <prefix>/<device>/inventory   QoS 1, retained; kept until the broker has acknowledged it

With homeassistant.discovery on, the same connection also carries Home Assistant's discovery
configs and the agent's retained state for it (homeassistant.py says what and why), and listens
to Home Assistant's birth message (<homeassistant prefix>/status = online) to send the configs
again.

Threads: send_*() only hand over (the spool, or a one-message slot) and wake the publisher
thread; they never touch the network, so the detection loop never waits on the broker. The
publisher thread is the only caller of paho's publish(); paho's own network thread (loop_start)
reads and writes the socket, resends unacknowledged QoS 1 messages after a reconnect and reports
PUBACKs, which the callbacks only queue for the publisher thread. At most mqtt.queue_messages
anomalies are with paho at a time; the rest wait in the spool.

Several brokers (mqtt.host "node1,node2:1884", the nodes of a cluster): the agent connects to
the first; a lost connection or a failed attempt moves it to the next in turn, with the same
back-off. paho resends what it had in flight to the node it lands on, the spool keeps every
anomaly until some node acknowledges it, and the inventory and the retained status are
published again there (a node outside the cluster, or a cluster that does not share retained
messages, would otherwise not have them).

Reconnects back off exponentially with jitter (so a fleet does not return in step after a broker
restart): each delay is uniform in [d/2, d] with d doubling from RECONNECT_MIN to RECONNECT_MAX.

paho-mqtt 1.6 (older OpenWrt feeds) and 2.x (CallbackAPIVersion) both work: the only difference
is how the client is made and the callbacks' signatures, absorbed by new_client() and *rest.
Two 1.6 gaps: its network thread dies on an ssl.SSLError after the handshake (a TLS 1.3 broker
rejecting the client certificate, a corrupted record), so a watchdog starts a new one; and its
on_publish carries no MQTT 5 reason code, so an anomaly the broker refused counts as sent.
paho imports ssl at its own import (and breaks without it), so ssl is loaded even without TLS.
"""
import logging
import random
import sys
import threading
import time
from collections import deque

import paho.mqtt.client as paho

from ..brokers import parse_brokers
from ..contract import ContractError, Status, encode, topic
from .spool import Spool, spool_path

log = logging.getLogger("routerwatch")

RECONNECT_MIN = 1.0        # seconds before the first reconnect attempt
RECONNECT_MAX = 120.0      # longest wait between attempts
MAX_WINDOW = 20000         # paho's message ids are 16 bit: keep far fewer than 65535 in flight
CLOSE_TIMEOUT = 3.0        # seconds close() waits for the last messages to be acknowledged
WATCHDOG_SECONDS = 5.0     # how often the publisher checks that paho's network thread still runs
PAHO_V2 = hasattr(paho, "CallbackAPIVersion")

# A config reload (SIGHUP) replaces the sink. What a RAM spool still holds is handed to the next
# sink of the same device in this process instead of being lost (file spools reload the file).
_handover = {}


def new_client(client_id, protocol="3.1.1", clean=True):
    """A paho Client for 1.6 or 2.x with the 2.x callback signatures where available.

    Callbacks must accept both signatures: on_connect(client, userdata, flags, rc, *rest),
    on_disconnect(client, userdata, *rest), on_publish(client, userdata, mid, *rest).
    """
    version = paho.MQTTv5 if protocol == "5" else paho.MQTTv311
    kwargs = {"client_id": client_id, "protocol": version}
    if version == paho.MQTTv311:
        kwargs["clean_session"] = clean
    if PAHO_V2:
        return paho.Client(paho.CallbackAPIVersion.VERSION2, **kwargs)
    return paho.Client(**kwargs)


def reason_value(code):
    """An int from whatever paho passes as a result: int, ReasonCode(s) or None."""
    if code is None:
        return 0
    return int(getattr(code, "value", code))


def _anomalies(count):
    return "1 anomaly" if count == 1 else "%d anomalies" % count


def failure_reason(exc):
    """'Connection refused', 'Name or service not known', 'timed out' ... from a connect error."""
    if exc is None:
        return "no reason given"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class MqttSink:
    def __init__(self, config, device_id, run_id):
        self.config = config
        self.mqtt = config.mqtt
        self.brokers = parse_brokers(self.mqtt.host, self.mqtt.port)   # config.py checked it
        self._broker = 0                  # index of the broker connected or being tried
        self.device_id = device_id
        self.run_id = run_id
        self.topics = {kind: topic(config.prefix, device_id, kind)
                       for kind in ("anomaly", "heartbeat", "status", "inventory")}
        self.homeassistant = None
        if config.homeassistant.discovery:
            from ..detectors import detector_classes
            from .homeassistant import HomeAssistantDiscovery
            self.homeassistant = HomeAssistantDiscovery(config, device_id, detector_classes())
        self._ha_configs_due = False      # send the discovery configs in the next round
        self._ha_state_due = False        # send the retained state in the next round
        self._ha_state_sent = None        # the state last sent, so an unchanged one is not
        self.spool = Spool(config.spool, None if config.spool.mode == "ram" else spool_path(config))
        for severity, payload in _handover.pop(device_id, ()):
            self.spool.put(severity, payload)
        self.window = min(self.mqtt.queue_messages, MAX_WINDOW)
        self.reconnect_min = RECONNECT_MIN
        self.reconnect_max = RECONNECT_MAX
        self.watchdog_seconds = WATCHDOG_SECONDS
        self._revive_at = 0.0
        self._random = random.Random()
        self._client = None
        self._thread = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._connected = False
        self._online_due = False
        self._attempt = 0
        self._acks = deque()              # (mid, reason) from paho's thread, for the publisher
        self._mids = {}                   # mid -> sid (anomaly) or "inventory"
        self._heartbeat = None            # the newest heartbeat not yet published
        self._inventory = None            # encoded inventory waiting for its PUBACK
        self._inventory_mid = None
        self._inventory_last = None       # the newest inventory, to send again on another broker
        self._inventory_broker = None     # the broker that acknowledged it
        self._status_seq = 0
        self.sent = 0                     # anomalies the broker acknowledged
        self.heartbeats_sent = 0
        self.connects = 0
        self.disconnects = 0
        self.connect_failures = 0
        self.failovers = 0                # moves to the next broker of mqtt.host
        self.network_restarts = 0
        self.heartbeats_missed = 0
        self.invalid = 0                  # anomalies the contract refused (a bug, not expected)
        self.rejected = 0                 # anomalies the broker refused (MQTT 5 reason >= 0x80)

    # ------------------------------------------------------------------ lifecycle
    def start(self, agent=None):
        if self._thread is not None:
            return
        client = new_client(self.device_id, self.mqtt.protocol)
        will = Status(device=self.device_id, run=self.run_id, seq=0, time=time.time(),
                      state="offline")
        client.will_set(self.topics["status"], encode(will), qos=1, retain=True)
        if self.mqtt.username:
            client.username_pw_set(self.mqtt.username, self.mqtt.password or None)
        if self.mqtt.tls:
            self._configure_tls(client)
        client.max_inflight_messages_set(self.window)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        if self.homeassistant is not None:
            client.on_message = self._on_message
        self._client = client
        client.connect_async(*self.broker(), keepalive=self.mqtt.keepalive)
        client.loop_start()
        self._thread = threading.Thread(target=self._publisher, name="routerwatch-mqtt",
                                        daemon=True)
        self._thread.start()

    def _configure_tls(self, client):
        import ssl
        client.tls_set(ca_certs=self.mqtt.ca_file or None,
                       certfile=self.mqtt.cert_file or None, keyfile=self.mqtt.key_file or None,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if self.mqtt.tls_insecure:
            client.tls_insecure_set(True)

    def close(self, timeout=CLOSE_TIMEOUT, final=True, clean=True):
        """Deliver what we can within `timeout`, say "offline", stop; the spool keeps the rest.
        final=False is a config reload: a RAM spool's anomalies go to the next sink. On a final
        stop the log says how many anomalies were not delivered and whether they are kept.

        clean=False (the agent is ending on an error): say what the Last Will says instead, the
        retained "offline" with seq 0, so the collector raises agent.silent as for a crash. A
        clean "offline" (seq > 0) would tell it the watching was switched off on purpose."""
        client = self._client
        if client is not None:
            deadline = time.monotonic() + timeout
            self._wake.set()
            while self._connected and (self.spool.waiting() or self.spool.inflight()) \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            self._stopping = True
            self._wake.set()
            if self._thread is not None:
                self._thread.join(timeout)
            if self._connected:
                if self._online_due:
                    # connected, but the publisher thread stopped before it said so: "online" on
                    # every connect holds, and the stop that follows it has the higher seq
                    self._online_due = False
                    self._publish_status("online")
                info = self._publish_status("offline") if clean else self._publish_last_will()
                try:
                    info.wait_for_publish(max(0.1, deadline - time.monotonic()))
                except (RuntimeError, ValueError):
                    pass  # the connection went: the Last Will says the same
            client.disconnect()
            client.loop_stop()
            self._client = None
        self._process_acks()
        self.spool.close()
        if self.homeassistant is not None:
            with self._lock:
                self.homeassistant.save()
        left = self.spool.depth()
        if not left:
            return
        if not final:
            if self.spool.mode == "ram":
                _handover[self.device_id] = self.spool.export()
        elif self.spool.mode == "ram" or self.spool.file_errors:
            log.warning("stopping: %s the broker has not acknowledged %s dropped (%s; "
                        "spool.mode=tmp or flash keeps them for the next start)",
                        _anomalies(left), "is" if left == 1 else "are",
                        "the spool file could not be written" if self.spool.file_errors
                        else "spool.mode=ram")
        else:
            log.info("stopping: %s the broker has not acknowledged %s in %s for the next "
                     "start", _anomalies(left), "stays" if left == 1 else "stay",
                     spool_path(self.config))

    # ------------------------------------------------------------------ the sink interface
    def send_anomaly(self, anomaly):
        try:
            payload = encode(anomaly)
        except (ContractError, UnicodeError) as exc:
            self.invalid += 1
            log.error("anomaly %s not sent: %s", getattr(anomaly, "kind", "?"), exc)
            return
        self.spool.put(anomaly.severity, payload)
        if self.homeassistant is not None:
            with self._lock:
                self._ha_state_due = self.homeassistant.observe_anomaly(anomaly)
        self._wake.set()

    def send_heartbeat(self, heartbeat):
        payload = encode(heartbeat)
        with self._lock:
            if self._heartbeat is not None:
                self.heartbeats_missed += 1
            self._heartbeat = payload
        self._wake.set()

    def send_inventory(self, inventory):
        payload = encode(inventory)
        with self._lock:
            self._inventory = self._inventory_last = payload
            self._inventory_mid = None
            self._inventory_broker = None
            if self.homeassistant is not None and self.homeassistant.observe_inventory(inventory):
                self._ha_configs_due = True
        self._wake.set()

    def send_health(self, problems, now):
        """The watchers' health and the clock, once per heartbeat (Home Assistant only)."""
        if self.homeassistant is None:
            return
        with self._lock:
            self.homeassistant.observe_health(problems)
            self.homeassistant.save()
            # the hold time and the 24 h counts move with the clock: the state is compared with
            # what was sent last and sent only when it differs
            self._ha_state_due = True
        self._wake.set()

    def spool_depth(self):
        return self.spool.depth()

    def counters(self):
        counters = {"sent": self.sent, "mqtt.heartbeats": self.heartbeats_sent,
                    "mqtt.connects": self.connects, "mqtt.disconnects": self.disconnects,
                    "mqtt.connect_failures": self.connect_failures,
                    "mqtt.failovers": self.failovers,
                    "mqtt.network_restarts": self.network_restarts}
        counters.update(self.spool.counters())
        return counters

    def drops(self):
        drops = {"mqtt.heartbeats": self.heartbeats_missed, "mqtt.invalid": self.invalid,
                 "mqtt.rejected": self.rejected}
        drops.update(self.spool.drops())
        return drops

    def connected(self):
        return self._connected

    def broker(self):
        """(host, port) of the broker connected to, or being tried."""
        return self.brokers[self._broker]

    def _move_to_next_broker(self, client):
        """Called on paho's thread between attempts, while no connection is open: its next
        reconnect() goes to the next broker of the list. paho 1.6 has no setter for the host,
        2.x's refuses while a socket is being torn down: both keep it in _host/_port."""
        if len(self.brokers) < 2 or self._stopping:
            return
        self._broker = (self._broker + 1) % len(self.brokers)
        self.failovers += 1
        client._host, client._port = self.broker()

    # ------------------------------------------------------------------ paho's thread
    def _on_connect(self, client, userdata, flags, reason, *rest):
        if reason_value(reason) != 0:   # counted in _on_disconnect, which follows
            log.warning("broker %s:%d refused the connection: %s", *self.broker(), reason)
            return
        self.connects += 1
        self._attempt = 0
        self._connected = True
        self._online_due = True
        with self._lock:
            if self._inventory_last is not None and self._inventory_broker != self._broker:
                self._inventory = self._inventory_last    # this broker may not have it retained
                self._inventory_mid = None
        log.info("connected to %s:%d", *self.broker())
        self._wake.set()

    def _on_disconnect(self, client, userdata, *rest):
        if self._connected:
            self.disconnects += 1
            if not self._stopping:
                log.warning("lost the broker %s:%d; anomalies wait in the spool%s",
                            *self.broker(), self._next_note())
        else:   # refused CONNACK, or closed before it (TLS 1.3 rejects a client cert late)
            self.connect_failures += 1
        self._connected = False
        self._move_to_next_broker(client)
        client.reconnect_delay_set(*self._next_delay())

    def _on_message(self, client, userdata, message):
        # Home Assistant's birth message: it (re)started and needs the configs again
        if message.topic == self.homeassistant.birth_topic and message.payload == b"online":
            self._ha_configs_due = True
            self._wake.set()

    def _on_connect_fail(self, client, userdata, *rest):
        self.connect_failures += 1
        if self._attempt == 0:   # once per outage, not once per attempt
            # paho calls this from its `except OSError:` around the connect, without the error
            log.warning("cannot reach the broker %s:%d (%s); %s with back-off",
                        *self.broker(), failure_reason(sys.exc_info()[1]),
                        "trying the next one" if len(self.brokers) > 1 else "trying again")
        self._move_to_next_broker(client)
        client.reconnect_delay_set(*self._next_delay())

    def _on_publish(self, client, userdata, mid, *rest):
        # paho holds its message lock while calling this: only queue, never take a lock here
        self._acks.append((mid, reason_value(rest[0]) if rest else 0))
        self._wake.set()

    def _next_note(self):
        if len(self.brokers) < 2:
            return ""
        return "; moving to %s:%d" % self.brokers[(self._broker + 1) % len(self.brokers)]

    def _next_delay(self):
        """(delay, delay) for reconnect_delay_set: the next wait, doubled per failure, jittered."""
        ceiling = min(self.reconnect_max, self.reconnect_min * (2 ** min(self._attempt, 20)))
        self._attempt += 1
        delay = self._random.uniform(ceiling / 2, ceiling)
        return delay, delay

    # ------------------------------------------------------------------ the publisher thread
    def _publisher(self):
        while not self._stopping:
            due = self.spool.flush_due_in()
            self._wake.wait(self.watchdog_seconds if due is None
                            else min(due, self.watchdog_seconds))
            self._wake.clear()
            if self._stopping:
                break
            try:
                self._revive_network_thread()
                self._publish_round()
                self.spool.maybe_flush()
            except Exception:  # keep publishing whatever one round tripped over
                log.exception("mqtt publisher")

    def _revive_network_thread(self):
        """paho 1.6 lets an ssl.SSLError escape its network thread, which then is gone for good
        (paho keeps no public handle on it, hence _thread): start a new one that connects
        afresh, with the same back-off as any failed connection. What it had in flight is
        still in its queue and goes out after the connect."""
        client = self._client
        thread = getattr(client, "_thread", None)
        if thread is None or thread.is_alive() or self._stopping:
            return
        now = time.monotonic()
        if now < self._revive_at:
            return
        if self._connected:
            self.disconnects += 1
        else:
            self.connect_failures += 1
        self._connected = False
        self._revive_at = now + self._next_delay()[0]
        self.network_restarts += 1
        log.warning("the MQTT network thread stopped; connecting to %s:%d again",
                    *self.broker())
        client.loop_stop()
        client.connect_async(*self.broker(), keepalive=self.mqtt.keepalive)
        client.loop_start()

    def _publish_round(self):
        self._process_acks()
        client = self._client
        if client is None:
            return
        if not self._connected:
            with self._lock:
                if self._heartbeat is not None:
                    self._heartbeat = None
                    self.heartbeats_missed += 1
            return
        if self._online_due:
            self._online_due = False
            self._publish_status("online")
            if self.homeassistant is not None:
                client.subscribe(self.homeassistant.birth_topic, qos=1)
                self._ha_configs_due = self._ha_state_due = True
        if self.homeassistant is not None:
            self._publish_homeassistant(client)
        with self._lock:
            heartbeat, self._heartbeat = self._heartbeat, None
            inventory = self._inventory if self._inventory_mid is None else None
        if inventory is not None:
            info = client.publish(self.topics["inventory"], inventory, qos=1, retain=True)
            self._mids[info.mid] = "inventory"
            with self._lock:
                if self._inventory is inventory:
                    self._inventory_mid = info.mid
        if heartbeat is not None:
            info = client.publish(self.topics["heartbeat"], heartbeat, qos=0)
            if info.rc == paho.MQTT_ERR_SUCCESS:
                self.heartbeats_sent += 1
            else:
                self.heartbeats_missed += 1
        room = self.window - self.spool.inflight()
        if room > 0:
            for sid, payload in self.spool.take(room):
                try:
                    info = client.publish(self.topics["anomaly"], payload, qos=1)
                except ValueError as exc:   # paho refuses it (size): resending cannot help
                    self.invalid += 1
                    self.spool.ack(sid)
                    log.error("anomaly not sent: %s", exc)
                    continue
                # NO_CONN: paho keeps a QoS 1 message and sends it after the reconnect
                self._mids[info.mid] = sid
        self._process_acks()

    def _process_acks(self):
        while self._acks:
            mid, reason = self._acks.popleft()
            what = self._mids.pop(mid, None)
            if what is None:
                continue            # heartbeat or status
            if what == "inventory":
                with self._lock:
                    if self._inventory_mid == mid:
                        self._inventory = None
                        self._inventory_broker = self._broker
                continue
            # an anomaly the cap dropped while in flight is not in the spool any more: it was
            # counted as dropped, so it is not counted as sent as well
            if reason >= 0x80:   # MQTT 5: the broker refused it (ACL ...); resending cannot help
                self.rejected += 1
                log.warning("broker refused anomaly (reason %#x)", reason)
                self.spool.ack(what)
            elif self.spool.ack(what):
                self.sent += 1

    def _publish_homeassistant(self, client):
        """Discovery configs and the retained state, when due. Lost ones need no tracking: the
        next connect sends everything again."""
        ha = self.homeassistant
        with self._lock:
            configs_due, self._ha_configs_due = self._ha_configs_due, False
            state_due, self._ha_state_due = self._ha_state_due, False
            if configs_due and not ha.local_address:
                ha.local_address = _local_address(client)
            configs = ha.discovery_messages() if configs_due else ()
            state = ha.state_payload(time.time()) if state_due or configs_due else None
        for config_topic, payload in configs:
            client.publish(config_topic, payload, qos=1, retain=True)
        if state is not None and (configs_due or state != self._ha_state_sent):
            client.publish(ha.state_topic, state, qos=1, retain=True)
            self._ha_state_sent = state

    def _publish_last_will(self):
        will = Status(device=self.device_id, run=self.run_id, seq=0, time=time.time(),
                      state="offline")
        return self._client.publish(self.topics["status"], encode(will), qos=1, retain=True)

    def _publish_status(self, state):
        client = self._client
        if client is None:
            return None
        self._status_seq += 1
        status = Status(device=self.device_id, run=self.run_id, seq=self._status_seq,
                        time=time.time(), state=state)
        return client.publish(self.topics["status"], encode(status), qos=1, retain=True)


def _local_address(client):
    """The agent's own address on its connection to the broker: the router's address on the
    network Home Assistant is on, for the LuCI link."""
    try:
        sock = client.socket()
        return sock.getsockname()[0] if sock is not None else ""
    except (OSError, AttributeError, IndexError):
        return ""
