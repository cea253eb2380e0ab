"""The SQLite store: one file, WAL mode, one transaction per flushed batch. The default backend,
for one host; several collector processes on that host may share the file.
"""
import contextlib
import sqlite3

from routerwatch import jsonio

from .base import (HEARTBEAT_SAMPLE_SPACING, HOURLY_ROLLUP_SECONDS, ROLLUP_SECONDS,
                   StoredAnomaly, arrival_times, rollup_bucket)
from .fleet_sql import FLEET_SCHEMA
from .sql import SqlStore

# how often maintain() deletes what is past the retention (seconds)
RETENTION_EVERY = 3600.0

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
CREATE INDEX IF NOT EXISTS anomalies_kind_received ON anomalies (kind, received_at);

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
-- the silence sweep reads only the devices that are due (see SqlStore.silence_candidates)
CREATE INDEX IF NOT EXISTS devices_heartbeat_due ON devices ((alive_at + heartbeat_interval))
    WHERE silent_since IS NULL AND status = 'online';
CREATE INDEX IF NOT EXISTS devices_last_will ON devices (device)
    WHERE silent_since IS NULL AND status = 'offline';
CREATE INDEX IF NOT EXISTS devices_stopped ON devices (status_at)
    WHERE silent_since IS NULL AND status = 'stopped';

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

