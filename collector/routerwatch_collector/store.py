"""Storage of what the collector accepted: anomalies, devices, sequence gaps, rejected messages.

`Store` is the interface the rest of the collector talks to; `SqliteStore` is the default backend
(one file, WAL mode, one transaction per flushed batch). A PostgreSQL backend can implement the
same methods later for a fleet: the SQL below sticks to what both speak (INSERT ... ON CONFLICT
DO NOTHING, UPDATE ... WHERE ... IS NULL as a claim), and every piece of shared state lives in
the database rather than in one process, so several collector processes can write to one store.

Times are seconds since the epoch, passed in by the caller (the collector's clock, `received_at`),
never read here.
"""
import contextlib
import math
import os
import sqlite3
from dataclasses import dataclass, replace
from typing import Optional

from routerwatch import jsonio
from routerwatch.contract import SEVERITIES

# status column values: what the agent said last, with the Last Will told apart from a clean stop
STATUS_ONLINE, STATUS_OFFLINE, STATUS_STOPPED = "online", "offline", "stopped"

# The heartbeat interval a router announces sets its silence deadline, within these bounds: an
# interval of 0 would make every tick a silence, a huge one would switch the alarm off. The agent
# itself allows 5-3600 s (intervals.heartbeat).
HEARTBEAT_INTERVAL_MIN, HEARTBEAT_INTERVAL_MAX = 5.0, 86400.0

# Heartbeat history for the dashboard's charts: at most one sample per device per spacing, kept
# for a day, so a device holds at most 1440 samples at the default spacing whatever it sends.
HEARTBEAT_SAMPLE_SPACING = 60.0
HEARTBEAT_HISTORY_SECONDS = 86400.0

# Every read the dashboard makes is bounded: a caller's limit is clipped to this.
MAX_READ_ROWS = 1000

# anomaly_counts holds the number of anomalies per 5 minutes (by arrival), severity and kind, so
# the fleet's chart and top kinds over a day or a month read a few thousand rows, not millions.
# Histogram bars are whole multiples of it (the dashboard's are 5 min and longer).
ROLLUP_SECONDS = 300


def rollup_bucket(received_at):
    return float(math.floor(received_at / ROLLUP_SECONDS) * ROLLUP_SECONDS)


# The most messages one gap can claim to be missing. A router loses at most what its spool
# dropped (spool.max_items is at most 1,000,000) or the heartbeats of an outage (a year of the
# shortest 5 s interval is 6.3 million, but heartbeats are numbered per run and a run rarely
# lasts that long); a run that starts at seq 2^53 claims 9e15. A gap wider than this is counted
# as one suspect event (`suspect`), not as missing messages: a router cannot inflate the fleet's
# loss figures, and no sum over gaps can overflow.
GAP_CLAIM_MAX = 1000000
# SQL for one gap row (SQLite and PostgreSQL alike): whether it is suspect (1/0), and how many
# messages it counts as missing (fill_gap never lets `filled` exceed the width)
_GAP_WIDTH = "(last_seq - first_seq + 1)"
_GAP_SUSPECT = "(CASE WHEN %s > %d THEN 1 ELSE 0 END)" % (_GAP_WIDTH, GAP_CLAIM_MAX)
_GAP_MISSING = "(CASE WHEN %s > %d THEN 0 ELSE %s - filled END)" % (
    _GAP_WIDTH, GAP_CLAIM_MAX, _GAP_WIDTH)


@dataclass(frozen=True)
class AnomalyFilter:
    """What the dashboard and the API select anomalies by; every field optional.
    `kind` is a kind or a glob of one (`login.*`, `*.silent`); `severities` the accepted ones;
    `since`/`until` bound received_at (the collector's clock), until exclusive."""
    device: Optional[str] = None
    kind: Optional[str] = None
    severities: tuple = ()
    since: Optional[float] = None
    until: Optional[float] = None


@dataclass(frozen=True)
class StoredAnomaly:
    """One row of the anomalies table: the contract fields plus when the collector got it."""
    device: str
    run: str
    seq: int
    time: float
    kind: str
    severity: str
    summary: str
    evidence: dict
    count: int
    received_at: float
    origin: str          # "agent", or "collector" for the collector's own agent.silent
    id: Optional[int] = None   # the store's row id, set on rows read back (the dashboard links it)

    def as_dict(self):
        out = {"device": self.device, "run": self.run, "seq": self.seq, "time": self.time,
               "kind": self.kind, "severity": self.severity, "summary": self.summary,
               "evidence": self.evidence, "count": self.count,
               "received_at": self.received_at, "origin": self.origin}
        if self.id is not None:
            out["id"] = self.id
        return out


