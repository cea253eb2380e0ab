"""The PostgreSQL store, for a fleet: several collector processes write to one database.

Built for volume: anomalies and heartbeat history are partitioned by the day they were received
(declarative range partitions on received_at, made a few days ahead by maintain(), dropped whole
past --retention-days), a batch of anomalies is one statement, and the schema is versioned:
migrations are applied on start, in order, under an advisory lock, and a database newer than
this collector is refused rather than touched.

A unique index of a partitioned table must contain the partition key, so (device, run, seq)
cannot be unique in `anomalies` itself: `anomaly_keys` (not partitioned) holds the identities,
and an anomaly row is written only when its key was new, in the same statement.
"""
import datetime
import logging
import re

from routerwatch import jsonio

from .base import (HEARTBEAT_HISTORY_SECONDS, HEARTBEAT_SAMPLE_SPACING,
                   HOURLY_ROLLUP_SECONDS, ROLLUP_SECONDS, StoredAnomaly, arrival_times,
                   rollup_bucket)
from .fleet_sql import FLEET_SCHEMA
from .sql import SqlStore

log = logging.getLogger("routerwatch_collector")

DAY = 86400.0
PARTITIONS_AHEAD = 3          # days of partitions made before they are needed
MAINTAIN_EVERY = 3600.0       # seconds between two maintain() passes
# partitioned table -> its time column, and how long it is kept (None: --retention-days)
PARTITIONED = {"anomalies": ("received_at", None),
               "heartbeat_samples": ("at", HEARTBEAT_HISTORY_SECONDS + DAY)}
# pg_advisory_xact_lock keys: one migration or partition change at a time across collectors
MIGRATION_LOCK, PARTITION_LOCK = 0x72770001, 0x72770002

