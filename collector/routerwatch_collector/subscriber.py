"""The MQTT side of the collector: subscribe, hand every message to Ingest, flush in batches,
acknowledge after the batch is committed, and reconnect when the broker goes away.

Two threads. The caller's thread runs the MQTT client (client.loop() is called here, so every
paho call is made from it): it puts each message into a bounded inbox, sends the probe, and
sends the acknowledgements of committed batches. The writer thread takes messages off the inbox,
decodes and validates them (Ingest.handle), writes them in batches and runs the silence check
(Ingest.tick): the store is only ever touched from that one thread, and while it waits for a
commit the MQTT thread keeps reading. Acknowledgements follow commits in arrival order.

Delivery: the session is persistent (MQTT 3.1.1 clean_session=False, or MQTT 5 clean_start=False
with a session expiry), so the broker keeps QoS 1 messages for the collector while it restarts.
With paho-mqtt 2.x the PUBACK of each message is sent only after the batch holding it is in the
store (manual_ack), so a collector crash loses nothing the broker handed over: unacknowledged
messages come again and the store's unique index drops the copies. paho-mqtt 1.6 acknowledges on
receipt; there a crash can lose the one batch not yet written (at most flush_interval of traffic).
"""
import collections
import logging
import queue
import re
import threading
import time

import paho.mqtt.client as mqtt

from routerwatch.contract import MESSAGE_TYPES, subscription
from routerwatch.sinks.mqtt import new_client as agent_client
from routerwatch.sinks.mqtt import reason_value

log = logging.getLogger("routerwatch_collector")

# CONNACK codes that retrying cannot fix (3.1.1: 4 bad user name or password, 5 not authorised;
# MQTT 5: 134 bad user name or password, 135 not authorised, 138 banned)
FATAL_CONNACK = {4, 5, 134, 135, 138}
SESSION_EXPIRY = 3600   # MQTT 5: seconds the broker keeps the session of a stopped collector
STORE_RETRY = 1.0       # seconds between attempts while the store keeps failing
# a socket quiet this long while messages wait ends their batch: at low traffic an anomaly is in
# the store this soon after it arrived; under load messages keep coming and batches still fill
QUIET_SECONDS = 0.01
# The probe: a message the collector sends itself through the broker (on PROBE_ROOT/<client id>).
# The broker queues it behind everything already queued for this collector, so when it comes
# back, the collector has been handed all that was sent before it: its progress, which the
# silence check needs (a heartbeat queued behind a burst of anomalies is late, not missed).
# If no probe ever comes back within PROBE_TIMEOUT (an ACL that forbids the topic), silence is
# judged as if the collector were never behind.
PROBE_ROOT = "routerwatch-collectors"
PROBE_TIMEOUT = 120.0
# MQTT 5: how many unacknowledged QoS 1 messages the broker may send, in batches: while one batch
# is written the next one arrives. (On MQTT 3.1.1 the broker's own limit applies: mosquitto's
# max_inflight_messages, 20 by default; raise it there, or use --protocol 5.)
WINDOW_BATCHES = 2
# while messages are unacknowledged, how often the MQTT thread looks for committed batches
ACK_POLL = 0.005


class BrokerRefused(RuntimeError):
    """The broker refused the connection in a way that retrying will not fix."""


def new_client(client_id, protocol="3.1.1", persistent=True):
    """A paho client on 1.6 or 2.x (the agent's compat helper), acknowledging manually where
    paho can (2.x). Returns (client, acks_manually)."""
    client = agent_client(client_id, protocol, clean=not persistent)
    if hasattr(client, "manual_ack_set"):
        client.manual_ack_set(True)
        return client, True
    return client, False     # paho 1.6 acknowledges on receipt