@dataclass(frozen=True)
class DeviceRow:
    device: str
    first_seen: float
    last_seen: float
    run: str
    status: Optional[str]          # online | offline (Last Will) | stopped (clean shutdown)
    status_at: Optional[float]
    alive_at: Optional[float]      # last heartbeat or "online": what silence is measured from
    heartbeat_interval: Optional[float]
    last_heartbeat: Optional[dict]  # uptime, rss_kb, cpu_percent, spool_depth, counters, drops
    heartbeats: int
    anomalies: int
    rejected: int
    agent_version: Optional[str]
    firmware: Optional[dict]
    firmware_hash: Optional[str]
    baseline_hash: Optional[str]
    package_manager: Optional[str]
    silent_since: Optional[float]
    gaps_missing: int = 0          # sequence numbers never received (anomalies + heartbeats)
    gaps_suspect: int = 0          # jumps too wide to be losses (GAP_CLAIM_MAX): one event each

    def as_dict(self):
        return dict(self.__dict__)


class Store:
    """What the collector needs from storage. Methods called inside `with store.transaction():`
    commit together; called outside one, each commits on its own.

    Implementations: SqliteStore (default). A PostgreSQL backend would implement the same
    methods with the same meaning; nothing outside this module knows which one it talks to.
    """

    def transaction(self):
        raise NotImplementedError

    def add_anomalies(self, batch, received_at, origin="agent"):
        """Insert contract Anomalies; ones already stored (same device, run, seq) are ignored.
        Returns the StoredAnomaly rows that are new."""
        raise NotImplementedError

    def upsert_device(self, device, run, now, live=True):
        raise NotImplementedError

    def record_heartbeat(self, heartbeat, received_at):
        raise NotImplementedError

    def record_status(self, status, received_at, retained=False):
        raise NotImplementedError

    def record_inventory(self, inventory, received_at):
        raise NotImplementedError

    def record_rejected(self, reason, count, now, device=None, detail=""):
        raise NotImplementedError

    def highest_seq(self, device, run, message_type):
        raise NotImplementedError

    def record_gap(self, device, run, message_type, first_seq, last_seq, now):
        raise NotImplementedError

    def fill_gap(self, device, run, message_type, seq):
        raise NotImplementedError

    def silence_candidates(self, now, missed_heartbeats, listening_since=None, stop_grace=None):
        raise NotImplementedError

    def claim_silence(self, device, now):
        raise NotImplementedError

    def query_anomalies(self, device=None, since=None, kind=None, limit=100):
        raise NotImplementedError

    # -------------------------------------------------------------- reads for the dashboard
    # Each one is bounded by a limit (clipped to MAX_READ_ROWS) or a time range.

    def find_anomalies(self, where, limit=100, before_id=None):
        """StoredAnomaly rows (with id) matching an AnomalyFilter, newest first; before_id pages."""
        raise NotImplementedError

    def anomaly(self, anomaly_id):
        """One StoredAnomaly (with id), or None."""
        raise NotImplementedError

    def anomaly_histogram(self, where, bucket_seconds):
        """{(bucket_start, severity): count} over where.since .. where.until (both required);
        bars start at multiples of bucket_seconds (since the epoch), a multiple of
        ROLLUP_SECONDS or shorter than it."""
        raise NotImplementedError

    def top_kinds(self, where, limit=10):
        """[(kind, count, worst severity)] in the filter, most frequent first."""
        raise NotImplementedError

    def top_devices(self, where, limit=10):
        """[(device, count, worst severity)] in the filter, most anomalies first. Reads the
        anomalies themselves: give it a narrow filter (the dashboard asks for high and
        critical ones)."""
        raise NotImplementedError

    def fleet_counts(self):
        """{"online": n, "silent": n, "stopped": n, "offline": n, "unknown": n, "total": n}.
        silent: agent.silent raised and not yet ended; offline: Last Will, not yet claimed."""
        raise NotImplementedError

    def device(self, device):
        """One DeviceRow, or None."""
        raise NotImplementedError

    def device_page(self, status=None, prefix=None, after=None, limit=100):
        """DeviceRows ordered by id, after `after`; status as in fleet_counts()."""
        raise NotImplementedError

    def heartbeat_history(self, device, since, limit=MAX_READ_ROWS):
        """[{"at", "rss_kb", "cpu_percent", "spool_depth", "drops", "source_errors"}], oldest first."""
        raise NotImplementedError

    def devices(self):
        raise NotImplementedError

    def gaps(self, device=None, limit=None):
        """Gap rows, oldest first; with a limit, the newest `limit` of them."""
        raise NotImplementedError

    def rejected(self):
        raise NotImplementedError

    def rejected_rows(self):
        """[{reason, count, first_at, last_at, last_device, last_detail}] by reason."""
        raise NotImplementedError

    def close(self):
        raise NotImplementedError