-- how far each collector process has been handed what the broker queued for it (the silence
-- check waits for the slowest live one)
CREATE TABLE IF NOT EXISTS collector_progress (
    run          TEXT PRIMARY KEY,
    caught_up_at REAL NOT NULL,
    seen_at      REAL NOT NULL
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


# The schema's versions, applied in order on open; the version a store has is its
# `PRAGMA user_version` (0: made before the schema was versioned, which has version 1's tables).
# A store of a newer version than this program's is refused, never changed.
MIGRATIONS = (
    (1, "anomalies, devices, gaps, rejected, heartbeat samples, counts, fleet detections",
     SCHEMA + FLEET_SCHEMA),
    (2, "devices: the firmware's release and model as columns, for the device list", """
-- computed by SQLite from the firmware JSON (a column added to a table that has rows can only be
-- a virtual one): the device list reads them without decoding JSON in Python
ALTER TABLE devices ADD COLUMN firmware_release TEXT
    GENERATED ALWAYS AS (json_extract(firmware, '$.DISTRIB_RELEASE')) VIRTUAL;
ALTER TABLE devices ADD COLUMN firmware_model TEXT
    GENERATED ALWAYS AS (json_extract(firmware, '$.model')) VIRTUAL;
"""),
    (3, "anomaly_counts_hourly: anomalies per hour, severity and kind", """
-- anomalies per hour of arrival, severity and kind: a week's chart and top kinds in 1/12 of the
-- rows of anomaly_counts (filled from it once here, then by the writes that store anomalies)
CREATE TABLE anomaly_counts_hourly (
    bucket   REAL    NOT NULL,
    severity TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (bucket, severity, kind)
) WITHOUT ROWID;
INSERT INTO anomaly_counts_hourly (bucket, severity, kind, n)
    SELECT CAST(bucket / 3600 AS INTEGER) * 3600.0, severity, kind, SUM(n) FROM anomaly_counts
    GROUP BY 1, 2, 3;
"""),
    (4, "collector_progress: until when each collector may have missed messages", """
-- the latest moment a collector may have missed messages (it connected then): heartbeats are
-- judged missed only after every collector has been listening long enough
ALTER TABLE collector_progress ADD COLUMN deaf_until REAL;
"""),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def _statements(script):
    """A script cut into single statements (sqlite3 runs one per execute, and executescript
    would commit the migration's transaction halfway)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement.strip()
            statement = ""
    if statement.strip() and not all(
            part.strip().startswith("--") or not part.strip()
            for part in statement.splitlines()):
        raise ValueError("an incomplete statement at the end of a migration")


def schema_version(db):
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db, location, migrations=MIGRATIONS):
    """Apply the migrations newer than the store's version, each with its version number, in
    one transaction that takes the write lock first (several collectors starting at once: one
    migrates, the others then find it done)."""
    from . import StoreError
    target = migrations[-1][0]
    if schema_version(db) == target:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(db)
        if current > SCHEMA_VERSION:
            raise StoreError(
                "the database %s has schema version %d, newer than this collector's %d: "
                "upgrade the collector (nothing was changed)" % (location, current,
                                                                SCHEMA_VERSION))
        for version, _, script in migrations:
            if version > current:
                for statement in _statements(script):
                    db.execute(statement)
                db.execute("PRAGMA user_version = %d" % version)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SqliteStore(SqlStore):
    """SQLite in WAL mode: readers (the CLI) never block the writer, one fsync per batch.
    `retention_days`: anomalies received longer ago are deleted by maintain() (None keeps all)."""

    def __init__(self, path, busy_timeout=10.0, retention_days=None,
                 heartbeat_sample_spacing=HEARTBEAT_SAMPLE_SPACING, read_only=False):
        self.path = str(path)
        self.heartbeat_sample_spacing = float(heartbeat_sample_spacing)
        self.retention_days = retention_days
        self._next_retention = 0.0
        # one thread at a time, but not necessarily the one that opened it (the collector may
        # be built in one thread and run in another)
        self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                   check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a power cut may lose the last batch but never corrupts the file;
        # the agent's QoS 1 redelivery covers what the broker had not seen acknowledged.
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            if schema_version(self._db) <= SCHEMA_VERSION:
                # version 1 is all CREATE ... IF NOT EXISTS, run on every open as before the
                # schema had versions: a table or index added to it reaches every store; a
                # change to what exists is a migration of its own
                self._db.executescript(MIGRATIONS[0][2])
            migrate(self._db, self.path)
        except BaseException:
            self._db.close()
            raise
        if not read_only:
            self._fill_anomaly_counts()
        if read_only:
            # the dashboard's connections: nothing it runs can change the store
            self._db.execute("PRAGMA query_only=ON")

    # ------------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def _begin(self):
        # IMMEDIATE takes the write lock up front, so two collector processes on one file
        # serialise their batches instead of failing halfway through one
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            # a failed COMMIT leaves the transaction open: end it, so the next one can begin
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _x(self, sql, args=()):
        return self._db.execute(sql, args)

    def _many(self, sql, rows):
        self._db.executemany(sql, rows)

    # ------------------------------------------------------------------ writes
    def add_anomalies(self, batch, received_at, origin="agent"):
        batch = list(batch)
        times = arrival_times(batch, received_at)
        new_keys = set()
        size = self.ROWS_PER_STATEMENT
        dumps = jsonio.dumps
        with self.transaction():
            # rows as plain tuples: the keys below are exactly what RETURNING gives
            cursor = self._db.cursor()
            cursor.row_factory = None
            # a few multi-row inserts for the batch; RETURNING names the rows that were new
            # (a key already stored, or repeated in the batch, is skipped by ON CONFLICT)
            for start in range(0, len(batch), size):
                args = []
                for a, at in zip(batch[start:start + size], times[start:start + size]):
                    args += (a.device, a.run, a.seq, a.time, a.kind, a.severity, a.summary,
                             dumps(a.evidence), a.count, a.v, at, origin)
                new_keys.update(cursor.execute(
                    "INSERT INTO anomalies (device, run, seq, time, kind, severity, summary, "
                    "evidence, count, v, received_at, origin) VALUES %s "
                    "ON CONFLICT (device, run, seq) DO NOTHING RETURNING device, run, seq"
                    % ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?)"] * (len(args) // 12)), args))
            new = []
            for a, at in zip(batch, times):
                key = (a.device, a.run, a.seq)
                if key in new_keys:
                    new_keys.discard(key)     # a copy later in the same batch is not new again
                    new.append(StoredAnomaly(a.device, a.run, a.seq, a.time, a.kind, a.severity,
                                             a.summary, a.evidence, a.count, at, origin))
            self._count_new(new)
        return new

    def _count_new(self, new):
        """The per-device counters and both rollups follow the new rows: one update per device
        and per (bucket, severity, kind) of the batch, in key order so writers lock them in one
        order. A batch shares a few arrival times, so each time's buckets are worked out once."""
        per_device, per_minute, per_hour, buckets = {}, {}, {}, {}
        for a in new:
            per_device[a.device] = per_device.get(a.device, 0) + 1
            at = a.received_at
            both = buckets.get(at)
            if both is None:
                both = buckets[at] = (rollup_bucket(at), rollup_bucket(at, HOURLY_ROLLUP_SECONDS))
            key = (both[0], a.severity, a.kind)
            per_minute[key] = per_minute.get(key, 0) + 1
            key = (both[1], a.severity, a.kind)
            per_hour[key] = per_hour.get(key, 0) + 1
        if not per_device:
            return
        self._many("UPDATE devices SET anomalies = anomalies + ? WHERE device = ?",
                   [(n, device) for device, n in sorted(per_device.items())])
        for table, counts in (("anomaly_counts", per_minute),
                              ("anomaly_counts_hourly", per_hour)):
            self._many("INSERT INTO %s (bucket, severity, kind, n) VALUES (?,?,?,?) "
                       "ON CONFLICT (bucket, severity, kind) DO UPDATE SET n = n + excluded.n"
                       % table, [key + (n,) for key, n in sorted(counts.items())])

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
                self._x("DELETE FROM anomaly_counts_hourly")
                self._x("INSERT INTO anomaly_counts_hourly (bucket, severity, kind, n) SELECT "
                        "CAST(bucket / ? AS INTEGER) * ?, severity, kind, SUM(n) "
                        "FROM anomaly_counts GROUP BY 1, 2, 3",
                        (HOURLY_ROLLUP_SECONDS, float(HOURLY_ROLLUP_SECONDS)))

    def maintain(self, now):
        if not self.retention_days or now < self._next_retention:
            return
        self._next_retention = now + RETENTION_EVERY
        cutoff = now - self.retention_days * 86400.0
        with self.transaction():
            self._x("DELETE FROM anomalies WHERE received_at < ?", (cutoff,))
            self._x("DELETE FROM anomaly_counts WHERE bucket < ?", (rollup_bucket(cutoff),))
            self._x("DELETE FROM anomaly_counts_hourly WHERE bucket < ?",
                    (rollup_bucket(cutoff, HOURLY_ROLLUP_SECONDS),))
            self._x("DELETE FROM gaps WHERE detected_at < ?", (cutoff,))
            self._x("DELETE FROM collector_progress WHERE seen_at < ?", (cutoff,))

    def close(self):
        self._db.close()
