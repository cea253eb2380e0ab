"""From raw (topic, payload) pairs to stored rows: validate, drop duplicates, note gaps, and
notice agents that went quiet.

Every message is checked with routerwatch.contract (the one validator both sides share): the topic
must be <prefix>/<device>/<type>, the payload must decode as that type, and the payload's device
must be the topic's device (a router may only speak for itself). Anything else is rejected and
counted by reason; nothing a router sends can raise out of `handle()`.

Accepted messages wait in a batch that `flush(now)` writes in one transaction. A batch the store
refuses is written again one message at a time: a message the store still refuses while it takes
everything else is rejected (`unstorable`), so one message can never hold up the others. Time is
always passed in (`now`, the collector's clock), so tests need no sleeps.
"""
import logging
import secrets
from typing import NamedTuple

from routerwatch.bounded import BoundedDict
from routerwatch.contract import (DEFAULT_PREFIX, MAX_PAYLOAD_BYTES, Anomaly, ContractError, clip,
                                  decode, parse_topic, validate)

log = logging.getLogger("routerwatch_collector")

SILENT_KIND = "agent.silent"
SILENT_SEVERITY = "high"
# a reboot takes a router one to three minutes, a sysupgrade with its flash write five to ten
DEFAULT_STOP_GRACE = 900.0
# a collector that reported no progress for this long is gone (killed, or cut off from the
# store): its last position no longer holds back the silence judgement of the others
PROGRESS_STALE = 30.0
# ... but its going is remembered this long: it died with what it held, and the broker keeps
# routing its share of the group's messages to its session (QoS 0 heartbeats are dropped there)
# until it is back; its last report counts as a moment the collectors may have missed heartbeats
PROGRESS_GONE = 3600.0

# Messages per store transaction at most. Under a backlog the batch is this large; at low traffic
# it is whatever arrived (a lone message is written at once). Large, because an anomaly from each
# of many routers dirties an index page per router, and one commit writes each dirty page once:
# storing 100,000 anomalies from 1,000 routers into SQLite cost 96, 62, 43 and 36 µs a message
# in batches of 500, 2,000, 5,000 and 10,000 (bench/bench_ingest.py, BENCHMARKS.md section 9).
DEFAULT_BATCH_SIZE = 5000

# topics remembered as parsed (a fleet of this many routers sends on 4 topics each); beyond it
# the oldest are forgotten and parsed again
TOPIC_CACHE = 16384

# Why a message was refused. A bounded set on purpose: the error text contains attacker-chosen
# bits, so it is kept only as the latest sample per reason, never as a key.
REJECT_REASONS = ("topic", "oversized", "not_json", "not_object", "version", "unknown_type",
                  "type_mismatch", "unknown_field", "missing_field", "invalid_field",
                  "device_mismatch", "duplicate_key", "unstorable", "internal")

# contract.decode() error texts -> reason; first match wins, anything else is a bad field value
_REASON_BY_TEXT = (
    ("topic ", "topic"),
    ("payload is larger than", "oversized"),
    ("payload has a duplicate key", "duplicate_key"),
    ("payload is not JSON", "not_json"),
    ("payload must be", "not_object"),
    ("unknown schema version", "version"),
    ("unknown message type", "unknown_type"),
    ("arrived on the", "type_mismatch"),
    ("unknown field", "unknown_field"),
    ("missing field", "missing_field"),
)


class Refused(NamedTuple):
    """A message parse() turned down: why (one of REJECT_REASONS), the topic's device if it
    had one, and the error text."""
    reason: str
    device: object
    detail: str


def storable_detail(text, limit=200):
    """Error text for the rejected table: it quotes what a router sent, so NUL and unpaired
    surrogates (which no store holds) are escaped, and it is cut short."""
    text = clip(text, limit).replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def reject_reason(error):
    text = str(error)
    for start, reason in _REASON_BY_TEXT:
        if text.startswith(start) or (start == "arrived on the" and start in text):
            return reason
    return "invalid_field"


