"""The MQTT side of the collector: subscribe, hand every message to Ingest, flush in batches,
acknowledge after the batch is committed, and reconnect when the broker goes away.

The collector speaks MQTT itself (mqtt_wire.py cuts packets out of the byte stream): a backlog is
a stream of small PUBLISH packets, and reading it with one large read per burst and acknowledging
a whole batch in one write is what lets the collector keep up with its broker.

Two threads. The caller's thread owns the socket: it reads, cuts what it read into messages,
decodes and validates them (Ingest.parse) and puts them into a bounded inbox (one list per read),
and sends the probe, the keepalive pings and the acknowledgements of committed batches. The writer
thread takes messages off the inbox (Ingest.accept), writes them in batches and runs the silence
check (Ingest.tick): the store is only ever touched from that one thread, and while it waits for
a commit (the database works without the interpreter lock) the MQTT thread reads and decodes the
next messages. A batch ends when the inbox runs dry (or is full, or old): under load batches grow
by themselves, at low traffic a message is written at once. After each commit the writer wakes
the MQTT thread through a pipe, which acknowledges the batch in arrival order.

Delivery: the session is persistent (MQTT 3.1.1 clean session 0, or MQTT 5 clean start 0 with a
session expiry), so the broker keeps QoS 1 messages for the collector while it restarts. The
PUBACK of each message is sent only after the batch holding it is in the store, so a collector
crash loses nothing the broker handed over: unacknowledged messages come again and the store's
unique index drops the copies. When the inbox is full the socket is not read (the broker's
in-flight window then holds the rest back), but pings and acknowledgements still go out.
"""
import collections
import logging
import os
import queue
import re
import select
import socket
import ssl
import threading
import time

from routerwatch.contract import MAX_PAYLOAD_BYTES, MESSAGE_TYPES, subscription

from . import mqtt_wire
from .ingest import DEFAULT_BATCH_SIZE, Refused
from .mqtt_wire import Connack, Disconnect, Message, ProtocolError, Suback

log = logging.getLogger("routerwatch_collector")

# CONNACK codes that retrying cannot fix (3.1.1: 4 bad user name or password, 5 not authorised;
# MQTT 5: 134 bad user name or password, 135 not authorised, 138 banned)
FATAL_CONNACK = {4, 5, 134, 135, 138}
SESSION_EXPIRY = 3600   # MQTT 5: seconds the broker keeps the session of a stopped collector
STORE_RETRY = 1.0       # seconds between attempts while the store keeps failing
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
READ_SIZE = 256 * 1024   # one read takes a burst of a few thousand small messages
# reads waiting for the writer, decoded: at most this many times READ_SIZE (4 MiB) held. Room
# for a whole next batch (a read of small messages holds about 800), so the MQTT thread decodes
# it while the writer commits the last one; with 4 the inbox filled within a commit and the
# reading stopped (batches of 3,300, the MQTT thread waiting 300 times per 100,000 messages)
INBOX_READS = 16
# a PUBLISH larger than this is not kept: its payload is skipped as it arrives and the message
# rejected as oversized (the contract's limit plus room for the topic and MQTT 5 properties)
MAX_PUBLISH = MAX_PAYLOAD_BYTES + 8 * 1024
CONNECT_TIMEOUT = 10.0   # seconds for TCP, TLS and the CONNACK
SOCKET_TIMEOUT = 30.0    # a write (or the rest of a TLS record) that takes longer: connection lost
LOOP_WAIT = 0.5          # the longest the MQTT thread sleeps with nothing to do


class BrokerRefused(RuntimeError):
    """The broker refused the connection in a way that retrying will not fix."""


class ConnectionLost(OSError):
    """The broker closed the connection, stopped answering, or broke the protocol."""


