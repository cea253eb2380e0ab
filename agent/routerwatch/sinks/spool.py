"""Bounded store-and-forward for anomalies waiting for the broker.

Anomalies are kept in arrival order and handed to the publisher in that order. One stays in the
spool until the broker has acknowledged it (MQTT PUBACK): then ack() removes it. When a cap is hit
(spool.max_items, spool.max_bytes) the oldest anomaly of the lowest severity present goes first
(all info before any low, all low before any medium ...), and every one dropped is counted and
reported in the heartbeat's drops as "spool".

Where the spool lives (spool.mode):
  ram    in memory only: lost when the agent stops (the default; nothing is written anywhere)
  tmp    in memory plus a size-capped file under run_dir (tmpfs): survives an agent restart,
         not a reboot. Every change is written through at once.
  flash  the same file in state_dir: survives a reboot. Changes are collected in memory and
         written at most every spool.flash_flush_seconds (and at close), so an anomaly delivered
         within that window never touches the flash; a crash loses at most that window.

File format: one record per line, bytes, never a raw newline inside a record:

    <state><sid> <severity> <payload>\\n        e.g.  +17 high {"v":1,"type":"anomaly",...}

  state     '+' waiting for the broker, '-' done (acknowledged, or dropped by a cap). A record is
            written '+' and its state byte is overwritten in place once, so acknowledging never
            grows the file.
  sid       spool id, decimal, increasing in arrival (= sending) order
  severity  one of contract.SEVERITIES
  payload   the anomaly exactly as contract.encode() made it (compact JSON), so an anomaly restored
            after a restart keeps its original device, run and seq and the collector can drop the
            duplicate if the broker had already received it.

Crash safety: a record counts only when its line ends in '\\n' and its payload decodes as an
Anomaly of the stated severity; a torn last line (a kill or power cut mid-write) and any damaged
line are skipped and counted as "spool.damaged". When loading finds anything dead or damaged,
the file is rewritten with the live records only (write a new file, then rename over the old).

Size: the live records never exceed max_bytes (the cap evicts first); when an append would push
the file past max_bytes, the file is first rewritten without its '-' records, so the file never
exceeds max_bytes either. When nothing is live the file is truncated to zero.
"""
import logging
import os
import threading
import time
from collections import OrderedDict

from ..contract import SEVERITIES, ContractError, decode

log = logging.getLogger("routerwatch")

PENDING, DONE = b"+", b"-"
# payloads are at most contract.MAX_PAYLOAD_BYTES; a longer line cannot be one of ours
MAX_LINE_BYTES = 64 * 1024 + 64
_SEVERITY_BYTES = {s.encode(): i for i, s in enumerate(SEVERITIES)}


class SpoolItem:
    __slots__ = ("sid", "severity", "line", "offset")

    def __init__(self, sid, severity, line, offset=None):
        self.sid = sid              # spool id, increasing in arrival order
        self.severity = severity    # index into SEVERITIES: 0 = info ... 4 = critical
        self.line = line            # the whole record line, starting with PENDING
        self.offset = offset        # where the line starts in the file; None = not written yet

    @property
    def payload(self):
        return self.line.split(b" ", 2)[2][:-1]


def spool_path(config):
    """The spool file for an AgentConfig: spool.path, else run_dir/spool (tmp) or state_dir/spool."""
    if config.spool.path:
        return config.spool.path
    if config.spool.mode == "flash":
        return config.state_file("spool")
    return os.path.join(config.run_dir, "spool")