class Subscriber:
    def __init__(self, ingest, host, port=1883, prefix="routerwatch", share_group=None,
                 client_id="routerwatch-collector", protocol=None, username=None, password=None,
                 tls=False, ca_file=None, cert_file=None, key_file=None, tls_insecure=False,
                 keepalive=60, flush_interval=0.25, batch_size=500, tick_interval=1.0,
                 reconnect_min=0.2, reconnect_max=5.0, on_stored=None, on_batch=None,
                 clock=time.time):
        self.ingest = ingest
        self.host, self.port, self.keepalive = host, port, keepalive
        self.prefix, self.share_group = prefix, share_group
        self.protocol = protocol or ("5" if share_group else "3.1.1")
        self.flush_interval, self.batch_size = flush_interval, batch_size
        self.tick_interval = tick_interval
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.on_stored = on_stored or (lambda stored: None)
        self.on_batch = on_batch or (lambda seconds: None)   # a batch written: how long it took
        self.clock = clock
        self.connected = False      # CONNACK accepted and subscriptions sent
        self.connections = 0        # successful connections so far (tests and logs)
        self.refused = None         # text of a fatal refusal
        self._store_failing = False
        self._retry_at = 0.0
        self.listening_since = None  # when the current connection was accepted
        self.internal_errors = 0
        self.probe_topic = "%s/%s" % (PROBE_ROOT, re.sub(r"[^A-Za-z0-9_.-]", "_", client_id))
        self.caught_up_at = None     # the send time of the latest probe that came back
        self._probe_sent = None      # the send time of the probe on its way, if any
        self._probe_returned = False  # on this connection: the broker lets probes through
        self._probe_warned = False
        # messages waiting for the writer: (topic, payload, retained, mid, qos, received_at,
        # connection); bounded, so a stalled store stops the reading, not the memory
        self._inbox = queue.Queue(maxsize=max(2 * batch_size, 100))
        self._committed = collections.deque()   # [(connection, mid, qos)] of written batches
        self._unacked = 0            # QoS 1 messages received and not yet acknowledged
        self._stop = None
        self._writer_error = None    # what ended the writer thread, raised by run()
        self.client, self.manual_ack = new_client(client_id, self.protocol, persistent=True)
        if username:
            self.client.username_pw_set(username, password or None)
        if tls:
            self.client.tls_set(ca_certs=ca_file or None, certfile=cert_file or None,
                                keyfile=key_file or None)
            if tls_insecure:
                self.client.tls_insecure_set(True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    def topics(self):
        return [subscription(self.prefix, t, self.share_group) for t in MESSAGE_TYPES]

    # ------------------------------------------------------------------ paho callbacks
    def _on_connect(self, client, userdata, flags, rc, *rest):
        code = reason_value(rc)
        if code != 0:
            text = mqtt.connack_string(code) if code < 128 else str(rc)
            if code in FATAL_CONNACK:
                self.refused = "broker %s:%d refused the connection: %s" % (
                    self.host, self.port, text)
            else:
                log.warning("broker %s:%d refused the connection: %s", self.host, self.port, text)
            return
        self.connected = True
        self.listening_since = self.clock()
        self.connections += 1
        self._unacked = 0   # message ids of an earlier connection mean nothing on this one
        self._probe_sent, self._probe_returned = None, False
        client.subscribe([(topic, 1) for topic in self.topics()] + [(self.probe_topic, 0)])
        log.info("connected to %s:%d, subscribed to %s", self.host, self.port,
                 ", ".join(self.topics()))

    def _on_disconnect(self, client, userdata, *rest):
        if self.connected:
            log.warning("lost the broker %s:%d; reconnecting", self.host, self.port)
        self.connected = False
        self._unacked = 0

    def _on_message(self, client, userdata, message):
        try:
            topic = message.topic
        except UnicodeDecodeError:    # paho 2.x decodes lazily; the broker should never allow it
            topic = b"\xff"
        now = self.clock()
        if topic == self.probe_topic:
            self._probe_back(message.payload)
            return
        ack = self.manual_ack and message.qos > 0
        item = (topic, message.payload, bool(message.retain), message.mid if ack else None,
                message.qos, now, self.connections)
        while True:
            try:
                self._inbox.put(item, timeout=0.1)
                break
            except queue.Full:       # the writer is behind (or the store is failing): wait
                if self._writer_error is not None or (
                        self._stop is not None and self._stop.is_set()):
                    return           # not acknowledged: the broker sends it again
        if ack:
            self._unacked += 1

    # ------------------------------------------------------------------ the loop
    def run(self, stop):
        """Until stop.is_set(): receive, flush, tick. Raises BrokerRefused on a fatal refusal."""
        client = self.client
        self._stop = stop
        if self.protocol == "5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = SESSION_EXPIRY
            if self.manual_ack:
                properties.ReceiveMaximum = min(65535, WINDOW_BATCHES * self.batch_size)
            client.connect_async(self.host, self.port, self.keepalive, clean_start=False,
                                 properties=properties)
        else:
            client.connect_async(self.host, self.port, self.keepalive)
        writer_done = threading.Event()
        writer = threading.Thread(target=self._writer, args=(writer_done,),
                                  name="collector-writer", daemon=True)
        writer.start()
        socket_open = False
        backoff = self.reconnect_min
        next_attempt = 0.0
        next_probe = 0.0
        warned = False
        try:
            while not stop.is_set():
                if self._writer_error is not None:
                    # what would have ended a single-threaded loop ends this one too
                    raise self._writer_error
                now = self.clock()
                if not socket_open:
                    if now >= next_attempt:
                        try:
                            client.reconnect()
                            socket_open = True
                            backoff = self.reconnect_min
                        except OSError as exc:
                            if not warned:
                                log.warning("cannot reach the broker %s:%d (%s); retrying",
                                            self.host, self.port, exc)
                                warned = True
                            next_attempt = now + backoff
                            backoff = min(backoff * 2, self.reconnect_max)
                    if not socket_open:
                        # deaf: the writer writes what it holds, but no silence is judged
                        self._committed.clear()
                        stop.wait(max(0.0, min(0.1, next_attempt - now)))
                        continue
                rc = client.loop(timeout=ACK_POLL if self._unacked else 0.5)
                if self.refused:
                    raise BrokerRefused(self.refused)
                if reason_value(rc) != 0:
                    socket_open = False
                    self.connected = False
                    self._unacked = 0
                    warned = False
                    next_attempt = self.clock() + backoff
                self._send_acks()
                now = self.clock()
                if self.connected and now >= next_probe:
                    next_probe = now + self.tick_interval
                    self._send_probe(now)
        finally:
            writer_done.set()
            writer.join()            # it writes what it holds first
            if socket_open:
                self._send_acks()
                self.connected = False   # a disconnect of our own is not worth a warning
                try:
                    client.disconnect()
                    client.loop(timeout=0.1)
                except OSError:
                    pass

    def _send_acks(self):
        """Acknowledge the messages of committed batches (MQTT thread)."""
        while self._committed:
            batch = self._committed.popleft()
            if not self.connected:
                continue
            for connection, mid, qos in batch:
                if connection == self.connections:
                    self.client.ack(mid, qos)
                    self._unacked = max(0, self._unacked - 1)

    # ------------------------------------------------------------------ the writer thread
    def _writer(self, done):
        try:
            self._write_loop(done)
        except BaseException as exc:     # a hook that failed: the MQTT thread raises it
            self._writer_error = exc

    def _write_loop(self, done):
        """Take messages off the inbox, write them in batches, tick: until `done` is set and
        the inbox is empty; then the last batch is written (one last try even if the store
        was failing)."""
        acks = []                 # (connection, mid, qos) of the batch being built, in order
        first_pending = None
        next_tick = 0.0
        while True:
            finishing = done.is_set()
            taken = self._take(QUIET_SECONDS if self.ingest.pending() else 0.1, acks)
            now = self.clock()
            if taken and first_pending is None:
                first_pending = now
            if finishing and not taken:
                self._retry_at = 0.0
                self._flush(now, acks)
                return
            if self.ingest.pending() and (not taken or self.ingest.pending() >= self.batch_size
                                          or now - first_pending >= self.flush_interval):
                if self._flush(now, acks):
                    acks, first_pending = [], None
            if now >= next_tick:
                next_tick = now + self.tick_interval
                if self._flush(now, acks, tick=True):
                    acks, first_pending = [], None

    def _take(self, wait, acks):
        """Handle what the inbox holds, up to a batch; wait up to `wait` s for a first one."""
        try:
            item = self._inbox.get(timeout=wait)
        except queue.Empty:
            return 0
        taken = 0
        while True:
            topic, payload, retained, mid, qos, received_at, connection = item
            try:
                outcome = self.ingest.handle(topic, payload, received_at, retained=retained)
            except Exception:   # never expected (fuzzed), but one message must not stop the rest
                self.internal_errors += 1
                if self.internal_errors == 1:
                    log.exception("could not handle a message on %r", topic)
                outcome = "rejected:internal"
            if outcome.startswith("rejected"):
                log.debug("rejected a message on %r: %s", topic, outcome)
            if mid is not None:
                acks.append((connection, mid, qos))
            taken += 1
            if taken >= self.batch_size:
                return taken
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return taken

    # ------------------------------------------------------------------ the probe
    def _probe_back(self, payload):
        try:
            sent = float(payload)
        except (TypeError, ValueError):
            return
        if self._probe_sent is not None and sent == self._probe_sent:
            self.caught_up_at = sent
            self._probe_sent = None
            self._probe_returned = True

    def _send_probe(self, now):
        """Send the next probe when the last came back (MQTT thread)."""
        if self._probe_sent is None or now - self._probe_sent > PROBE_TIMEOUT:
            if self._probe_sent is not None and not self._probe_returned and \
                    not self._probe_warned:
                self._probe_warned = True
                log.warning("the broker did not hand back the collector's probe on %s within "
                            "%.0f s (may this client publish and subscribe there?): silence is "
                            "judged as if the collector were never behind", self.probe_topic,
                            PROBE_TIMEOUT)
            self._probe_sent = now
            self.client.publish(self.probe_topic, repr(now), qos=0)

    def _progress(self):
        """The caught_up_at tick() should use (writer thread)."""
        if not self._probe_returned and self._probe_warned:
            return None
        return self.caught_up_at if self.caught_up_at is not None else self.listening_since

    def _flush(self, now, acks, tick=False):
        """Write the batch (and on a tick judge silence); True once it is committed, when its
        acknowledgements are handed to the MQTT thread."""
        if self._store_failing and now < self._retry_at and not tick:
            return False
        started = time.perf_counter()
        judge = tick and self.connected
        if judge:
            # what the probe vouches for was put into the inbox before it came back: all of
            # it goes into this batch, so a heartbeat waiting there is not missed
            caught_up_at = self._progress()
            while self._take(0, acks):
                pass
        batch = self.ingest.pending()
        try:
            if judge:
                stored = self.ingest.tick(now, listening_since=self.listening_since,
                                          caught_up_at=caught_up_at)
            else:
                stored = self.ingest.flush(now)
        except Exception as exc:  # the store failed (disk full, locked): keep the batch, retry
            if not self._store_failing:
                log.error("cannot write to the store: %s; keeping %d messages and retrying",
                          exc, self.ingest.pending())
            self._store_failing = True
            self._retry_at = now + STORE_RETRY
            return False
        if self._store_failing:
            log.info("writing to the store again")
            self._store_failing = False
        if batch or tick:
            self.on_batch(time.perf_counter() - started)
        if acks:
            self._committed.append(list(acks))
        for row in stored:
            self.on_stored(row)
        return True
