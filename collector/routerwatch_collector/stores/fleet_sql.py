"""The fleet detections' shared state, in the database (SQLite and PostgreSQL speak this SQL
alike), so several collectors feeding one store see the same fleet and raise each fleet anomaly
once: a claim is an INSERT ... ON CONFLICT DO NOTHING or an UPDATE ... WHERE that one writer wins.

Every read is an index range on one key (one attacker source, one program hash, one firmware
group), never a scan of the fleet: the cost of a message is the size of its own key's rows.
"""
from routerwatch import jsonio

# The same DDL for both backends: TEXT, DOUBLE PRECISION and BIGINT mean the same to both.
FLEET_SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_sightings (
    kind    TEXT             NOT NULL,   -- fleet.campaign | fleet.implant
    key     TEXT             NOT NULL,   -- the attacker source, the program hash
    device  TEXT             NOT NULL,
    detail  TEXT             NOT NULL,   -- what the device saw: a kind, an address, a port
    at      DOUBLE PRECISION NOT NULL,   -- last time (received_at) the device saw it
    PRIMARY KEY (kind, key, device, detail)
);
CREATE INDEX IF NOT EXISTS fleet_sightings_at ON fleet_sightings (at);
CREATE INDEX IF NOT EXISTS fleet_sightings_key_at ON fleet_sightings (kind, key, at);

CREATE TABLE IF NOT EXISTS fleet_incidents (
    kind      TEXT             NOT NULL,
    key       TEXT             NOT NULL,
    device    TEXT             NOT NULL,   -- the anomaly row this incident updates
    run       TEXT             NOT NULL,
    seq       BIGINT           NOT NULL,
    opened_at DOUBLE PRECISION NOT NULL,
    last_at   DOUBLE PRECISION NOT NULL,
    devices   BIGINT           NOT NULL,
    PRIMARY KEY (kind, key)
);