class Ingest:
    def __init__(self, store, prefix=DEFAULT_PREFIX, missed_heartbeats=3, dedupe_window=65536,
                 max_pending=20000, run_id=None, stop_grace=DEFAULT_STOP_GRACE, fleet=None,
                 fleet_configs=None):
        self.store = store
        self.prefix = prefix
        self.missed_heartbeats = missed_heartbeats
        # seconds an agent that stopped cleanly may stay away (a reboot, a sysupgrade) before
        # agent.silent says monitoring is off; None: a clean stop is never a silence
        self.stop_grace = stop_grace
        self.max_pending = max_pending
        # the collector's own run id: agent.silent anomalies are numbered under it
        self.run_id = run_id or secrets.token_hex(8)
        self._silent_seq = 0
        # the fleet detections (fleet/): fed in the batch's transaction, numbered like
        # agent.silent under the collector's run id; fleet=False switches them off
        if fleet is None:
            from .fleet import Fleet
            fleet = Fleet(self._next_anomaly_id, fleet_configs)
        self.fleet = fleet or None
        # recently accepted (device, run, type, seq): saves a round trip per QoS 1 redelivery and
        # per retained message replayed on resubscribe; the store's unique index is the real guard
        self._seen = BoundedDict(dedupe_window)
        # topic bytes -> (device, type) of the topics that parsed: each router has a few
        self._topics = BoundedDict(TOPIC_CACHE)
        self._pending = []            # (payload, received_at, retained) in arrival order
        self._pending_rejects = {}    # reason -> [count, last_at, device, detail]
        self.counters = {"received": 0, "accepted": 0, "duplicates": 0, "rejected": 0,
                         "stored": 0, "gaps": 0, "late": 0, "stale": 0, "silent": 0,
                         "dropped": 0}
        self.rejects = {}             # reason -> count since this process started

    # ------------------------------------------------------------------ one message
    def handle(self, topic, payload, now, retained=False):
        """Take one message off the wire: 'accepted', 'duplicate' or 'rejected:<reason>'.
        `payload` None means a message too large to have been kept."""
        return self.accept(self.parse(topic, payload), now, retained)

    def parse(self, topic, payload):
        """Topic and payload -> the payload object, or Refused(reason, device, detail). Reads
        no state but the topic cache, so the thread that reads the wire can decode while the
        writer waits for the store (which lets go of the interpreter lock meanwhile); the
        topic cache belongs to whichever one thread calls parse. Never raises."""
        device = None
        try:
            known = self._topics.get(topic) if type(topic) is bytes else None
            if known is not None:
                device, message_type = known
            else:
                raw = topic
                if isinstance(topic, (bytes, bytearray)):
                    try:
                        topic = bytes(topic).decode("utf-8")
                    except UnicodeDecodeError:
                        raise ContractError("topic is not UTF-8") from None
                if not isinstance(topic, str):
                    raise ContractError("topic is not text")
                device, message_type = parse_topic(self.prefix, topic)
                if type(raw) is bytes:
                    self._topics.set(raw, (device, message_type))
            # None: the payload was too large to keep (the MQTT reader skipped it unread)
            if payload is None or (isinstance(payload, (bytes, bytearray))
                                   and len(payload) > MAX_PAYLOAD_BYTES):
                raise ContractError("payload is larger than %d bytes" % MAX_PAYLOAD_BYTES)
            message = decode(payload, message_type)
        except ContractError as exc:
            return Refused(reject_reason(exc), device, str(exc))
        if message.device != device:
            return Refused("device_mismatch", device, "payload device %r on the topic of %r"
                           % (message.device, device))
        return message

    def accept(self, parsed, now, retained=False):
        """What parse() made, into the batch (or counted as a duplicate or a reject):
        'accepted', 'duplicate' or 'rejected:<reason>'."""
        self.counters["received"] += 1
        if type(parsed) is Refused:
            return self._reject(parsed.reason, now, parsed.device, parsed.detail)
        message = parsed
        key = (message.device, message.run, message.type, message.seq,
               getattr(message, "state", None))   # the Last Will and "online" may share a seq
        if key in self._seen:
            self._seen.get(key)   # refresh: a redelivery storm keeps its key in the window
            self.counters["duplicates"] += 1
            return "duplicate"
        self._seen.set(key, True)
        self.counters["accepted"] += 1
        if len(self._pending) >= self.max_pending:
            # only reachable when the store keeps failing; with deferred acknowledgements the
            # broker stops sending long before (its in-flight window), and redelivers later
            self._pending.pop(0)
            self.counters["dropped"] += 1
        self._pending.append((message, now, retained))
        return "accepted"

    def _reject(self, reason, now, device, detail):
        self.counters["rejected"] += 1
        self.rejects[reason] = self.rejects.get(reason, 0) + 1
        entry = self._pending_rejects.setdefault(reason, [0, now, None, ""])
        entry[0] += 1
        entry[1] = now
        entry[2] = device
        entry[3] = storable_detail(detail)
        return "rejected:" + reason

    def pending(self):
        return len(self._pending) + len(self._pending_rejects)

    # ------------------------------------------------------------------ writing
    def flush(self, now):
        """Write the batch in one transaction; returns the StoredAnomaly rows that are new.
        If the store refuses the batch, each message is tried on its own (`_isolate`). Only when
        the store takes nothing at all (disk full, database gone) is the batch kept for the next
        flush and the error raised."""
        if not self._pending and not self._pending_rejects:
            return []
        batch, self._pending = self._pending, []
        rejects, self._pending_rejects = self._pending_rejects, {}
        try:
            with self.store.transaction():
                stored = self._write(batch, now)
                self._write_rejects(rejects)
        except Exception as exc:
            log.debug("the store refused a batch of %d (%s); writing it one by one",
                      len(batch), exc)
            stored = self._isolate(batch, rejects, now)
        self.counters["stored"] += len(stored)
        return stored

    def _write_rejects(self, rejects):
        for reason, (count, last_at, device, detail) in rejects.items():
            self.store.record_rejected(reason, count, last_at, device, detail)

    def _keep(self, batch, rejects):
        """Give back what could not be written, ahead of what arrived since."""
        self._pending = list(batch) + self._pending
        for reason, entry in rejects.items():
            mine = self._pending_rejects.setdefault(reason, [0, entry[1], entry[2], entry[3]])
            mine[0] += entry[0]

    def _isolate(self, batch, rejects, now):
        """The batch failed as a whole: tell the messages the store refuses from a store that
        refuses everything. The counted rejects go first, in their own transaction; if even they
        cannot be written, the store is down and everything is kept. Then the batch is halved
        until each failing part is one message (a few transactions per bad message, not one per
        message of the batch: a stream of poison must not slow storage for everyone). A message
        that fails twice while the store still records its rejection is unstorable: rejected
        and, like every reject, acknowledged. If the rejection cannot be written either, the
        store went down: that message and all after it are kept and the error raised."""
        try:
            with self.store.transaction():
                self._write_rejects(rejects)
        except Exception:
            self._keep(batch, rejects)
            raise
        stored = []
        ranges = [(0, len(batch))]          # a stack: the earliest range on top, so order holds
        while ranges:
            start, end = ranges.pop()
            attempts = 1 if end - start > 1 else 2   # a lock or a hiccup passes; poison does not
            error = None
            for _attempt in range(attempts):
                try:
                    with self.store.transaction():
                        stored.extend(self._write(batch[start:end], now))
                    error = None
                    break
                except Exception as exc:
                    error = exc
            if error is None:
                continue
            if end - start > 1:
                middle = (start + end) // 2
                ranges.append((middle, end))
                ranges.append((start, middle))
                continue
            message = batch[start][0]
            detail = storable_detail("the store refused %s seq %d of run %s: %s: %s" % (
                message.type, message.seq, message.run, type(error).__name__, error))
            try:
                with self.store.transaction():
                    self.store.record_rejected("unstorable", 1, now, message.device, detail)
            except Exception:
                self._keep(batch[start:], {})
                raise error from None
            self.counters["rejected"] += 1
            self.rejects["unstorable"] = self.rejects.get("unstorable", 0) + 1
            count = self.rejects["unstorable"]
            if count <= 10 or count % 1000 == 0:    # a router sending poison must not flood logs
                log.warning("rejected a message the store cannot hold (%d so far): %s",
                            count, detail)
        return stored

    def _write(self, batch, now):
        """One batch in the caller's transaction, in a few statements per batch rather than a
        few per message: the devices' rows upserted together, the highest stored sequence
        numbers read together, the anomalies inserted together. Statuses and heartbeats (one
        per device per minute or less) keep their statement each."""
        store = self.store
        highest = {}
        anomalies = []
        inventories = []
        seen = {}            # device -> [first_at, run, live_at, live_run]: its upsert
        # device by device (each device's messages keep their order): every writer then locks
        # device rows in one order, so collectors sharing a PostgreSQL database cannot deadlock
        ordered = sorted(batch, key=lambda item: item[0].device)
        with_status = {m.device for m, _, _ in ordered if m.type == "status"}
        later = []           # heartbeats and inventories of the devices upserted together
        for message, received_at, retained in ordered:
            device = message.device
            if device in with_status:
                # a status depends on the run the device row holds, which the device's messages
                # before it may have changed: this device is written message by message, after
                # the upserts of the devices before it (the lock order stays by device)
                self._upsert_seen(seen)
                if message.type == "status":
                    if not store.record_status(message, received_at, retained=retained):
                        self.counters["stale"] += 1
                    continue
                store.upsert_device(device, message.run, received_at, live=not retained)
                self._record(message, received_at, highest, inventories)
            else:
                entry = seen.get(device)
                if entry is None:
                    entry = seen[device] = [received_at, message.run, None, None]
                if not retained:
                    entry[2], entry[3] = received_at, message.run
                if message.type != "anomaly":
                    later.append((message, received_at))
            if message.type == "anomaly":
                anomalies.append((message, received_at))
        self._upsert_seen(seen)
        for message, received_at in later:
            self._record(message, received_at, highest, inventories)
        for (device, run), seq in store.highest_anomaly_seqs(
                dict.fromkeys((m.device, m.run) for m, _ in anomalies)).items():
            highest[(device, run, "anomaly")] = seq
        stored = []
        # one insert for the batch, not one per anomaly
        for new in store.add_anomalies([m for m, _ in anomalies], [t for _, t in anomalies]):
            # every anomaly of a run is numbered from 1, so a first one above 1 is a loss too
            self._track(highest, (new.device, new.run, "anomaly"), new.seq, new.received_at,
                        from_start=True)
            stored.append(new)
        if self.fleet is not None:
            fleet_new = self.fleet.observe_anomalies(store, stored, now)
            for message, received_at in inventories:
                fleet_new.extend(self.fleet.observe_inventory(store, message, received_at))
            stored.extend(fleet_new)
        return stored

    def _record(self, message, received_at, highest, inventories):
        """A heartbeat or an inventory, once its device row exists."""
        if message.type == "heartbeat":
            key = (message.device, message.run, "heartbeat")
            if key not in highest:
                highest[key] = self.store.highest_seq(*key)
            self._track(highest, key, message.seq, received_at, from_start=False)
            self.store.record_heartbeat(message, received_at)
        elif message.type == "inventory":
            self.store.record_inventory(message, received_at)
            inventories.append((message, received_at))

    def _upsert_seen(self, seen):
        if seen:
            self.store.upsert_devices([(device,) + tuple(entry) for device, entry in seen.items()])
            seen.clear()

    def _next_anomaly_id(self):
        self._silent_seq += 1
        return self.run_id, self._silent_seq

    def _track(self, highest, key, seq, now, from_start):
        device, run, message_type = key
        last = highest.get(key)
        if last is None:
            if from_start and seq > 1:
                self._gap(key, 1, seq - 1, now)
            highest[key] = seq
        elif seq > last + 1:
            self._gap(key, last + 1, seq - 1, now)
            highest[key] = seq
        elif seq > last:
            highest[key] = seq
        elif self.store.fill_gap(device, run, message_type, seq):
            self.counters["late"] += 1   # a spool replay arriving after newer messages

    def _gap(self, key, first, last, now):
        device, run, message_type = key
        self.counters["gaps"] += 1
        self.store.record_gap(device, run, message_type, first, last, now)

    # ------------------------------------------------------------------ silence
    def tick(self, now, listening_since=None, caught_up_at=None):
        """Flush, then raise agent.silent for devices that stopped talking. Returns every newly
        stored anomaly (the batch's and the collector's own). `listening_since`: when the
        collector last (re)connected to the broker; heartbeats due before it were not missed
        by the router but by us. `caught_up_at`: the latest time up to which this collector has
        been handed everything the broker queued for it (None: now).

        Silence is judged up to the time every live collector of the store has caught up with
        (their progress is shared in the store): a heartbeat still queued behind a burst of
        anomalies, for us or for another collector of the group, is late, not missed.

        And heartbeats count as missed only while every collector of the store was listening:
        a heartbeat the collectors lost is our silence, not the router's. Heartbeats are QoS 0,
        so the broker drops those it routes to a group member that is away (killed, restarting),
        and a killed collector takes what it had read but not stored with it. So the latest
        (re)connection of any collector, and the death of any that stopped reporting, count
        like our own `listening_since`."""
        stored = self.flush(now)
        self.store.maintain(now)
        if self.fleet is not None:
            self.fleet.maintain(self.store, now)
        with self.store.transaction():
            self.store.report_progress(self.run_id, min(now, caught_up_at if caught_up_at
                                                         is not None else now), now,
                                       deaf_until=listening_since)
        heard_until = self.store.heard_until(now, PROGRESS_STALE)
        deaf_until = self.store.deaf_until(now, PROGRESS_STALE, PROGRESS_GONE)
        if deaf_until is not None and (listening_since is None or deaf_until > listening_since):
            listening_since = deaf_until
        with self.store.transaction():
            for device, reason, alive_at, interval, run in sorted(self.store.silence_candidates(
                    heard_until, self.missed_heartbeats, listening_since,
                    stop_grace=self.stop_grace)):
                if not self.store.claim_silence(device, now):
                    continue
                anomaly = self._silent_anomaly(device, reason, alive_at, interval, run, now)
                new = self.store.add_anomalies([anomaly], now, origin="collector")
                self.counters["silent"] += len(new)
                self.counters["stored"] += len(new)
                stored.extend(new)
        return stored

    def _silent_anomaly(self, device, reason, alive_at, interval, agent_run, now):
        _, seq = self._next_anomaly_id()
        evidence = {"reason": reason, "agent_run": agent_run, "raised_by": "collector"}
        if alive_at is not None:
            evidence["last_alive"] = round(alive_at, 3)
            evidence["silent_for"] = round(max(0.0, now - alive_at), 1)
        if reason == "last_will":
            summary = ("agent on %s went offline without a clean stop (its Last Will was sent)"
                       % device)
        elif reason == "stopped":
            evidence["stop_grace"] = self.stop_grace
            summary = ("agent on %s was stopped %s ago and is not back: the router is not "
                       "monitored" % (device, _duration(now - alive_at if alive_at else 0)))
        else:
            missed = int((now - alive_at) // interval) if interval else self.missed_heartbeats
            evidence.update(heartbeat_interval=interval, missed_heartbeats=missed)
            summary = ("agent on %s missed %d heartbeats (due every %g s)"
                       % (device, missed, interval))
        return validate(Anomaly(device=device, run=self.run_id, seq=seq,
                                time=float(now), kind=SILENT_KIND, severity=SILENT_SEVERITY,
                                summary=summary, evidence=evidence))


def _duration(seconds):
    seconds = max(0, int(seconds))
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return "%d %s" % (seconds // size, unit)
    return "%d s" % seconds