SCHEMA = """
CREATE TABLE IF NOT EXISTS anomalies (
    id          INTEGER PRIMARY KEY,
    device      TEXT    NOT NULL,
    run         TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    time        REAL    NOT NULL,   -- the agent's clock (a router without NTP may be far off)
    kind        TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    summary     TEXT    NOT NULL,
    evidence    TEXT    NOT NULL,   -- JSON object
    count       INTEGER NOT NULL,
    v           INTEGER NOT NULL,
    received_at REAL    NOT NULL,   -- the collector's clock: what --since filters on
    origin      TEXT    NOT NULL DEFAULT 'agent'
);
-- QoS 1 redelivers; this index is what makes every anomaly land exactly once
CREATE UNIQUE INDEX IF NOT EXISTS anomalies_identity ON anomalies (device, run, seq);
CREATE INDEX IF NOT EXISTS anomalies_received ON anomalies (received_at);
CREATE INDEX IF NOT EXISTS anomalies_device_received ON anomalies (device, received_at);

CREATE TABLE IF NOT EXISTS devices (
    device             TEXT PRIMARY KEY,
    first_seen         REAL NOT NULL,
    last_seen          REAL NOT NULL,
    run                TEXT NOT NULL,
    status             TEXT,
    status_at          REAL,
    alive_at           REAL,
    heartbeat_interval REAL,
    heartbeat_run      TEXT,
    heartbeat_seq      INTEGER,
    last_heartbeat     TEXT,
    heartbeats         INTEGER NOT NULL DEFAULT 0,
    anomalies          INTEGER NOT NULL DEFAULT 0,
    rejected           INTEGER NOT NULL DEFAULT 0,
    agent_version      TEXT,
    firmware           TEXT,
    firmware_hash      TEXT,
    baseline_hash      TEXT,
    package_manager    TEXT,
    inventory_at       REAL,
    silent_since       REAL
);

CREATE TABLE IF NOT EXISTS gaps (
    id          INTEGER PRIMARY KEY,
    device      TEXT    NOT NULL,
    run         TEXT    NOT NULL,
    type        TEXT    NOT NULL,   -- anomaly | heartbeat
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    detected_at REAL    NOT NULL,
    filled      INTEGER NOT NULL DEFAULT 0   -- late arrivals inside the range (spool replays)
);
CREATE INDEX IF NOT EXISTS gaps_by_run ON gaps (device, run, type);

-- a sampled history of each device's heartbeats (the dashboard's charts), pruned to a day
CREATE TABLE IF NOT EXISTS heartbeat_samples (
    device        TEXT    NOT NULL,
    at            REAL    NOT NULL,   -- received_at
    rss_kb        INTEGER NOT NULL,
    cpu_percent   REAL    NOT NULL,
    spool_depth   INTEGER NOT NULL,
    drops         INTEGER NOT NULL,   -- sum of the heartbeat's drop counters
    source_errors INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS heartbeat_samples_by_device ON heartbeat_samples (device, at);
-- the newest high/critical anomalies and the devices with the most of them, read from the index
CREATE INDEX IF NOT EXISTS anomalies_severity_received_device ON anomalies (severity, received_at,
                                                                            device);
-- the fleet's counts by state read this index, not the device rows with their JSON
CREATE INDEX IF NOT EXISTS devices_state ON devices (silent_since, status);

-- anomalies per ROLLUP_SECONDS of arrival, severity and kind (the dashboard's chart, top kinds)
CREATE TABLE IF NOT EXISTS anomaly_counts (
    bucket   REAL    NOT NULL,
    severity TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (bucket, severity, kind)
);

CREATE TABLE IF NOT EXISTS rejected (
    reason      TEXT PRIMARY KEY,
    count       INTEGER NOT NULL,
    first_at    REAL    NOT NULL,
    last_at     REAL    NOT NULL,
    last_device TEXT,
    last_detail TEXT
);
"""


def _clip_limit(limit):
    return max(1, min(int(limit), MAX_READ_ROWS))


def _gap_row(r):
    return dict(r, suspect=bool(r["suspect"]))


def _loads_or_none(text):
    return None if text is None else jsonio.loads(text)


