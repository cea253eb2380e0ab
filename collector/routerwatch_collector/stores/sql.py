"""What the SQL backends share: every query and update written once, in the SQL that SQLite and
PostgreSQL both speak (INSERT ... ON CONFLICT, UPDATE ... WHERE ... IS NULL as a claim), so the
two stores cannot drift apart in meaning. A backend supplies the connection (`_x`), its
transaction, the batched anomaly insert, and the few words the dialects spell differently.
"""
import math
from dataclasses import replace

from routerwatch import jsonio
from routerwatch.contract import SEVERITIES

from .base import (_GAP_MISSING, _GAP_SUSPECT, HEARTBEAT_HISTORY_SECONDS, HEARTBEAT_INTERVAL_MAX,
                   HEARTBEAT_INTERVAL_MIN, HEARTBEAT_SAMPLE_SPACING, HOURLY_ROLLUP_SECONDS,
                   MAX_READ_ROWS, ROLLUP_SECONDS,
                   DEVICE_LISTING_PLAIN, STATUS_OFFLINE, STATUS_ONLINE, STATUS_STOPPED,
                   DeviceLine, DeviceListing, DeviceRow,
                   Store,
                   StoredAnomaly, clip_limit, rollup_bucket)
from .fleet_sql import FleetSql


def _gap_row(r):
    return dict(r, suspect=bool(r["suspect"]))


def _split_by_rollup(since, until, rollups):
    """[(table or None, since, until)] covering since .. until: the whole rows of the first
    (coarsest) rollup, the rest at each end by the next ones, what no rollup covers whole from
    the anomalies (None)."""
    if not rollups or since >= until:
        return [(None, since, until)] if since < until else []
    (table, size), finer = rollups[0], rollups[1:]
    lo, hi = math.ceil(since / size) * size, math.floor(until / size) * size
    if lo >= hi:
        return _split_by_rollup(since, until, finer)
    return (_split_by_rollup(since, lo, finer) + [(table, lo, hi)] +
            _split_by_rollup(hi, until, finer))