class Spool:
    """Thread-safe: the detection loop puts, the publisher takes and acknowledges."""

    def __init__(self, config, path=None, clock=time.monotonic):
        self.mode = config.mode
        self.max_items = config.max_items
        self.max_bytes = config.max_bytes
        self.flush_seconds = config.flash_flush_seconds
        self.clock = clock
        self._lock = threading.RLock()
        self._queue = OrderedDict()                 # sid -> item, not yet handed out
        self._inflight = OrderedDict()              # sid -> item, handed out, no PUBACK yet
        self._by_severity = [OrderedDict() for _ in SEVERITIES]   # every live item, by severity
        self._live_bytes = 0
        self._next_sid = 1
        self.dropped = 0                            # evicted by a cap
        self.damaged = 0                            # torn or unreadable records found at load
        self.restored = 0                           # live records found at load
        self.file_writes = 0                        # write calls that reached the file
        self.compactions = 0
        self.file_errors = 0                        # writes that failed (full /tmp, flash error)
        self._file = None
        if self.mode != "ram":
            if not path:
                raise ValueError("spool mode %s needs a path" % self.mode)
            self._file = _SpoolFile(path, durable=self.mode == "flash")
            self._load()
        # flash: what changed since the last write to the file
        self._unwritten = []                        # items appended in RAM only
        self._unwritten_done = 0                    # items finished since the last flush
        self._last_flush = clock()

    # ------------------------------------------------------------------ producer side
    def put(self, severity, payload):
        """Keep one encoded anomaly; returns its sid. Evicts (and counts) when over a cap."""
        sev = SEVERITIES.index(severity)
        with self._lock:
            sid = self._next_sid
            self._next_sid += 1
            item = SpoolItem(sid, sev, b"%s%d %s %s\n" % (PENDING, sid, SEVERITIES[sev].encode(),
                                                            payload))
            self._queue[sid] = item
            self._by_severity[sev][sid] = item
            self._live_bytes += len(item.line)
            try:
                # flip the victims before the append: an append may rewrite the file
                for victim in self._evict():
                    self._write_done(victim)
                if item.sid in self._queue or item.sid in self._inflight:
                    self._write_new(item)
            except OSError as exc:
                self._file_failed(exc)
            return sid

    def _evict(self):
        victims = []
        while len(self._queue) + len(self._inflight) > self.max_items \
                or self._live_bytes > self.max_bytes:
            # an anomaly already with the publisher may still arrive, but it is no longer kept
            # for a restart: the cap is about what the spool holds, and severity decides
            victim = next(iter(next(b for b in self._by_severity if b).values()))
            self._forget(victim)
            self.dropped += 1
            victims.append(victim)
        return victims

    def _forget(self, item):
        if self._queue.pop(item.sid, None) is None:
            del self._inflight[item.sid]
        del self._by_severity[item.severity][item.sid]
        self._live_bytes -= len(item.line)

    # ------------------------------------------------------------------ publisher side
    def take(self, limit):
        """Up to `limit` (sid, payload) in order; they stay in the spool until ack(sid)."""
        out = []
        with self._lock:
            while self._queue and len(out) < limit:
                sid, item = self._queue.popitem(last=False)
                self._inflight[sid] = item
                out.append((sid, item.payload))
        return out

    def ack(self, sid):
        """The broker has it: forget it for good. False if it was already gone (dropped)."""
        with self._lock:
            item = self._inflight.get(sid) or self._queue.get(sid)
            if item is None:
                return False
            self._forget(item)
            try:
                self._write_done(item)
            except OSError as exc:
                self._file_failed(exc)
            return True

    def export(self):
        """Every live (severity, payload) in order, for a successor spool in this process."""
        with self._lock:
            return [(SEVERITIES[it.severity], it.payload) for it in self._live_items()]

    def depth(self):
        with self._lock:
            return len(self._queue) + len(self._inflight)

    def inflight(self):
        with self._lock:
            return len(self._inflight)

    def waiting(self):
        """Items not yet handed to the publisher."""
        with self._lock:
            return len(self._queue)

    def live_bytes(self):
        return self._live_bytes

    def drops(self):
        return {"spool": self.dropped, "spool.damaged": self.damaged}

    def counters(self):
        return {"spool.restored": self.restored, "spool.file_writes": self.file_writes,
                "spool.file_errors": self.file_errors}

    def _file_failed(self, exc):
        """A failed write leaves the anomaly in memory: it is still sent, only not kept across
        a restart. Logged the first time and then every thousandth."""
        self.file_errors += 1
        if self.file_errors % 1000 == 1:
            log.error("spool file %s: %s; anomalies are kept in memory only (%d errors)",
                      self._file.path, exc.strerror or exc, self.file_errors)

    # ------------------------------------------------------------------ the file
    def _write_new(self, item):
        if self._file is None:
            return
        if self.mode == "flash":
            self._unwritten.append(item)
            if len(self._unwritten) > 2 * self.max_items:   # a flood evicting as it comes
                self._unwritten = [it for it in self._unwritten
                                   if it.sid in self._queue or it.sid in self._inflight]
            return
        if self._file.size + len(item.line) > self.max_bytes:
            self._compact()          # rewrites every live item, this one included
        else:
            item.offset = self._file.append(item.line)
            self.file_writes += 1

    def _write_done(self, item):
        if self._file is None:
            return
        if self.mode == "flash":
            if item.offset is not None:   # only what is on the flash needs a rewrite
                self._unwritten_done += 1
            return
        if self.depth() == 0:
            self._truncate()
        elif item.offset is not None:
            self._file.mark_done(item.offset)
            self.file_writes += 1

    def _live_items(self):
        items = list(self._inflight.values()) + list(self._queue.values())
        items.sort(key=lambda it: it.sid)
        return items

    def _compact(self):
        items = self._live_items()
        self._file.rewrite(items)     # sets each item's offset
        self.file_writes += 1
        self.compactions += 1

    def _truncate(self):
        if self._file.size:
            self._file.truncate()
            self.file_writes += 1

    def flush_due_in(self, now=None):
        """Seconds until the next flash write is due; None when nothing waits to be written."""
        if self.mode != "flash" or not (self._unwritten or self._unwritten_done):
            return None
        now = self.clock() if now is None else now
        return max(0.0, self._last_flush + self.flush_seconds - now)

    def maybe_flush(self, now=None):
        """Flash mode: write what changed if flash_flush_seconds have passed. True if it wrote."""
        now = self.clock() if now is None else now
        with self._lock:
            due = self.flush_due_in(now)
            if due is None or due > 0:
                return False
            self.flush(now)
            return True

    def flush(self, now=None):
        """Flash mode: write what changed now (also called at close)."""
        with self._lock:
            self._last_flush = self.clock() if now is None else now
            if self.mode != "flash" or self._file is None \
                    or not (self._unwritten or self._unwritten_done):
                return
            try:
                self._flush_changes()
            except OSError as exc:
                self._file_failed(exc)

    def _flush_changes(self):
        """Write the batch; on an error it stays pending and the next flush tries again."""
        new = [it for it in self._unwritten if it.sid in self._queue or it.sid in self._inflight]
        if self.depth() == 0:
            self._truncate()
        elif self._unwritten_done or \
                self._file.size + sum(len(it.line) for it in new) > self.max_bytes:
            self._compact()       # one sequential write of the live set
        elif new:
            offset = self._file.append(b"".join(it.line for it in new))
            for it in new:
                it.offset = offset
                offset += len(it.line)
            self.file_writes += 1
        self._file.sync()
        self._unwritten = []
        self._unwritten_done = 0

    def close(self):
        with self._lock:
            if self._file is not None:
                self.flush()
                self._file.close()
                self._file = None

    # ------------------------------------------------------------------ loading
    def _load(self):
        """Live records from the file, the cap applied while reading (memory stays bounded)."""
        counts = {"dead": 0, "damaged": 0, "evicted": 0}
        in_order = True
        for sid, sev, line, offset in self._file.records(counts):
            if sid in self._queue or sid in self._inflight:
                counts["damaged"] += 1
                continue
            in_order = in_order and sid >= self._next_sid
            item = SpoolItem(sid, sev, line, offset)
            self._queue[sid] = item
            self._by_severity[sev][sid] = item
            self._live_bytes += len(line)
            self._next_sid = max(self._next_sid, sid + 1)
            self.restored += 1
            counts["evicted"] += len(self._evict())
        self.restored -= counts["evicted"]
        self.damaged += counts["damaged"]
        if not in_order:   # hand out in sid order, whatever order the lines were in
            items = sorted(self._queue.values(), key=lambda it: it.sid)
            self._queue = OrderedDict((it.sid, it) for it in items)
            for bucket in self._by_severity:
                bucket.clear()
            for it in items:
                self._by_severity[it.severity][it.sid] = it
        if any(counts.values()) or not in_order:
            if self.depth():
                self._compact()
            else:
                self._truncate()
        if self.restored:
            log.info("spool: %d anomalies restored from %s (%d damaged records skipped)",
                     self.restored, self._file.path, counts["damaged"])