MIGRATIONS = (
    (1, "devices, gaps, rejected; anomalies and heartbeat samples partitioned by day", """
CREATE SEQUENCE anomalies_id_seq;
-- the exactly-once rule: one row per (device, run, seq), whichever partition holds the anomaly
CREATE TABLE anomaly_keys (
    device      text    NOT NULL,
    run         text    NOT NULL,
    seq         bigint  NOT NULL,
    received_at double precision NOT NULL,
    PRIMARY KEY (device, run, seq)
);
CREATE INDEX anomaly_keys_received ON anomaly_keys (received_at);

CREATE TABLE anomalies (
    id          bigint  NOT NULL DEFAULT nextval('anomalies_id_seq'),
    device      text    NOT NULL,
    run         text    NOT NULL,
    seq         bigint  NOT NULL,
    time        double precision NOT NULL,   -- the agent's clock (a router without NTP may be off)
    kind        text    NOT NULL,
    severity    text    NOT NULL,
    summary     text    NOT NULL,
    evidence    jsonb   NOT NULL,
    count       bigint  NOT NULL,
    v           integer NOT NULL,
    received_at double precision NOT NULL,   -- the collector's clock: what --since filters on
    origin      text    NOT NULL DEFAULT 'agent'
) PARTITION BY RANGE (received_at);
-- rows outside every day partition (a clock far off) are kept, not refused
CREATE TABLE anomalies_default PARTITION OF anomalies DEFAULT;
CREATE INDEX anomalies_received ON anomalies (received_at, id);
CREATE INDEX anomalies_device_received ON anomalies (device, received_at);
CREATE INDEX anomalies_kind_received ON anomalies (kind, received_at);

-- the newest high/critical anomalies and the devices with the most of them, read from the index
CREATE INDEX anomalies_severity_received_device ON anomalies (severity, received_at, device);

-- anomalies per ROLLUP_SECONDS of arrival, severity and kind (the dashboard's chart, top kinds)
CREATE TABLE anomaly_counts (
    bucket   double precision NOT NULL,
    severity text    NOT NULL,
    kind     text    NOT NULL,
    n        bigint  NOT NULL,
    PRIMARY KEY (bucket, severity, kind)
);

-- a sampled history of each device's heartbeats (the dashboard's charts): at most one sample per
-- device per spacing; whole days are dropped once older than the history the dashboard shows
CREATE TABLE heartbeat_samples (
    device        text    NOT NULL,
    at            double precision NOT NULL,   -- received_at
    rss_kb        bigint  NOT NULL,
    cpu_percent   double precision NOT NULL,
    spool_depth   bigint  NOT NULL,
    drops         bigint  NOT NULL,   -- sum of the heartbeat's drop counters
    source_errors bigint  NOT NULL
) PARTITION BY RANGE (at);
CREATE TABLE heartbeat_samples_default PARTITION OF heartbeat_samples DEFAULT;
CREATE INDEX heartbeat_samples_by_device ON heartbeat_samples (device, at);

CREATE TABLE devices (
    device             text PRIMARY KEY,
    first_seen         double precision NOT NULL,
    last_seen          double precision NOT NULL,
    run                text NOT NULL,
    status             text,
    status_at          double precision,
    alive_at           double precision,
    heartbeat_interval double precision,
    heartbeat_run      text,
    heartbeat_seq      bigint,
    last_heartbeat     jsonb,
    heartbeats         bigint NOT NULL DEFAULT 0,
    anomalies          bigint NOT NULL DEFAULT 0,
    rejected           bigint NOT NULL DEFAULT 0,
    agent_version      text,
    firmware           jsonb,
    firmware_hash      text,
    baseline_hash      text,
    package_manager    text,
    inventory_at       double precision,
    silent_since       double precision
);
-- the silence sweep reads only the devices that are due (see SqlStore.silence_candidates)
CREATE INDEX devices_heartbeat_due ON devices ((alive_at + heartbeat_interval))
    WHERE silent_since IS NULL AND status = 'online';
-- the fleet's counts by state read this index, not the device rows with their JSON
CREATE INDEX devices_state ON devices (silent_since, status);
CREATE INDEX devices_last_will ON devices (device)
    WHERE silent_since IS NULL AND status = 'offline';
CREATE INDEX devices_stopped ON devices (status_at)
    WHERE silent_since IS NULL AND status = 'stopped';

CREATE TABLE gaps (
    id          bigserial PRIMARY KEY,
    device      text    NOT NULL,
    run         text    NOT NULL,
    type        text    NOT NULL,   -- anomaly | heartbeat
    first_seq   bigint  NOT NULL,
    last_seq    bigint  NOT NULL,
    detected_at double precision NOT NULL,
    filled      bigint  NOT NULL DEFAULT 0   -- late arrivals inside the range (spool replays)
);
CREATE INDEX gaps_by_run ON gaps (device, run, type);

CREATE TABLE rejected (
    reason      text PRIMARY KEY,
    count       bigint NOT NULL,
    first_at    double precision NOT NULL,
    last_at     double precision NOT NULL,
    last_device text,
    last_detail text
);
"""),
    (2, "collector_progress: how far each collector has been handed its queue", """
-- how far each collector process has been handed what the broker queued for it (the silence
-- check waits for the slowest live one)
CREATE TABLE collector_progress (
    run          text PRIMARY KEY,
    caught_up_at double precision NOT NULL,
    seen_at      double precision NOT NULL
);
"""),
    (3, "fleet detections: sightings, incidents, firmware groups", FLEET_SCHEMA),
    (4, "devices: the firmware's release and model as columns, for the device list", """
-- kept by the database from the firmware document whoever writes it (rewrites the table once):
-- the device list reads them without decoding JSON
ALTER TABLE devices
    ADD COLUMN firmware_release text GENERATED ALWAYS AS (firmware ->> 'DISTRIB_RELEASE') STORED,
    ADD COLUMN firmware_model text GENERATED ALWAYS AS (firmware ->> 'model') STORED;
"""),
    (5, "anomaly_counts_hourly: anomalies per hour, severity and kind", """
-- anomalies per hour of arrival, severity and kind: a week's chart and top kinds in 1/12 of the
-- rows of anomaly_counts (filled from it once here, then by the writes that store anomalies)
CREATE TABLE anomaly_counts_hourly (
    bucket   double precision NOT NULL,
    severity text    NOT NULL,
    kind     text    NOT NULL,
    n        bigint  NOT NULL,
    PRIMARY KEY (bucket, severity, kind)
);
INSERT INTO anomaly_counts_hourly (bucket, severity, kind, n)
    SELECT floor(bucket / 3600) * 3600, severity, kind, sum(n) FROM anomaly_counts
    GROUP BY 1, 2, 3;
"""),
    (6, "collector_progress: until when each collector may have missed messages", """
-- the latest moment a collector may have missed messages (it connected then): heartbeats are
-- judged missed only after every collector has been listening long enough
ALTER TABLE collector_progress ADD COLUMN IF NOT EXISTS deaf_until double precision;
"""),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

_PARTITION_RE = re.compile(r"\A(anomalies|heartbeat_samples)_p(\d{8})\Z")

# one statement per batch: new keys are claimed in anomaly_keys, only those rows are written,
# and the device counters and both rollups follow (one round trip for the batch); the keys come
# back so the caller knows what was new
_INSERT_ANOMALIES = """
WITH input AS (
    -- the batch is one JSON array of rows: one parameter the server parses, rather than an
    -- array per column that the driver escapes element by element in Python
    SELECT DISTINCT ON (device, run, seq) *
    FROM (SELECT r->>0 AS device, r->>1 AS run, (r->>2)::bigint AS seq,
                 (r->>3)::float8 AS time, r->>4 AS kind, r->>5 AS severity, r->>6 AS summary,
                 r->7 AS evidence, (r->>8)::bigint AS count, (r->>9)::int AS v,
                 (r->>10)::float8 AS received_at, ord
          FROM jsonb_array_elements(%(rows)s::jsonb) WITH ORDINALITY AS e(r, ord)) t
    ORDER BY device, run, seq, ord
), new AS (
    INSERT INTO anomaly_keys (device, run, seq, received_at)
    SELECT device, run, seq, received_at FROM input ORDER BY ord
    ON CONFLICT DO NOTHING
    RETURNING device, run, seq
), stored AS (
    INSERT INTO anomalies (device, run, seq, time, kind, severity, summary, evidence, count, v,
                           received_at, origin)
    SELECT i.device, i.run, i.seq, i.time, i.kind, i.severity, i.summary, i.evidence,
           i.count, i.v, i.received_at, %(origin)s
    FROM input i JOIN new USING (device, run, seq) ORDER BY i.ord
    RETURNING device, run, seq, kind, severity, received_at
), counted AS (
    UPDATE devices d SET anomalies = d.anomalies + c.n
    FROM (SELECT device, count(*) AS n FROM stored GROUP BY device) c
    WHERE d.device = c.device
), rolled_up AS (
    -- in key order, so writers lock the counters in one order
    INSERT INTO anomaly_counts (bucket, severity, kind, n)
    SELECT floor(received_at / %(rollup)s) * %(rollup)s AS bucket, severity, kind, count(*)
    FROM stored GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (bucket, severity, kind) DO UPDATE SET n = anomaly_counts.n + excluded.n
), rolled_up_hourly AS (
    INSERT INTO anomaly_counts_hourly (bucket, severity, kind, n)
    SELECT floor(received_at / %(hourly)s) * %(hourly)s AS bucket, severity, kind, count(*)
    FROM stored GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (bucket, severity, kind) DO UPDATE SET n = anomaly_counts_hourly.n + excluded.n
)
SELECT device, run, seq FROM stored
"""


def _day_start(when):
    return float(int(when // DAY) * DAY)


def _partition_name(table, day_start):
    return "%s_p%s" % (table, datetime.datetime.fromtimestamp(
        day_start, datetime.timezone.utc).strftime("%Y%m%d"))


class PostgresStore(SqlStore):
    """`url`: a libpq connection URL (postgresql://user@host:port/dbname?...); the password is
    better in $PGPASSWORD or ~/.pgpass than in the URL. `create`: apply the migrations (the
    collector); the query commands only read and refuse a database without the schema."""

    GREATEST = "GREATEST"
    TRUNCATE = "trunc(%s)::bigint"
    ANOMALY_KEYS = "anomaly_keys"
    LAST_WILLS = "devices"

    def __init__(self, url, create=True, retention_days=None,
                 heartbeat_sample_spacing=HEARTBEAT_SAMPLE_SPACING, read_only=False,
                 connect_timeout=10):
        import psycopg
        from psycopg.rows import dict_row

        from . import StoreError, StoreMissing, safe_location
        self._psycopg = psycopg
        self.location = safe_location(url)
        self.retention_days = retention_days
        self.heartbeat_sample_spacing = float(heartbeat_sample_spacing)
        self._next_maintenance = 0.0
        self._sql = {}
        try:
            self._db = psycopg.connect(url, autocommit=True, row_factory=dict_row,
                                       connect_timeout=connect_timeout,
                                       application_name="routerwatch-collector")
        except psycopg.Error as exc:
            raise StoreError("cannot connect to the database %s: %s" % (
                self.location, str(exc).strip())) from None
        try:
            version = self._schema_version()
            if not create:
                if version is None:
                    raise StoreMissing("no routerwatch tables in %s" % self.location)
                if version != SCHEMA_VERSION:
                    raise StoreError(
                        "the database %s has schema version %d, this program reads %d: run "
                        "the collector of the matching version" % (self.location, version,
                                                                    SCHEMA_VERSION))
            else:
                self._migrate()
            if read_only:
                # the dashboard's connections: nothing it runs can change the store
                self._db.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            self._db.close()
            raise StoreError("cannot set up the database %s: %s" % (
                self.location, str(exc).strip())) from None
        except StoreError:
            self._db.close()
            raise

    # ------------------------------------------------------------------ schema
    def _schema_version(self):
        if self._db.execute("SELECT to_regclass('schema_migrations') AS t").fetchone()["t"] is None:
            return None
        return self._db.execute("SELECT max(version) AS v FROM schema_migrations").fetchone()["v"]

    def _migrate(self):
        from . import StoreError
        with self._db.transaction():
            # several collectors starting at once: one migrates, the others wait and see it done
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
            current = self._schema_version() or 0
            if current > SCHEMA_VERSION:
                raise StoreError(
                    "the database %s has schema version %d, newer than this collector's %d: "
                    "upgrade the collector (nothing was changed)" % (self.location, current,
                                                                    SCHEMA_VERSION))
            for version, description, sql in MIGRATIONS:
                if version > current:
                    log.info("database %s: applying schema migration %d (%s)", self.location,
                             version, description)
                    self._db.execute(sql)
                    self._db.execute("INSERT INTO schema_migrations (version, description) "
                                     "VALUES (%s, %s)", (version, description))

    # ------------------------------------------------------------------ partitions and retention
    def maintain(self, now):
        """Partitions for yesterday to PARTITIONS_AHEAD days ahead; whole days past what is kept
        dropped (anomalies: --retention-days, or all kept; heartbeat samples: the dashboard's
        history). At most once per MAINTAIN_EVERY; each change in a short transaction of its own
        (never inside a batch: a partition change locks the parent table, and waiting for it
        while holding row locks could deadlock)."""
        if now < self._next_maintenance or self._depth:
            return
        self._next_maintenance = now + MAINTAIN_EVERY
        today = _day_start(now)
        for table, (column, kept) in PARTITIONED.items():
            for offset in range(-1, PARTITIONS_AHEAD + 1):
                self._create_partition(table, today + offset * DAY)
            if kept is None and self.retention_days:
                kept = self.retention_days * DAY
            if kept is not None:
                self._drop_before(table, column, now - kept)
        with self._db.transaction():
            self._db.execute("DELETE FROM collector_progress WHERE seen_at < %s", (now - DAY,))
        if self.retention_days:
            cutoff = now - self.retention_days * DAY
            with self._db.transaction():
                # what the dropped days leave elsewhere: identities and gaps of that age
                self._db.execute("DELETE FROM anomaly_keys WHERE received_at < %s", (cutoff,))
                self._db.execute("DELETE FROM gaps WHERE detected_at < %s", (cutoff,))
                self._db.execute("DELETE FROM anomaly_counts WHERE bucket < %s",
                                 (rollup_bucket(cutoff),))
                self._db.execute("DELETE FROM anomaly_counts_hourly WHERE bucket < %s",
                                 (rollup_bucket(cutoff, HOURLY_ROLLUP_SECONDS),))

    def _create_partition(self, table, day_start):
        name = _partition_name(table, day_start)
        if self._db.execute("SELECT to_regclass(%s) AS t", (name,)).fetchone()["t"] is not None:
            return
        try:
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM (%r) TO (%r)"
                    % (name, table, day_start, day_start + DAY))
        except self._psycopg.errors.CheckViolation:
            # the default partition already holds rows of that day (the clock moved): they
            # stay there, still found by every query
            log.warning("partition %s not made: the default partition holds rows of that day",
                        name)

    def _drop_before(self, table, column, cutoff):
        for name in self.partitions(table):
            day = datetime.datetime.strptime(_PARTITION_RE.match(name).group(2), "%Y%m%d").replace(
                tzinfo=datetime.timezone.utc).timestamp()
            if day + DAY <= cutoff:
                with self._db.transaction():
                    self._db.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
                    self._db.execute("DROP TABLE IF EXISTS %s" % name)
                log.info("dropped %s: past the retention", name)
        with self._db.transaction():
            self._db.execute("DELETE FROM %s_default WHERE %s < %%s" % (table, column), (cutoff,))

    def partitions(self, table="anomalies"):
        """Names of the day partitions of `table`, oldest first (tests and operators)."""
        return sorted(r["relname"] for r in self._db.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s", (table,))
            if _PARTITION_RE.match(r["relname"]))

    # ------------------------------------------------------------------ statements
    def _begin(self):
        return self._db.transaction()

    def _x(self, sql, args=()):
        translated = self._sql.get(sql)
        if translated is None:
            translated = self._sql[sql] = sql.replace("?", "%s")
        return self._db.execute(translated, args)

    def _many(self, sql, rows):
        translated = self._sql.get(sql)
        if translated is None:
            translated = self._sql[sql] = sql.replace("?", "%s")
        with self._db.cursor() as cursor:
            cursor.executemany(translated, rows)

    JSON_PARAM = "CAST(? AS jsonb)"
    JSON_TEXT = "%s::text"
    STREAM_ROWS = 5000     # rows fetched per round trip by a streamed read

    def _stream(self, sql, args=()):
        """The rows as the server sends them, STREAM_ROWS at a time (libpq's chunked rows):
        never the whole result in memory, and the server keeps producing while they are
        printed, with no round trip per batch."""
        from psycopg.rows import tuple_row
        # chunks need libpq 17; an older one sends row by row, still never the whole result
        size = self.STREAM_ROWS if self._psycopg.pq.version() >= 170000 else 1
        with self._db.cursor(row_factory=tuple_row) as cursor:
            yield from cursor.stream(sql.replace("?", "%s") if args else sql, args or None,
                                     size=size)

    def _json(self, value):
        return value          # jsonb comes back decoded

    def upsert_devices(self, seen):
        """SqlStore.upsert_devices in two statements whatever the batch's size (arrays, not a
        statement per row)."""
        live = [(device, first_at, live_at, live_run)
                for device, first_at, run, live_at, live_run in seen if live_at is not None]
        replayed = [(device, first_at, first_at, run)
                    for device, first_at, run, live_at, _ in seen if live_at is None]
        for rows, on_conflict in ((live, "DO UPDATE SET last_seen = excluded.last_seen, "
                                         "run = excluded.run"), (replayed, "DO NOTHING")):
            if rows:
                columns = list(zip(*rows))
                self._db.execute(
                    "INSERT INTO devices (device, first_seen, last_seen, run) "
                    "SELECT device, first_seen, last_seen, run FROM unnest(%s::text[], "
                    "%s::float8[], %s::float8[], %s::text[]) "
                    "WITH ORDINALITY AS t(device, first_seen, last_seen, run, ord) ORDER BY ord "
                    "ON CONFLICT (device) " + on_conflict, [list(c) for c in columns])

    def add_anomalies(self, batch, received_at, origin="agent"):
        batch = list(batch)
        if not batch:
            return []
        times = arrival_times(batch, received_at)
        rows = jsonio.dumps([[a.device, a.run, a.seq, a.time, a.kind, a.severity, a.summary,
                              a.evidence, a.count, a.v, at] for a, at in zip(batch, times)])
        with self.transaction():
            new = {(r["device"], r["run"], r["seq"]) for r in self._db.execute(
                _INSERT_ANOMALIES, {"rows": rows, "origin": origin,
                                    "rollup": float(ROLLUP_SECONDS),
                                    "hourly": float(HOURLY_ROLLUP_SECONDS)})}
            stored = []
            for a, received_at in zip(batch, times):
                key = (a.device, a.run, a.seq)
                if key in new:
                    new.discard(key)      # a copy later in the same batch is not new again
                    stored.append(StoredAnomaly(a.device, a.run, a.seq, a.time, a.kind,
                                                a.severity, a.summary, a.evidence, a.count,
                                                received_at, origin))
        return stored

    def _prune_heartbeat_samples(self, device, received_at):
        """Nothing per sample: maintain() drops the days past the history."""

    def anomaly_count(self):
        return self._x("SELECT count(*) AS n FROM anomalies").fetchone()["n"]

    def close(self):
        self._db.close()