class Subscriber:
    def __init__(self, ingest, host, port=1883, prefix="routerwatch", share_group=None,
                 client_id="routerwatch-collector", protocol=None, username=None, password=None,
                 tls=False, ca_file=None, cert_file=None, key_file=None, tls_insecure=False,
                 keepalive=60, flush_interval=0.25, batch_size=DEFAULT_BATCH_SIZE,
                 tick_interval=1.0, reconnect_min=0.2, reconnect_max=5.0, on_stored=None,
                 on_batch=None, clock=time.time):
        self.ingest = ingest
        self.host, self.port, self.keepalive = host, port, keepalive
        self.client_id = client_id
        self.username, self.password = username or None, password or None
        self.prefix, self.share_group = prefix, share_group
        self.protocol = protocol or ("5" if share_group else "3.1.1")
        # a batch never nears what Ingest holds before it drops the oldest: a dropped message
        # would still be acknowledged, and so lost
        self.flush_interval = flush_interval
        self.batch_size = max(1, min(batch_size, getattr(ingest, "max_pending", 2 * batch_size)
                                     // 2))
        self.tick_interval = tick_interval
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.on_stored = on_stored or (lambda stored: None)
        self.on_batch = on_batch or (lambda seconds: None)   # a batch written: how long it took
        self.clock = clock
        self.connected = False      # CONNACK accepted and the subscriptions acknowledged
        self.connections = 0        # successful connections so far (tests and logs)
        self.refused = None         # text of a fatal refusal
        self._store_failing = False
        self._retry_at = 0.0
        self.listening_since = None  # when the current connection was accepted
        self.internal_errors = 0
        self.probe_topic = "%s/%s" % (PROBE_ROOT, re.sub(r"[^A-Za-z0-9_.-]", "_", client_id))
        self._probe_topic_bytes = self.probe_topic.encode("utf-8")
        self.caught_up_at = None     # the send time of the latest probe that came back
        self._probe_sent = None      # the send time of the probe on its way, if any
        self._probe_returned = False  # on this connection: the broker lets probes through
        self._probe_warned = False
        self._vouched = None         # caught_up_at of the last tick that took all it vouched for
        # reads waiting for the writer: lists of (topic, what Ingest.parse made of it, retained,
        # packet id, received_at, connection); bounded, so a stalled store stops the reading,
        # not the memory
        self._inbox = queue.Queue(maxsize=INBOX_READS)
        self._held = collections.deque()        # the writer's part of a read not yet handled
        self._committed = collections.deque()   # [(connection, packet id)] of written batches
        self._stop = None
        self._writer_error = None    # what ended the writer thread, raised by run()
        self._wake_read = self._wake_write = None
        self._sock = None
        self._reader = None
        self._last_out = self._ping_sent = self._opened_at = 0.0
        self._accepted = False       # this connection's CONNACK came and said yes
        # made here, so unreadable TLS files are an error at start (ssl.SSLError is an OSError)
        self._tls = None
        if tls:
            self._tls = ssl.create_default_context(cafile=ca_file or None)
            if cert_file:
                self._tls.load_cert_chain(cert_file, key_file or None)
            if tls_insecure:
                self._tls.check_hostname = False

    def topics(self):
        return [subscription(self.prefix, t, self.share_group) for t in MESSAGE_TYPES]

    # ------------------------------------------------------------------ the connection
    def _open(self, now):
        """TCP (and TLS) to the broker, then CONNECT; the CONNACK is read by the loop."""
        sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(SOCKET_TIMEOUT)
            v5 = self.protocol == "5"
            sock.sendall(mqtt_wire.connect_packet(
                self.client_id, self.keepalive, clean=False, username=self.username,
                password=self.password, protocol=self.protocol,
                session_expiry=SESSION_EXPIRY if v5 else None,
                receive_maximum=min(65535, WINDOW_BATCHES * self.batch_size) if v5 else None))
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._reader = mqtt_wire.Reader(self.protocol, max_publish=MAX_PUBLISH)
        self._opened_at = self._last_out = now
        self._ping_sent = 0.0
        self._accepted = False

    def _close(self, goodbye=False):
        sock, self._sock = self._sock, None
        self.connected = self._accepted = False
        if sock is None:
            return
        if goodbye:
            try:
                sock.sendall(mqtt_wire.disconnect_packet())
            except OSError:
                pass
        try:
            sock.close()
        except OSError:
            pass

    def _send(self, data):
        self._sock.sendall(data)
        self._last_out = self.clock()

    def _service(self, now):
        """Wait for the socket or a commit (at most LOOP_WAIT), then read, acknowledge, ping."""
        sock = self._sock
        pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
        watch = [self._wake_read]
        room = not self._inbox.full()
        if room:
            watch.append(sock)
        wait = 0.0 if pending and room else (LOOP_WAIT if room else 0.01)
        readable, _, _ = select.select(watch, [], [], wait)
        if self._wake_read in readable:
            try:
                os.read(self._wake_read, 4096)
            except BlockingIOError:
                pass
        self._send_acks()
        if room and (pending or sock in readable):
            try:
                data = sock.recv(READ_SIZE)
            except (ssl.SSLWantReadError, BlockingIOError):
                data = None
            if data == b"":
                raise ConnectionLost("the broker closed the connection")
            if data:
                self._ping_sent = 0.0       # anything from the broker shows it is alive
                self._received(self._reader.feed(data))
        now = self.clock()
        if not self._accepted:
            if now - self._opened_at > CONNECT_TIMEOUT:
                raise ConnectionLost("no CONNACK within %.0f s" % CONNECT_TIMEOUT)
        elif self.keepalive:
            if self._ping_sent:
                if now - self._ping_sent > self.keepalive:
                    raise ConnectionLost("no answer to a ping within %d s" % self.keepalive)
            elif now - self._last_out >= self.keepalive:
                self._send(mqtt_wire.PINGREQ_PACKET)
                self._ping_sent = now

    def _received(self, packets):
        """The packets of one read: messages go to the writer as one list, in order."""
        now = self.clock()
        items = []
        probe = self._probe_topic_bytes
        probes = []
        for packet in packets:
            if type(packet) is Message:
                if packet.topic == probe:
                    probes.append(packet.payload)
                    if packet.qos:
                        self._send(mqtt_wire.puback_packets([packet.packet_id]))
                    continue
                # decoded here, while the writer waits for the store: SQLite and psycopg let go
                # of the interpreter lock for the database's own work, and that time decodes
                # the next messages. (self.connections: the CONNACK may come in the same read,
                # just before)
                items.append((packet.topic, self._parse(packet.topic, packet.payload),
                              packet.retain, packet.packet_id if packet.qos else None, now,
                              self.connections))
            elif type(packet) is Connack:
                self._connack(packet, now)
            elif type(packet) is Suback:
                self._suback(packet)
            elif type(packet) is Disconnect:
                raise ConnectionLost("the broker disconnected: %s" % mqtt_wire.CONNACK_TEXT.get(
                    packet.code, "reason %d" % packet.code))
        if items:
            if not self._accepted:
                raise ProtocolError("PUBLISH before CONNACK")
            self._inbox.put_nowait(items)   # only this thread puts, and only when there is room
        # a probe vouches for what came before it: that is in the inbox by now
        for payload in probes:
            self._probe_back(payload)

    def _parse(self, topic, payload):
        """Ingest.parse for the MQTT thread: never expected to raise (fuzzed), but if it did,
        the one message is refused rather than the connection lost."""
        try:
            return self.ingest.parse(topic, payload)
        except Exception:
            self.internal_errors += 1
            if self.internal_errors == 1:
                log.exception("could not decode a message on %r", topic)
            return Refused("internal", None, "the collector could not decode this message")

    def _connack(self, connack, now):
        if self._accepted:
            raise ProtocolError("a second CONNACK")
        code = connack.code
        if code != 0:
            text = mqtt_wire.CONNACK_TEXT.get(code, "reason %d" % code)
            if code in FATAL_CONNACK:
                self.refused = "broker %s:%d refused the connection: %s" % (
                    self.host, self.port, text)
            raise ConnectionLost("broker %s:%d refused the connection: %s" % (
                self.host, self.port, text))
        self._accepted = True
        self.listening_since = now
        self.connections += 1
        self._probe_sent, self._probe_returned = None, False
        self._send(mqtt_wire.subscribe_packet(
            1, [(topic, 1) for topic in self.topics()] + [(self.probe_topic, 0)], self.protocol))

    def _suback(self, suback):
        topics = self.topics() + [self.probe_topic]
        if suback.packet_id != 1 or len(suback.codes) != len(topics):
            raise ProtocolError("SUBACK does not answer the SUBSCRIBE")
        refused = [t for t, code in zip(topics, suback.codes) if code >= 0x80]
        if refused:
            log.warning("broker %s:%d refused the subscription to %s", self.host, self.port,
                        ", ".join(refused))
        self.connected = True
        log.info("connected to %s:%d, subscribed to %s", self.host, self.port,
                 ", ".join(self.topics()))

    # ------------------------------------------------------------------ the loop
    def run(self, stop):
        """Until stop.is_set(): receive, flush, tick. Raises BrokerRefused on a fatal refusal."""
        self._stop = stop
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        writer_done = threading.Event()
        writer = threading.Thread(target=self._writer, args=(writer_done,),
                                  name="collector-writer", daemon=True)
        writer.start()
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
                if self._sock is None:
                    if now >= next_attempt:
                        try:
                            self._open(now)
                        except OSError as exc:
                            if not warned:
                                log.warning("cannot reach the broker %s:%d (%s); retrying",
                                            self.host, self.port, exc)
                                warned = True
                            next_attempt = now + backoff
                            backoff = min(backoff * 2, self.reconnect_max)
                    if self._sock is None:
                        # deaf: the writer writes what it holds, but no silence is judged
                        self._committed.clear()
                        stop.wait(max(0.0, min(0.1, next_attempt - now)))
                        continue
                try:
                    self._service(now)
                    if self.connected:
                        backoff = self.reconnect_min
                        warned = False
                        now = self.clock()
                        if now >= next_probe:
                            next_probe = now + self.tick_interval
                            self._send_probe(now)
                except (OSError, ProtocolError) as exc:
                    if self.refused:
                        raise BrokerRefused(self.refused) from None
                    if self.connected or not warned:
                        log.warning("lost the broker %s:%d (%s); reconnecting", self.host,
                                    self.port, exc)
                        warned = True
                    self._close()
                    next_attempt = self.clock() + backoff
                    backoff = min(backoff * 2, self.reconnect_max)
        finally:
            writer_done.set()
            writer.join()            # it writes what it holds first
            if self._sock is not None:
                try:
                    self._send_acks()
                except OSError:
                    pass
                self._close(goodbye=True)
            os.close(self._wake_read)
            os.close(self._wake_write)

    def _send_acks(self):
        """Acknowledge the messages of committed batches, all in one write (MQTT thread)."""
        if not self._committed:
            return
        ids = []
        current = self.connections
        # a resumed session's backlog comes right after the CONNACK, before the SUBACK: its
        # acknowledgements are due as soon as the CONNACK said yes
        live = self._sock is not None and self._accepted
        while self._committed:
            batch = self._committed.popleft()
            if live:
                ids.extend(pid for connection, pid in batch if connection == current)
        if ids:
            self._send(mqtt_wire.puback_packets(ids))

    def _wake(self):
        """Tell the MQTT thread a batch is committed (writer thread)."""
        try:
            os.write(self._wake_write, b"\0")
        except (BlockingIOError, OSError):
            pass     # the pipe is full: the MQTT thread is woken already

    # ------------------------------------------------------------------ the writer thread
    def _writer(self, done):
        try:
            self._write_loop(done)
        except BaseException as exc:     # a hook that failed: the MQTT thread raises it
            self._writer_error = exc

    def _write_loop(self, done):
        """Take messages off the inbox, write them in batches, tick: until `done` is set and
        the inbox is empty; then the last batch is written (one last try even if the store
        was failing). A batch is written as soon as the inbox runs dry: waiting for more would
        only hold back acknowledgements the broker needs before it sends more (its in-flight
        window), and while one batch is written the next one gathers in the inbox."""
        acks = []                 # (connection, packet id) of the batch being built, in order
        first_pending = None
        next_tick = 0.0
        while True:
            finishing = done.is_set()
            idle = not self.ingest.pending() or self._store_failing
            taken = self._take(0.1 if idle else 0.0, acks)
            now = self.clock()
            if taken and first_pending is None:
                first_pending = now
            if finishing and not taken and not self._held:
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

    def _take(self, wait, acks, room=None):
        """Handle what the inbox holds, up to a batch; wait up to `wait` s for a first read."""
        held = self._held
        if not held:
            try:
                held.extend(self._inbox.get(timeout=wait) if wait else self._inbox.get_nowait())
            except queue.Empty:
                return 0
        accept = self.ingest.accept
        if room is None:
            room = max(1, self.batch_size - self.ingest.pending())
        taken = 0
        while True:
            while held and taken < room:
                topic, parsed, retained, packet_id, received_at, connection = held.popleft()
                try:
                    outcome = accept(parsed, received_at, retained)
                except Exception:   # never expected (fuzzed), but one message must not stop the rest
                    self.internal_errors += 1
                    if self.internal_errors == 1:
                        log.exception("could not handle a message on %r", topic)
                    outcome = "rejected:internal"
                if outcome[0] == "r":
                    log.debug("rejected a message on %r: %s", topic, outcome)
                if packet_id is not None:
                    acks.append((connection, packet_id))
                taken += 1
            if taken >= room:
                return taken
            try:
                held.extend(self._inbox.get_nowait())
            except queue.Empty:
                return taken

    def _take_reads(self, reads, acks):
        """Handle what is held and `reads` more reads off the inbox, beyond the batch size but
        never beyond what Ingest holds without dropping. False if it had to stop there."""
        held = self._held
        cap = getattr(self.ingest, "max_pending", 1 << 30) - 1
        if held:
            if self.ingest.pending() + len(held) > cap:
                return False
            self._take(0, acks, room=len(held))
        for _ in range(reads):
            try:
                held.extend(self._inbox.get_nowait())
            except queue.Empty:
                return True
            if self.ingest.pending() + len(held) > cap:
                return False                    # held, for the next batch
            self._take(0, acks, room=len(held))
        return True

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
            self._send(mqtt_wire.publish_packet(self.probe_topic, repr(now),
                                                protocol=self.protocol))

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
            # it goes into this batch, so a heartbeat waiting there is not missed. Only that:
            # the reads queued now, not what the MQTT thread keeps adding meanwhile (under a
            # backlog the inbox never runs dry, and the batch must not grow without end)
            caught_up_at = self._progress()
            if self._take_reads(self._inbox.qsize(), acks):
                self._vouched = caught_up_at
            else:
                # not all of it fits in one batch: judge only up to what an earlier,
                # complete one vouched for (or the connection's start)
                caught_up_at = self._vouched or self.listening_since
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
            self._wake()
        for row in stored:
            self.on_stored(row)
        return True