CREATE TABLE IF NOT EXISTS fleet_firmware (
    device        TEXT PRIMARY KEY,
    grp           TEXT NOT NULL,       -- board, release, revision, kernel
    firmware_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fleet_firmware_group ON fleet_firmware (grp, firmware_hash);

CREATE TABLE IF NOT EXISTS fleet_firmware_counts (
    grp           TEXT   NOT NULL,
    firmware_hash TEXT   NOT NULL,
    n             BIGINT NOT NULL,
    PRIMARY KEY (grp, firmware_hash)
);
"""

FLEET_TABLES = ("fleet_sightings", "fleet_incidents", "fleet_firmware", "fleet_firmware_counts")

# the most rows one read returns: a hostile router cannot make a message's cost unbounded
FLEET_READ_LIMIT = 1000


class FleetSql:
    """Mixed into SqlStore: needs `_x(sql, args)` and `_json`."""

    def fleet_sight(self, kind, key, device, detail, at):
        self._x("INSERT INTO fleet_sightings (kind, key, device, detail, at) VALUES (?,?,?,?,?) "
                "ON CONFLICT (kind, key, device, detail) DO UPDATE SET at = excluded.at",
                (kind, key, device, detail, at))

    _SIGHTINGS_OF_KEY = " FROM fleet_sightings WHERE kind = ? AND key = ? AND at >= ?"

    def fleet_spread_counts(self, kind, key, since):
        """(devices, details, first, last) seen for `key` since `since`, in one statement: what
        every message of the key asks, before it knows whether the key is an incident."""
        row = self._x("SELECT COUNT(DISTINCT device) AS devices, COUNT(DISTINCT detail) AS "
                      "details, MIN(at) AS first, MAX(at) AS last" + self._SIGHTINGS_OF_KEY,
                      (kind, key, since)).fetchone()
        return row["devices"], row["details"], row["first"], row["last"]

    def fleet_spread_samples(self, kind, key, since, limit):
        """(devices, details) seen for `key` since `since`, the first seen first, at most
        `limit` of each: what the evidence of an incident names."""
        args = (kind, key, since, max(1, min(int(limit), FLEET_READ_LIMIT)))
        device_sample = [r["device"] for r in self._x(
            "SELECT device, MIN(at) AS first" + self._SIGHTINGS_OF_KEY + " GROUP BY device "
            "ORDER BY first, device LIMIT ?", args)]
        detail_sample = [r["detail"] for r in self._x(
            "SELECT detail, MIN(at) AS first" + self._SIGHTINGS_OF_KEY + " GROUP BY detail "
            "ORDER BY first, detail LIMIT ?", args)]
        return device_sample, detail_sample

    def fleet_spread(self, kind, key, since, limit):
        """(devices, details, device sample, detail sample) seen for `key` since `since`."""
        devices, details, _, _ = self.fleet_spread_counts(kind, key, since)
        return (devices, details) + self.fleet_spread_samples(kind, key, since, limit)

    def fleet_forget_sightings(self, kind, before):
        self._x("DELETE FROM fleet_sightings WHERE at < ? AND kind = ?", (before, kind))

    # ------------------------------------------------------------------ incidents
    def fleet_open_incident(self, kind, key, device, run, seq, now, devices, expired_before):
        """Claim a new incident: True when this writer opened it (a new anomaly is due), False
        when one is still open (opened by anyone; its last_at >= expired_before)."""
        cur = self._x("INSERT INTO fleet_incidents (kind, key, device, run, seq, opened_at, "
                      "last_at, devices) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (kind, key) "
                      "DO NOTHING", (kind, key, device, run, seq, now, now, devices))
        if cur.rowcount == 1:
            return True
        cur = self._x("UPDATE fleet_incidents SET device = ?, run = ?, seq = ?, opened_at = ?, "
                      "last_at = ?, devices = ? WHERE kind = ? AND key = ? AND last_at < ?",
                      (device, run, seq, now, now, devices, kind, key, expired_before))
        return cur.rowcount == 1

    def fleet_grow_incident(self, kind, key, now, devices):
        """The open incident's anomaly row (device, run, seq) when `devices` is more than it
        counted (its anomaly is then due an update), else None; last_at moves on either way."""
        row = self._x("SELECT device, run, seq, devices FROM fleet_incidents WHERE kind = ? AND "
                      "key = ?", (kind, key)).fetchone()
        if row is None:
            return None
        cur = self._x("UPDATE fleet_incidents SET last_at = ?, devices = ? WHERE kind = ? AND "
                      "key = ? AND devices < ?", (now, devices, kind, key, devices))
        if cur.rowcount != 1:
            self._x("UPDATE fleet_incidents SET last_at = ? WHERE kind = ? AND key = ? AND "
                    "last_at < ?", (now, kind, key, now))
            return None
        return row["device"], row["run"], row["seq"]

    def fleet_close_incident(self, kind, key):
        """End an open incident: its anomaly row (device, run, seq) when this writer ended it,
        None when there was none (or another collector ended it first). A later finding of the
        same key opens a new incident, so a new anomaly."""
        row = self._x("SELECT device, run, seq FROM fleet_incidents WHERE kind = ? AND key = ?",
                      (kind, key)).fetchone()
        if row is None:
            return None
        cur = self._x("DELETE FROM fleet_incidents WHERE kind = ? AND key = ? AND device = ? AND "
                      "run = ? AND seq = ?", (kind, key, row["device"], row["run"], row["seq"]))
        return (row["device"], row["run"], row["seq"]) if cur.rowcount == 1 else None

    def anomaly_by_key(self, device, run, seq):
        """(count, evidence, summary) of one stored anomaly, or None."""
        row = self._x("SELECT count, evidence, summary FROM anomalies WHERE device = ? AND "
                      "run = ? AND seq = ?", (device, run, seq)).fetchone()
        if row is None:
            return None
        return row["count"], self._json(row["evidence"]), row["summary"]

    def fleet_incidents(self, kind, since=None, limit=100):
        sql, args = "SELECT * FROM fleet_incidents WHERE kind = ?", [kind]
        if since is not None:
            sql += " AND last_at >= ?"
            args.append(since)
        sql += " ORDER BY devices DESC, key LIMIT ?"
        args.append(max(1, min(int(limit), FLEET_READ_LIMIT)))
        return [dict(r) for r in self._x(sql, args)]

    JSON_PARAM = "?"     # a JSON text parameter as the evidence column takes it

    def update_anomaly(self, device, run, seq, count, evidence, summary):
        """A fleet anomaly grew: its count, evidence and summary follow (the row stays one)."""
        self._x("UPDATE anomalies SET count = ?, evidence = %s, summary = ? WHERE device = ? AND "
                "run = ? AND seq = ?" % self.JSON_PARAM,
                (count, jsonio.dumps(evidence), summary, device, run, seq))

    def has_anomaly(self, device, kind_prefix, severities):
        """Whether the device has an anomaly of a kind starting with kind_prefix in severities
        (the device's own rows, by the (device, received_at) index)."""
        marks = ",".join("?" * len(severities))
        return self._x("SELECT 1 AS x FROM anomalies WHERE device = ? AND kind LIKE ? AND "
                       "severity IN (%s) LIMIT 1" % marks,
                       (device, kind_prefix + "%") + tuple(severities)
                       ).fetchone() is not None

    # ------------------------------------------------------------------ firmware groups
    def fleet_set_firmware(self, device, group, firmware_hash):
        """The device reports (group, hash): keep the per-group counts. Returns None when
        nothing changed, else what the device reported before: (group, hash), or (None, None)."""
        row = self._x("SELECT grp, firmware_hash FROM fleet_firmware WHERE device = ?",
                      (device,)).fetchone()
        previous = (None, None) if row is None else (row["grp"], row["firmware_hash"])
        if previous == (group, firmware_hash) or (group is None and row is None):
            return None
        if row is not None:
            self._x("UPDATE fleet_firmware_counts SET n = n - 1 WHERE grp = ? AND "
                    "firmware_hash = ?", previous)
            self._x("DELETE FROM fleet_firmware_counts WHERE grp = ? AND firmware_hash = ? AND "
                    "n <= 0", previous)
        if group is None:
            self._x("DELETE FROM fleet_firmware WHERE device = ?", (device,))
            return previous
        self._x("INSERT INTO fleet_firmware (device, grp, firmware_hash) VALUES (?,?,?) "
                "ON CONFLICT (device) DO UPDATE SET grp = excluded.grp, "
                "firmware_hash = excluded.firmware_hash", (device, group, firmware_hash))
        self._x("INSERT INTO fleet_firmware_counts (grp, firmware_hash, n) VALUES (?,?,1) "
                "ON CONFLICT (grp, firmware_hash) DO UPDATE SET "
                "n = fleet_firmware_counts.n + 1", (group, firmware_hash))
        return previous

    def fleet_firmware_counts(self, group, limit=64):
        """(total devices in the group, [(hash, n)] most reported first, at most `limit`)."""
        total = self._x("SELECT CAST(SUM(n) AS BIGINT) AS t FROM fleet_firmware_counts WHERE "
                        "grp = ?", (group,)).fetchone()["t"] or 0
        rows = self._x("SELECT firmware_hash, n FROM fleet_firmware_counts WHERE grp = ? "
                       "ORDER BY n DESC, firmware_hash LIMIT ?", (group, int(limit)))
        return total, [(r["firmware_hash"], r["n"]) for r in rows]

    def fleet_firmware_devices(self, group, firmware_hash, limit):
        return [r["device"] for r in self._x(
            "SELECT device FROM fleet_firmware WHERE grp = ? AND firmware_hash = ? ORDER BY "
            "device LIMIT ?", (group, firmware_hash, max(1, min(int(limit), FLEET_READ_LIMIT))))]

    def fleet_firmware_groups(self, limit=100):
        """[(group, total, distinct hashes)] largest first."""
        return [(r["grp"], r["t"], r["h"]) for r in self._x(
            "SELECT grp, CAST(SUM(n) AS BIGINT) AS t, COUNT(*) AS h FROM fleet_firmware_counts "
            "GROUP BY grp ORDER BY t DESC, grp LIMIT ?",
            (max(1, min(int(limit), FLEET_READ_LIMIT)),))]