class _SpoolFile:
    """The file under a spool: positioned writes only, so a state flip lands in place."""

    def __init__(self, path, durable):
        self.path = path
        self.durable = durable
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        # not through a symlink someone planted in /tmp
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        self.size = os.fstat(self.fd).st_size

    def records(self, counts):
        """Yield (sid, severity, line, offset) of each live record; counts["dead"] and
        counts["damaged"] are incremented for the others."""
        offset = 0
        with open(self.path, "rb") as handle:
            while True:
                line = handle.readline(MAX_LINE_BYTES)
                if not line:
                    break
                start = offset
                offset += len(line)
                if not line.endswith(b"\n"):
                    counts["damaged"] += 1   # torn last line, or an over-long one: skip it
                    while line and not line.endswith(b"\n"):
                        line = handle.readline(MAX_LINE_BYTES)
                        offset += len(line)
                    continue
                parsed = _parse_line(line)
                if parsed is None:
                    counts["damaged"] += 1
                elif parsed[0] == DONE:
                    counts["dead"] += 1
                else:
                    yield parsed[1], parsed[2], line, start

    def append(self, data):
        offset = self.size
        _write_all(self.fd, data, offset)
        self.size += len(data)
        return offset

    def mark_done(self, offset):
        os.pwrite(self.fd, DONE, offset)

    def rewrite(self, items):
        temporary = self.path + ".new"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        data = b"".join(it.line for it in items)
        try:
            _write_all(fd, data, 0)
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        offset = 0
        for it in items:        # only now: until the rename the old offsets are the true ones
            it.offset = offset
            offset += len(it.line)
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        self.size = len(data)
        if self.durable:
            self._sync_directory()

    def truncate(self):
        os.ftruncate(self.fd, 0)
        self.size = 0

    def sync(self):
        if self.durable:
            os.fsync(self.fd)

    def _sync_directory(self):
        try:
            fd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _write_all(fd, data, offset):
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _parse_line(line):
    """(state, sid, severity index) of a well-formed record line, else None."""
    state = line[:1]
    if state not in (PENDING, DONE):
        return None
    parts = line[1:-1].split(b" ", 2)
    if len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 18:
        return None
    sev = _SEVERITY_BYTES.get(parts[1])
    if sev is None:
        return None
    if state == PENDING:   # a dead record's payload is never sent again, so needs no check
        try:
            anomaly = decode(parts[2], "anomaly")
        except ContractError:
            return None
        if anomaly.severity != SEVERITIES[sev]:
            return None
    return state, int(parts[0]), sev