class SqliteStore(Store):
    """SQLite in WAL mode: readers (the CLI) never block the writer, one fsync per batch."""

    def __init__(self, path, busy_timeout=10.0, heartbeat_sample_spacing=HEARTBEAT_SAMPLE_SPACING,
                 read_only=False):
        self.path = str(path)
        self.heartbeat_sample_spacing = float(heartbeat_sample_spacing)
        # one thread at a time, but not necessarily the one that opened it (the collector may
        # be built in one thread and run in another)
        self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._depth = 0
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a power cut may lose the last batch but never corrupts the file;
        # the agent's QoS 1 redelivery covers what the broker had not seen acknowledged.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        if not read_only:
            self._fill_anomaly_counts()
        if read_only:
            # the dashboard's connections: nothing it runs can change the store
            self._db.execute("PRAGMA query_only=ON")

    # ------------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def transaction(self):
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        # IMMEDIATE takes the write lock up front, so two collector processes on one file
        # serialise their batches instead of failing halfway through one
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            self._db.execute("ROLLBACK")
            raise
        self._depth = 0
        self._db.execute("COMMIT")

    def _x(self, sql, args=()):
        return self._db.execute(sql, args)

    # ------------------------------------------------------------------ writes
    def add_anomalies(self, batch, received_at, origin="agent"):
        new = []
        with self.transaction():
            for a in batch:
                evidence = jsonio.dumps(a.evidence)
                cur = self._x(
                    "INSERT INTO anomalies (device, run, seq, time, kind, severity, summary, "
                    "evidence, count, v, received_at, origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT (device, run, seq) DO NOTHING",
                    (a.device, a.run, a.seq, a.time, a.kind, a.severity, a.summary, evidence,
                     a.count, a.v, received_at, origin))
                if cur.rowcount == 1:
                    self._x("UPDATE devices SET anomalies = anomalies + 1 WHERE device = ?",
                            (a.device,))
                    self._x("INSERT INTO anomaly_counts (bucket, severity, kind, n) "
                            "VALUES (?,?,?,1) ON CONFLICT (bucket, severity, kind) DO UPDATE "
                            "SET n = n + 1", (rollup_bucket(received_at), a.severity, a.kind))
                    new.append(StoredAnomaly(a.device, a.run, a.seq, a.time, a.kind, a.severity,
                                             a.summary, a.evidence, a.count, received_at, origin))
        return new

    def upsert_device(self, device, run, now, live=True):
        """The device exists from its first valid message on; last_seen and run follow it.
        A retained message replayed on subscribe (live=False) proves nothing about now."""
        if live:
            self._x("INSERT INTO devices (device, first_seen, last_seen, run) VALUES (?,?,?,?) "
                    "ON CONFLICT (device) DO UPDATE SET last_seen = excluded.last_seen, "
                    "run = excluded.run", (device, now, now, run))
        else:
            self._x("INSERT INTO devices (device, first_seen, last_seen, run) VALUES (?,?,?,?) "
                    "ON CONFLICT (device) DO NOTHING", (device, now, now, run))

    def record_heartbeat(self, heartbeat, received_at):
        h = heartbeat
        health = {"interval": h.interval, "uptime": h.uptime, "rss_kb": h.rss_kb, "cpu_percent": h.cpu_percent,
                  "spool_depth": h.spool_depth, "counters": h.counters, "drops": h.drops,
                  "seq": h.seq, "time": h.time}
        # speaking again ends a silence: a new agent.silent may be raised for the next one
        self._x("UPDATE devices SET alive_at = ?, heartbeat_interval = ?, heartbeat_run = ?, "
                "heartbeat_seq = MAX(COALESCE(CASE WHEN heartbeat_run = ? THEN heartbeat_seq "
                "END, 0), ?), last_heartbeat = ?, heartbeats = heartbeats + 1, "
                "silent_since = NULL, status = CASE WHEN status IS NULL OR status != ? "
                "THEN ? ELSE status END WHERE device = ?",
                (received_at, min(max(h.interval, HEARTBEAT_INTERVAL_MIN),
                                  HEARTBEAT_INTERVAL_MAX),
                 h.run, h.run, h.seq, jsonio.dumps(health),
                 STATUS_ONLINE, STATUS_ONLINE, h.device))
        self._sample_heartbeat(h, received_at)

    def _sample_heartbeat(self, h, received_at):
        drops = h.drops if isinstance(h.drops, dict) else {}
        source_errors = drops.get("source_errors", 0)
        cur = self._x(
            "INSERT INTO heartbeat_samples (device, at, rss_kb, cpu_percent, spool_depth, drops, "
            "source_errors) SELECT ?,?,?,?,?,?,? WHERE EXISTS (SELECT 1 FROM devices WHERE "
            "device = ?) AND NOT EXISTS (SELECT 1 FROM heartbeat_samples WHERE device = ? AND "
            "at > ?)",
            (h.device, received_at, int(h.rss_kb), float(h.cpu_percent), int(h.spool_depth),
             sum(drops.values()), source_errors if isinstance(source_errors, int) else 0,
             h.device, h.device, received_at - self.heartbeat_sample_spacing))
        if cur.rowcount:
            self._x("DELETE FROM heartbeat_samples WHERE device = ? AND at < ?",
                    (h.device, received_at - HEARTBEAT_HISTORY_SECONDS))

    def record_status(self, status, received_at, retained=False):
        """online / offline. The Last Will (seq 0) is 'offline'; an offline the agent sent itself
        on a clean stop (seq > 0) is 'stopped', which silence detection leaves alone.

        A status of another run than the device's latest is history when it was retained
        (replayed on (re)subscribe) or says offline (the Last Will of a run the router has
        already replaced): it is ignored. A replayed 'online' neither ends a silence nor counts
        as the agent being alive now. Creates the device row like upsert_device().
        Returns whether the status was applied."""
        row = self._x("SELECT run FROM devices WHERE device = ?", (status.device,)).fetchone()
        if row is not None and row["run"] != status.run and (
                retained or status.state != STATUS_ONLINE):
            return False
        self.upsert_device(status.device, status.run, received_at, live=not retained)
        if status.state == STATUS_ONLINE:
            if retained:
                self._x("UPDATE devices SET status = ?, status_at = COALESCE(status_at, ?), "
                        "alive_at = COALESCE(alive_at, ?) WHERE device = ?",
                        (STATUS_ONLINE, received_at, received_at, status.device))
            else:
                self._x("UPDATE devices SET status = ?, status_at = ?, alive_at = ?, "
                        "silent_since = NULL WHERE device = ?",
                        (STATUS_ONLINE, received_at, received_at, status.device))
        else:
            state = STATUS_OFFLINE if status.seq == 0 else STATUS_STOPPED
            self._x("UPDATE devices SET status = ?, status_at = ? WHERE device = ? AND "
                    "(status IS NULL OR status != ?)",
                    (state, received_at, status.device, state))
        return True

    def record_inventory(self, inventory, received_at):
        i = inventory
        self._x("UPDATE devices SET agent_version = ?, firmware = ?, firmware_hash = ?, "
                "baseline_hash = ?, package_manager = ?, inventory_at = ? WHERE device = ?",
                (i.agent_version, jsonio.dumps(i.firmware), i.firmware_hash, i.baseline_hash,
                 i.package_manager, received_at, i.device))

    def record_rejected(self, reason, count, now, device=None, detail=""):
        self._x("INSERT INTO rejected (reason, count, first_at, last_at, last_device, last_detail) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT (reason) DO UPDATE SET "
                "count = count + excluded.count, last_at = excluded.last_at, "
                "last_device = excluded.last_device, last_detail = excluded.last_detail",
                (reason, count, now, now, device, detail))
        if device:
            # only a device that already exists: garbage must not create device rows
            self._x("UPDATE devices SET rejected = rejected + ? WHERE device = ?", (count, device))

    # ------------------------------------------------------------------ sequence gaps
    def highest_seq(self, device, run, message_type):
        if message_type == "anomaly":
            row = self._x("SELECT MAX(seq) AS m FROM anomalies WHERE device = ? AND run = ?",
                          (device, run)).fetchone()
            return row["m"]
        row = self._x("SELECT heartbeat_seq FROM devices WHERE device = ? AND heartbeat_run = ?",
                      (device, run)).fetchone()
        return None if row is None else row["heartbeat_seq"]

    def record_gap(self, device, run, message_type, first_seq, last_seq, now):
        self._x("INSERT INTO gaps (device, run, type, first_seq, last_seq, detected_at) "
                "VALUES (?,?,?,?,?,?)", (device, run, message_type, first_seq, last_seq, now))

    def fill_gap(self, device, run, message_type, seq):
        """A late message inside a recorded gap; True if it was one."""
        cur = self._x("UPDATE gaps SET filled = filled + 1 WHERE device = ? AND run = ? AND "
                      "type = ? AND ? BETWEEN first_seq AND last_seq AND "
                      "filled < last_seq - first_seq + 1", (device, run, message_type, seq))
        return cur.rowcount > 0

    def gaps(self, device=None, limit=None):
        """Gaps oldest first (with limit: the newest `limit`): `missing` is what each counts as
        lost, 0 for a suspect one."""
        sql = ("SELECT device, run, type, first_seq, last_seq, detected_at, filled, "
               "%s AS missing, %s AS suspect FROM gaps" % (_GAP_MISSING, _GAP_SUSPECT))
        args = ()
        if device:
            sql += " WHERE device = ?"
            args = (device,)
        if limit is not None:
            rows = self._x(sql + " ORDER BY id DESC LIMIT ?", args + (_clip_limit(limit),))
            return [_gap_row(r) for r in reversed(rows.fetchall())]
        return [_gap_row(r) for r in self._x(sql + " ORDER BY id", args)]

    # ------------------------------------------------------------------ silence
    def silence_candidates(self, now, missed_heartbeats, listening_since=None, stop_grace=None):
        """Devices that said goodbye by Last Will, whose heartbeats stopped, or that stopped
        cleanly more than `stop_grace` seconds ago and did not come back (None: a clean stop is
        never a silence), and for which no agent.silent has been raised yet:
        [(device, reason, alive_at, interval, run)], reason last_will | heartbeats | stopped;
        for `stopped` alive_at is when the stop arrived.
        Heartbeats and the grace count only while the collector was listening (since
        `listening_since`): after a broker outage nobody is silent for having been unheard, and
        a router that came back meanwhile has its retained `online` replayed first."""
        since = listening_since if listening_since is not None else float("-inf")
        rows = self._x(
            "SELECT device, status, alive_at, heartbeat_interval, run FROM devices "
            "WHERE silent_since IS NULL AND (status IS NULL OR status != ?) AND "
            "(status = ? OR (heartbeat_interval IS NOT NULL AND alive_at IS NOT NULL AND "
            "alive_at + ? * heartbeat_interval < ? AND ? + ? * heartbeat_interval < ?))",
            (STATUS_STOPPED, STATUS_OFFLINE, missed_heartbeats, now,
             since, missed_heartbeats, now)).fetchall()
        found = [(r["device"], "last_will" if r["status"] == STATUS_OFFLINE else "heartbeats",
                  r["alive_at"], r["heartbeat_interval"], r["run"]) for r in rows]
        if stop_grace is not None and since + stop_grace < now:
            found += [(r["device"], STATUS_STOPPED, r["status_at"], r["heartbeat_interval"],
                       r["run"]) for r in self._x(
                "SELECT device, status_at, heartbeat_interval, run FROM devices WHERE "
                "silent_since IS NULL AND status = ? AND status_at + ? < ?",
                (STATUS_STOPPED, stop_grace, now))]
        return found

    def claim_silence(self, device, now):
        """Mark a device silent; False if another collector process already did (one alarm)."""
        cur = self._x("UPDATE devices SET silent_since = ? WHERE device = ? AND "
                      "silent_since IS NULL", (now, device))
        return cur.rowcount == 1

    # ------------------------------------------------------------------ reads
    def query_anomalies(self, device=None, since=None, kind=None, limit=100):
        """Newest first (by arrival), at most `limit`."""
        where, args = [], []
        if device:
            where.append("device = ?")
            args.append(device)
        if since is not None:
            where.append("received_at >= ?")
            args.append(since)
        if kind:
            if kind.endswith(".*") or kind.endswith("."):
                where.append("kind LIKE ? ESCAPE '\\'")
                args.append(kind.rstrip("*").replace("_", "\\_") + "%")
            else:
                where.append("kind = ?")
                args.append(kind)
        sql = ("SELECT device, run, seq, time, kind, severity, summary, evidence, count, "
               "received_at, origin FROM anomalies")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY received_at DESC, id DESC LIMIT ?"
        args.append(int(limit))
        return [StoredAnomaly(r["device"], r["run"], r["seq"], r["time"], r["kind"],
                              r["severity"], r["summary"], jsonio.loads(r["evidence"]),
                              r["count"], r["received_at"], r["origin"])
                for r in self._x(sql, args)]

    # ------------------------------------------------------------------ dashboard reads
    @staticmethod
    def _where(where, time_column="received_at"):
        clauses, args = [], []
        if where.device:
            clauses.append("device = ?")
            args.append(where.device)
        if where.kind:
            if "*" in where.kind:
                clauses.append("kind LIKE ? ESCAPE '\\'")
                args.append(where.kind.replace("\\", "\\\\").replace("%", "\\%")
                            .replace("_", "\\_").replace("*", "%"))
            else:
                clauses.append("kind = ?")
                args.append(where.kind)
        if where.severities:
            severities = [s for s in where.severities if s in SEVERITIES]
            clauses.append("severity IN (%s)" % ",".join("?" * len(severities)) if severities
                           else "0")
            args.extend(severities)
        if where.since is not None:
            clauses.append("%s >= ?" % time_column)
            args.append(where.since)
        if where.until is not None:
            clauses.append("%s < ?" % time_column)
            args.append(where.until)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    @staticmethod
    def _anomaly(r):
        return StoredAnomaly(r["device"], r["run"], r["seq"], r["time"], r["kind"], r["severity"],
                             r["summary"], jsonio.loads(r["evidence"]), r["count"],
                             r["received_at"], r["origin"], r["id"])

    _ANOMALY_COLUMNS = ("SELECT id, device, run, seq, time, kind, severity, summary, evidence, "
                        "count, received_at, origin FROM anomalies")

    def find_anomalies(self, where, limit=100, before_id=None):
        # newest by arrival, then by id: the order of the received_at indexes (whose entries end
        # in the row id), so the newest page reads `limit` index entries, not the whole range
        if before_id is not None:
            cursor = self._x("SELECT received_at FROM anomalies WHERE id = ?",
                             (int(before_id),)).fetchone()
            if cursor is None:
                return []
            # a range bound the index can use, besides the exact cursor condition below
            bound = math.nextafter(cursor["received_at"], math.inf)
            where = replace(where, until=bound if where.until is None else min(where.until,
                                                                               bound))
        sql, args = self._where(where)
        if before_id is not None:
            sql += " AND (received_at < ? OR (received_at = ? AND id < ?))"
            args += [cursor["received_at"], cursor["received_at"], int(before_id)]
        args.append(_clip_limit(limit))
        return [self._anomaly(r) for r in self._x(
            self._ANOMALY_COLUMNS + sql + " ORDER BY received_at DESC, id DESC LIMIT ?", args)]

    def anomaly(self, anomaly_id):
        row = self._x(self._ANOMALY_COLUMNS + " WHERE id = ?", (int(anomaly_id),)).fetchone()
        return None if row is None else self._anomaly(row)

    def _fill_anomaly_counts(self):
        """A store made before anomaly_counts existed: count what it holds, once."""
        if self._x("SELECT 1 FROM anomaly_counts LIMIT 1").fetchone() is not None or \
                self._x("SELECT 1 FROM anomalies LIMIT 1").fetchone() is None:
            return
        with self.transaction():
            if self._x("SELECT 1 FROM anomaly_counts LIMIT 1").fetchone() is None:
                self._x("INSERT INTO anomaly_counts (bucket, severity, kind, n) SELECT "
                        "CAST(received_at / ? AS INTEGER) * ?, severity, kind, COUNT(*) "
                        "FROM anomalies GROUP BY 1, 2, 3",
                        (ROLLUP_SECONDS, float(ROLLUP_SECONDS)))

    def _counts(self, where, bucket_seconds=None):
        """[(bucket, severity, kind, n)] in where.since .. where.until, exact: whole rollup
        buckets from anomaly_counts, the partial ones at both ends (and anything filtered by
        device, or cut finer than the rollup) from the anomalies themselves. Without
        bucket_seconds, one bucket (0) for the whole range."""
        if where.since is None or where.until is None:
            raise ValueError("counts need since and until")
        if bucket_seconds is None:
            def bucket(column):
                return "0"
            group, size_args = "2, 3", []
        else:
            def bucket(column):
                return "CAST(%s / ? AS INTEGER) * ?" % column
            group, size_args = "1, 2, 3", [float(bucket_seconds)] * 2
        raw_sql = ("SELECT %s AS b, severity, kind, COUNT(*) AS n FROM anomalies%%s "
                   "GROUP BY %s" % (bucket("received_at"), group))
        lo = math.ceil(where.since / ROLLUP_SECONDS) * ROLLUP_SECONDS
        hi = math.floor(where.until / ROLLUP_SECONDS) * ROLLUP_SECONDS
        if where.device or (bucket_seconds or ROLLUP_SECONDS) < ROLLUP_SECONDS or lo >= hi:
            sql, args = self._where(where)
            return [tuple(r) for r in self._x(raw_sql % sql, size_args + args)]
        out = []
        for edge in (replace(where, until=lo), replace(where, since=hi)):
            if edge.since < edge.until:
                sql, args = self._where(edge)
                out.extend(tuple(r) for r in self._x(raw_sql % sql, size_args + args))
        sql, args = self._where(replace(where, since=lo, until=hi), time_column="bucket")
        out.extend(tuple(r) for r in self._x(
            "SELECT %s AS b, severity, kind, SUM(n) AS n FROM anomaly_counts%s GROUP BY %s"
            % (bucket("bucket"), sql, group), size_args + args))
        return out

    def anomaly_histogram(self, where, bucket_seconds):
        if where.since is None or where.until is None:
            raise ValueError("a histogram needs since and until")
        out = {}
        for bucket, severity, _, n in self._counts(where, bucket_seconds):
            out[(bucket, severity)] = out.get((bucket, severity), 0) + n
        return out

    def top_kinds(self, where, limit=10):
        totals, worst = {}, {}
        for _, severity, kind, n in self._counts(where):
            totals[kind] = totals.get(kind, 0) + n
            worst[kind] = max(worst.get(kind, 0), SEVERITIES.index(severity)
                              if severity in SEVERITIES else 0)
        ranked = sorted(totals, key=lambda k: (-totals[k], k))[:_clip_limit(limit)]
        return [(k, totals[k], SEVERITIES[worst[k]]) for k in ranked]

    def top_devices(self, where, limit=10):
        sql, args = self._where(where)
        rank = "CASE severity %s END" % " ".join(
            "WHEN '%s' THEN %d" % (s, i) for i, s in enumerate(SEVERITIES))
        rows = self._x("SELECT device AS k, COUNT(*) AS n, MAX(%s) AS worst FROM anomalies%s "
                       "GROUP BY device ORDER BY n DESC, k LIMIT ?" % (rank, sql),
                       args + [_clip_limit(limit)])
        return [(r["k"], r["n"], SEVERITIES[r["worst"]]) for r in rows]

    _STATUS_SQL = ("CASE WHEN silent_since IS NOT NULL THEN 'silent' "
                   "WHEN status IS NULL THEN 'unknown' ELSE status END")

    def fleet_counts(self):
        counts = dict.fromkeys(("online", "silent", "stopped", "offline", "unknown"), 0)
        # two reads of the devices_state index, neither sorting nor touching device rows
        counts["silent"] = self._x("SELECT COUNT(*) AS n FROM devices WHERE silent_since IS "
                                   "NOT NULL").fetchone()["n"]
        for r in self._x("SELECT status, COUNT(*) AS n FROM devices WHERE silent_since IS NULL "
                         "GROUP BY status"):
            counts[r["status"] if r["status"] in counts else "unknown"] += r["n"]
        counts["total"] = sum(counts.values())
        return counts

    def _device_rows(self, sql, args):
        rows = self._x("SELECT * FROM devices" + sql, args).fetchall()
        totals = {}
        if rows:
            names = [r["device"] for r in rows]
            totals = self._gap_totals(" WHERE device IN (%s)" % ",".join("?" * len(names)), names)
        return [self._device_row(r, totals.get(r["device"], (0, 0))) for r in rows]

    def _gap_totals(self, where, args):
        """{device: (messages missing, suspect jumps)}; each gap adds at most GAP_CLAIM_MAX,
        so the sums stay far inside 64 bits."""
        return {r["device"]: (r["m"] or 0, r["s"] or 0) for r in self._x(
            "SELECT device, SUM(%s) AS m, SUM(%s) AS s FROM gaps%s GROUP BY device"
            % (_GAP_MISSING, _GAP_SUSPECT, where), args)}

    @staticmethod
    def _device_row(r, gap_totals):
        return DeviceRow(
            device=r["device"], first_seen=r["first_seen"], last_seen=r["last_seen"],
            run=r["run"], status=r["status"], status_at=r["status_at"],
            alive_at=r["alive_at"], heartbeat_interval=r["heartbeat_interval"],
            last_heartbeat=_loads_or_none(r["last_heartbeat"]), heartbeats=r["heartbeats"],
            anomalies=r["anomalies"], rejected=r["rejected"],
            agent_version=r["agent_version"], firmware=_loads_or_none(r["firmware"]),
            firmware_hash=r["firmware_hash"], baseline_hash=r["baseline_hash"],
            package_manager=r["package_manager"], silent_since=r["silent_since"],
            gaps_missing=gap_totals[0], gaps_suspect=gap_totals[1])

    def device(self, device):
        rows = self._device_rows(" WHERE device = ?", [device])
        return rows[0] if rows else None

    def device_page(self, status=None, prefix=None, after=None, limit=100):
        clauses, args = [], []
        if status:
            clauses.append("%s = ?" % self._STATUS_SQL)
            args.append(status)
        if prefix:
            clauses.append("device >= ? AND device < ?")
            args.extend([prefix, prefix + "\U0010ffff"])
        if after:
            clauses.append("device > ?")
            args.append(after)
        sql = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._device_rows(sql + " ORDER BY device LIMIT ?", args + [_clip_limit(limit)])

    def heartbeat_history(self, device, since, limit=MAX_READ_ROWS):
        rows = self._x("SELECT at, rss_kb, cpu_percent, spool_depth, drops, source_errors FROM "
                       "(SELECT * FROM heartbeat_samples WHERE device = ? AND at >= ? "
                       "ORDER BY at DESC LIMIT ?) ORDER BY at",
                       (device, since, _clip_limit(limit)))
        return [dict(r) for r in rows]

    def devices(self):
        totals = self._gap_totals("", [])
        return [self._device_row(r, totals.get(r["device"], (0, 0)))
                for r in self._x("SELECT * FROM devices ORDER BY device")]

    def rejected(self):
        return {r["reason"]: r["count"] for r in self._x(
            "SELECT reason, count FROM rejected ORDER BY reason")}

    def rejected_rows(self):
        return [dict(r) for r in self._x(
            "SELECT reason, count, first_at, last_at, last_device, last_detail FROM rejected "
            "ORDER BY reason")]

    def anomaly_count(self):
        return self._x("SELECT COUNT(*) AS n FROM anomalies").fetchone()["n"]

    def close(self):
        self._db.close()


def open_store(path, create=True, **options):
    """The default backend for a path; with create=False a missing file is an error (the query
    commands should not leave empty databases behind a typo)."""
    if not create and str(path) != ":memory:" and not os.path.exists(path):
        raise FileNotFoundError(path)
    return SqliteStore(path, **options)


__all__ = ["Store", "SqliteStore", "StoredAnomaly", "DeviceRow", "AnomalyFilter", "open_store",
           "STATUS_ONLINE", "STATUS_OFFLINE", "STATUS_STOPPED"]