class SqlStore(FleetSql, Store):
    """The Store methods on top of `_x(sql, args)`, which runs one statement with `?`
    placeholders and returns a cursor whose rows read like mappings."""

    GREATEST = "MAX"     # the two-argument maximum: SQLite's MAX(a, b), PostgreSQL's GREATEST
    TRUNCATE = "CAST(%s AS INTEGER)"   # a number's whole part, toward zero
    ANOMALY_KEYS = "anomalies"   # the table whose unique (device, run, seq) is the exactly-once rule
    heartbeat_sample_spacing = HEARTBEAT_SAMPLE_SPACING

    # rows per statement where a batch is spelled out in one multi-row statement (SQLite
    # allows 32766 parameters in one statement)
    ROWS_PER_STATEMENT = 500

    def _x(self, sql, args=()):
        raise NotImplementedError

    def _many(self, sql, rows):
        """Run one statement for each row of `rows` (a list of argument tuples)."""
        raise NotImplementedError

    def _json(self, text):
        """A JSON column as read back: SQLite gives text, PostgreSQL's jsonb a decoded value."""
        return None if text is None else jsonio.loads(text)

    def _prune_heartbeat_samples(self, device, received_at):
        """Keep a device's samples to HEARTBEAT_HISTORY_SECONDS (PostgreSQL drops whole days)."""
        self._x("DELETE FROM heartbeat_samples WHERE device = ? AND at < ?",
                (device, received_at - HEARTBEAT_HISTORY_SECONDS))

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

    def upsert_devices(self, seen):
        """upsert_device() for a whole batch, one statement per kind of row. `seen`:
        [(device, first_at, run, live_at, live_run)] with one row per device: when its first
        message of the batch arrived and whose run that was, and the arrival and run of its
        last live one (None, None if every message was a retained replay). Rows are written in
        the order given: callers sort them by device, so writers lock device rows in one order."""
        live = [(device, first_at, live_at, live_run)
                for device, first_at, run, live_at, live_run in seen if live_at is not None]
        replayed = [(device, first_at, first_at, run)
                    for device, first_at, run, live_at, _ in seen if live_at is None]
        if live:
            self._many("INSERT INTO devices (device, first_seen, last_seen, run) "
                       "VALUES (?,?,?,?) ON CONFLICT (device) DO UPDATE SET "
                       "last_seen = excluded.last_seen, run = excluded.run", live)
        if replayed:
            self._many("INSERT INTO devices (device, first_seen, last_seen, run) "
                       "VALUES (?,?,?,?) ON CONFLICT (device) DO NOTHING", replayed)

    def record_heartbeat(self, heartbeat, received_at):
        h = heartbeat
        health = {"interval": h.interval, "uptime": h.uptime, "rss_kb": h.rss_kb, "cpu_percent": h.cpu_percent,
                  "spool_depth": h.spool_depth, "counters": h.counters, "drops": h.drops,
                  "seq": h.seq, "time": h.time}
        # speaking again ends a silence: a new agent.silent may be raised for the next one
        self._x("UPDATE devices SET alive_at = ?, heartbeat_interval = ?, heartbeat_run = ?, "
                "heartbeat_seq = " + self.GREATEST + "(COALESCE(CASE WHEN heartbeat_run = ? "
                "THEN heartbeat_seq END, 0), ?), last_heartbeat = ?, heartbeats = heartbeats + 1, "
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
            self._prune_heartbeat_samples(h.device, received_at)

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
                "count = rejected.count + excluded.count, last_at = excluded.last_at, "
                "last_device = excluded.last_device, last_detail = excluded.last_detail",
                (reason, count, now, now, device, detail))
        if device:
            # only a device that already exists: garbage must not create device rows
            self._x("UPDATE devices SET rejected = rejected + ? WHERE device = ?", (count, device))

    # ------------------------------------------------------------------ sequence gaps
    def highest_seq(self, device, run, message_type):
        if message_type == "anomaly":
            row = self._x("SELECT MAX(seq) AS m FROM %s WHERE device = ? AND run = ?"
                          % self.ANOMALY_KEYS, (device, run)).fetchone()
            return row["m"]
        row = self._x("SELECT heartbeat_seq FROM devices WHERE device = ? AND heartbeat_run = ?",
                      (device, run)).fetchone()
        return None if row is None else row["heartbeat_seq"]

    def highest_anomaly_seqs(self, keys):
        """{(device, run): highest anomaly seq stored} for a batch's keys (absent: none stored),
        a few statements for the batch, each key one index lookup."""
        keys = list(keys)
        found = {}
        size = self.ROWS_PER_STATEMENT
        for start in range(0, len(keys), size):
            chunk = keys[start:start + size]
            args = [part for key in chunk for part in key]
            rows = self._x(
                "WITH k (device, run) AS (VALUES %s) SELECT k.device, k.run, (SELECT MAX(seq) "
                "FROM %s a WHERE a.device = k.device AND a.run = k.run) AS m FROM k"
                % (",".join(["(?,?)"] * len(chunk)), self.ANOMALY_KEYS), args)
            found.update(((r["device"], r["run"]), r["m"]) for r in rows if r["m"] is not None)
        return found

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
            rows = self._x(sql + " ORDER BY id DESC LIMIT ?", args + (clip_limit(limit),))
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
        # Index range scans only, so a sweep costs the devices that are due, not the fleet: the
        # Last Wills not yet answered, the online devices at least one interval late (a device
        # k intervals late is one interval late by at least (k - 1) * the shortest interval),
        # and the stops older than the grace. The literals match the partial indexes'
        # predicates, which the planner needs. (A heartbeat always sets the status online, so
        # a device late on heartbeats whose status is not online is offline or stopped.)
        since = listening_since if listening_since is not None else float("-inf")
        rows = self._x(*self.silence_due_sql(now, missed_heartbeats, since)).fetchall()
        found = [(r["device"], "last_will" if r["status"] == STATUS_OFFLINE else "heartbeats",
                  r["alive_at"], r["heartbeat_interval"], r["run"]) for r in rows]
        if stop_grace is not None and since + stop_grace < now:
            found += [(r["device"], STATUS_STOPPED, r["status_at"], r["heartbeat_interval"],
                       r["run"]) for r in self._x(*self.silence_stopped_sql(now, stop_grace))]
        return found

    @staticmethod
    def silence_stopped_sql(now, stop_grace):
        return ("SELECT device, status_at, heartbeat_interval, run FROM devices WHERE "
                "silent_since IS NULL AND status = 'stopped' AND status_at < ?",
                (now - stop_grace,))

    # the unanswered Last Wills: a partial index without a range to search, which SQLite's
    # planner, once ANALYZE has seen a fleet, passes over for a scan of every device; named,
    # the statement reads the index or fails (PostgreSQL picks an index by itself)
    LAST_WILLS = "devices INDEXED BY devices_last_will"

    def silence_due_sql(self, now, missed_heartbeats, since):
        """(sql, args) of the sweep's read of the devices whose Last Will or heartbeats are
        due; apart so a test can show its plan reads the due devices only."""
        late = now - (missed_heartbeats - 1) * HEARTBEAT_INTERVAL_MIN
        return ("SELECT device, status, alive_at, heartbeat_interval, run FROM " +
                self.LAST_WILLS + " WHERE silent_since IS NULL AND status = 'offline' "
                "UNION ALL "
                "SELECT device, status, alive_at, heartbeat_interval, run FROM devices "
                "WHERE silent_since IS NULL AND status = 'online' AND "
                "alive_at + heartbeat_interval < ? AND "
                "alive_at + ? * heartbeat_interval < ? AND ? + ? * heartbeat_interval < ?",
                (late, missed_heartbeats, now, since, missed_heartbeats, now))

    def claim_silence(self, device, now):
        """Mark a device silent; False if another collector process already did (one alarm)."""
        cur = self._x("UPDATE devices SET silent_since = ? WHERE device = ? AND "
                      "silent_since IS NULL", (now, device))
        return cur.rowcount == 1

    def report_progress(self, collector_run, caught_up_at, now, deaf_until=None):
        self._x("INSERT INTO collector_progress (run, caught_up_at, seen_at, deaf_until) "
                "VALUES (?,?,?,?) ON CONFLICT (run) DO UPDATE SET "
                "caught_up_at = excluded.caught_up_at, seen_at = excluded.seen_at, "
                "deaf_until = excluded.deaf_until", (collector_run, caught_up_at, now, deaf_until))

    def heard_until(self, now, stale):
        row = self._x("SELECT MIN(caught_up_at) AS t FROM collector_progress WHERE seen_at >= ?",
                      (now - stale,)).fetchone()
        return now if row["t"] is None else min(now, row["t"])

    def deaf_until(self, now, stale, gone):
        # a collector that stopped reporting died within `stale` seconds of its last report
        row = self._x("SELECT MAX(CASE WHEN seen_at >= ? THEN deaf_until ELSE seen_at + ? END) "
                      "AS t FROM collector_progress WHERE seen_at >= ?",
                      (now - stale, stale, now - gone)).fetchone()
        return None if row["t"] is None else min(now, row["t"])

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
                              r["severity"], r["summary"], self._json(r["evidence"]),
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
                           else "1 = 0")
            args.extend(severities)
        if where.since is not None:
            clauses.append("%s >= ?" % time_column)
            args.append(where.since)
        if where.until is not None:
            clauses.append("%s < ?" % time_column)
            args.append(where.until)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def _anomaly(self, r):
        return StoredAnomaly(r["device"], r["run"], r["seq"], r["time"], r["kind"], r["severity"],
                             r["summary"], self._json(r["evidence"]), r["count"],
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
        args.append(clip_limit(limit))
        return [self._anomaly(r) for r in self._x(
            self._ANOMALY_COLUMNS + sql + " ORDER BY received_at DESC, id DESC LIMIT ?", args)]

    def anomaly(self, anomaly_id):
        row = self._x(self._ANOMALY_COLUMNS + " WHERE id = ?", (int(anomaly_id),)).fetchone()
        return None if row is None else self._anomaly(row)

    def _bucket(self, column):
        """SQL for `column` cut down to a multiple of a bucket size (two ? arguments)."""
        return "%s * ?" % (self.TRUNCATE % ("%s / ?" % column))

    # the rollups, coarsest first: (table, seconds per row)
    ROLLUPS = (("anomaly_counts_hourly", HOURLY_ROLLUP_SECONDS), ("anomaly_counts", ROLLUP_SECONDS))

    def _counts(self, where, bucket_seconds=None, by_kind=True):
        """[(bucket, severity, kind, n)] in where.since .. where.until, exact: whole hours from
        anomaly_counts_hourly (when the bars are whole hours), whole 5 minutes around them from
        anomaly_counts, the partial ones at both ends (and anything filtered by device, or cut
        finer than the rollup) from the anomalies themselves. Without bucket_seconds, one
        bucket (0) for the whole range; without by_kind, one kind ('') for all."""
        if where.since is None or where.until is None:
            raise ValueError("counts need since and until")
        if bucket_seconds is None:
            def bucket(column):
                return "0"
            group, size_args = ["2", "3"], []
        else:
            bucket = self._bucket
            group, size_args = ["1", "2", "3"], [float(bucket_seconds)] * 2
        kind = "kind"
        if not by_kind:
            group, kind = group[:-1], "''"
        group = ", ".join(group)

        def rows(sql, args):
            return [(r["b"], r["severity"], r["kind"], r["n"]) for r in self._x(sql, args)]

        raw_sql = ("SELECT %s AS b, severity, %s AS kind, COUNT(*) AS n FROM anomalies%%s "
                   "GROUP BY %s" % (bucket("received_at"), kind, group))
        # a rollup serves when its rows fall whole into the bars
        rollups = [] if where.device else [
            (table, size) for table, size in self.ROLLUPS
            if bucket_seconds is None or (bucket_seconds >= size and bucket_seconds % size == 0)]
        out = []
        for table, since, until in _split_by_rollup(where.since, where.until, rollups):
            part = replace(where, since=since, until=until)
            if table is None:
                sql, args = self._where(part)
                out.extend(rows(raw_sql % sql, size_args + args))
                continue
            sql, args = self._where(part, time_column="bucket")
            # PostgreSQL sums bigints into numeric (a Decimal in Python, which JSON cannot carry)
            out.extend(rows("SELECT %s AS b, severity, %s AS kind, CAST(SUM(n) AS BIGINT) "
                            "AS n FROM %s%s GROUP BY %s" % (bucket("bucket"), kind, table, sql,
                                                            group), size_args + args))
        return out

    def anomaly_histogram(self, where, bucket_seconds):
        if where.since is None or where.until is None:
            raise ValueError("a histogram needs since and until")
        out = {}
        for bucket, severity, _, n in self._counts(where, bucket_seconds, by_kind=False):
            out[(bucket, severity)] = out.get((bucket, severity), 0) + n
        return out

    def top_kinds(self, where, limit=10):
        totals, worst = {}, {}
        for _, severity, kind, n in self._counts(where):
            totals[kind] = totals.get(kind, 0) + n
            worst[kind] = max(worst.get(kind, 0), SEVERITIES.index(severity)
                              if severity in SEVERITIES else 0)
        ranked = sorted(totals, key=lambda k: (-totals[k], k))[:clip_limit(limit)]
        return [(k, totals[k], SEVERITIES[worst[k]]) for k in ranked]

    def top_devices(self, where, limit=10):
        sql, args = self._where(where)
        rank = "CASE severity %s END" % " ".join(
            "WHEN '%s' THEN %d" % (s, i) for i, s in enumerate(SEVERITIES))
        rows = self._x("SELECT device AS k, COUNT(*) AS n, MAX(%s) AS worst FROM anomalies%s "
                       "GROUP BY device ORDER BY n DESC, k LIMIT ?" % (rank, sql),
                       args + [clip_limit(limit)])
        return [(r["k"], r["n"], SEVERITIES[r["worst"]]) for r in rows]

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
            "SELECT device, CAST(SUM(%s) AS BIGINT) AS m, CAST(SUM(%s) AS BIGINT) AS s "
            "FROM gaps%s GROUP BY device"
            % (_GAP_MISSING, _GAP_SUSPECT, where), args)}

    def _device_row(self, r, gap_totals):
        return DeviceRow(
            device=r["device"], first_seen=r["first_seen"], last_seen=r["last_seen"],
            run=r["run"], status=r["status"], status_at=r["status_at"],
            alive_at=r["alive_at"], heartbeat_interval=r["heartbeat_interval"],
            last_heartbeat=self._json(r["last_heartbeat"]), heartbeats=r["heartbeats"],
            anomalies=r["anomalies"], rejected=r["rejected"],
            agent_version=r["agent_version"], firmware=self._json(r["firmware"]),
            firmware_hash=r["firmware_hash"], baseline_hash=r["baseline_hash"],
            package_manager=r["package_manager"], silent_since=r["silent_since"],
            gaps_missing=gap_totals[0], gaps_suspect=gap_totals[1])

    def device(self, device):
        rows = self._device_rows(" WHERE device = ?", [device])
        return rows[0] if rows else None

    def device_page(self, status=None, prefix=None, after=None, limit=100):
        clauses, args = [], []
        # spelled so the devices_state index (silent_since, status) answers, not a scan of
        # every device row and its JSON
        if status == "silent":
            clauses.append("silent_since IS NOT NULL")
        elif status == "unknown":
            clauses.append("silent_since IS NULL AND status IS NULL")
        elif status:
            clauses.append("silent_since IS NULL AND status = ?")
            args.append(status)
        if prefix:
            clauses.append("device >= ? AND device < ?")
            args.extend([prefix, prefix + "\U0010ffff"])
        if after:
            clauses.append("device > ?")
            args.append(after)
        sql = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._device_rows(sql + " ORDER BY device LIMIT ?", args + [clip_limit(limit)])

    def heartbeat_history(self, device, since, limit=MAX_READ_ROWS):
        rows = self._x("SELECT at, rss_kb, cpu_percent, spool_depth, drops, source_errors FROM "
                       "(SELECT * FROM heartbeat_samples WHERE device = ? AND at >= ? "
                       "ORDER BY at DESC LIMIT ?) AS recent ORDER BY at",
                       (device, since, clip_limit(limit)))
        return [dict(r) for r in rows]

    def _stream(self, sql, args=()):
        """The rows of one query as tuples, as they come (SQLite steps its cursor; PostgreSQL
        overrides this with a server-side cursor)."""
        cursor = self._db.cursor()
        cursor.row_factory = None
        yield from cursor.execute(sql, args)

    # a JSON column read as its text (PostgreSQL's jsonb would be decoded by the driver)
    JSON_TEXT = "%s"

    # each device's gap totals (missing, suspect), joined to the device rows as g.m and g.s
    _GAP_TOTALS = ("LEFT JOIN (SELECT device, CAST(SUM(%s) AS BIGINT) AS m, "
                   "CAST(SUM(%s) AS BIGINT) AS s FROM gaps GROUP BY device) g "
                   "ON g.device = d.device" % (_GAP_MISSING, _GAP_SUSPECT))

    def iter_devices(self, labels=True, documents=True):
        # one statement, device order: the gap totals joined in, the firmware's release and
        # model from their generated columns, the JSON documents passed on as text; the
        # columns in DeviceListing's order. What the caller does not want is NULL (SQLite
        # computes its virtual columns only when they are read)
        sql = ("SELECT %s, COALESCE(g.m, 0), COALESCE(g.s, 0), %s, %s, %s, %s FROM devices d "
               "%s ORDER BY d.device" % (
                   ", ".join("d." + c for c in DEVICE_LISTING_PLAIN[:-2]),
                   "d.firmware_release" if labels else "NULL",
                   "d.firmware_model" if labels else "NULL",
                   self.JSON_TEXT % "d.last_heartbeat" if documents else "NULL",
                   self.JSON_TEXT % "d.firmware" if documents else "NULL",
                   self._GAP_TOTALS))
        make = DeviceListing._make
        for row in self._stream(sql):
            yield make(row)

    def iter_device_lines(self):
        sql = ("SELECT d.device, d.status, d.last_seen, d.silent_since, d.firmware_release, "
               "d.firmware_model, d.anomalies, d.heartbeats, COALESCE(g.m, 0), "
               "COALESCE(g.s, 0) FROM devices d %s ORDER BY d.device" % self._GAP_TOTALS)
        make = DeviceLine._make
        for row in self._stream(sql):
            yield make(row)

    def devices(self):
        return [listing.as_row() for listing in self.iter_devices()]

    def rejected(self):
        return {r["reason"]: r["count"] for r in self._x(
            "SELECT reason, count FROM rejected ORDER BY reason")}

    def rejected_rows(self):
        return [dict(r) for r in self._x(
            "SELECT reason, count, first_at, last_at, last_device, last_detail FROM rejected "
            "ORDER BY reason")]

    def anomaly_count(self):
        return self._x("SELECT COUNT(*) AS n FROM anomalies").fetchone()["n"]
