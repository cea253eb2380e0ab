"""Fill a collector store with a synthetic fleet: N devices and M anomalies over D days, written
straight into the tables (through the store's own schema) so 1M rows take seconds, not the hours
real messages would.

    python bench/gen_fleet_store.py /tmp/fleet.sqlite --devices 100000 --anomalies 1000000

Seeded: the same arguments give the same store. Kinds, severities and summaries look like the
agent's: most anomalies are info/low/medium, a few percent high/critical; a few devices are
silent, stopped or offline; a minority of devices (the "attacked" ones) raise most anomalies.
"""
import argparse
import json
import random
import sqlite3
import time

SEVERITY_WEIGHTS = (("info", 40), ("low", 25), ("medium", 25), ("high", 8), ("critical", 2))
KINDS = ("login.bruteforce", "login.spray", "login.success_after_failures", "login.new_source",
         "conn.new_listener", "conn.raw_socket", "conn.fanout", "conn.scan", "conn.relay",
         "conn.beacon", "conn.table_pressure", "integrity.rom_shadowed",
         "integrity.package_mismatch", "integrity.baseline_drift", "integrity.exec_from_tmp",
         "integrity.deleted_exe", "integrity.firmware_changed", "agent.silent")
BATCH = 20000


def device_id(n):
    return "rw-%012x" % (0x0a1b00000000 + n)


def fleet_rows(devices, anomalies, days, now, seed):
    """(device rows, anomaly rows, {device: anomalies}, info) as the generator makes them; the
    columns are DEVICE_COLUMNS and ANOMALY_COLUMNS."""
    rng = random.Random(seed)
    start = now - days * 86400
    firmware = json.dumps({"DISTRIB_RELEASE": "24.10.2", "model": "GL.iNet GL-MT3000",
                           "board_name": "glinet,gl-mt3000", "kernel": "6.6.86"})
    heartbeat = json.dumps({"interval": 60, "uptime": 86400, "rss_kb": 14000, "cpu_percent": 0.4,
                            "spool_depth": 0, "counters": {"events": 1000}, "drops": {},
                            "seq": 1440, "time": now})
    device_rows, not_online = [], 0
    for n in range(devices):
        roll = rng.random()
        status, silent = "online", None
        if roll < 0.01:
            status, silent = "offline", now - rng.uniform(60, 86400)
        elif roll < 0.015:
            status = "stopped"
        elif roll < 0.02:
            silent = now - rng.uniform(60, 86400)
        not_online += status != "online" or silent is not None
        device_rows.append([device_id(n), start, now - rng.uniform(0, 120), "%016x" % n, status,
                            now - 3600, now - 60, 60.0, "%016x" % n, 1440, heartbeat, 1440, 0,
                            "0.1.0", firmware, "a" * 64, "b" * 64, "apk", now - 3600, silent])
    # a tenth of the fleet raises nine tenths of the anomalies
    hot = max(1, devices // 10)
    severities = [s for s, _ in SEVERITY_WEIGHTS]
    weights = [w for _, w in SEVERITY_WEIGHTS]
    per_device = {}

    def anomaly_rows():
        times = sorted(rng.uniform(start, now) for _ in range(anomalies))
        for received in times:
            n = rng.randrange(hot) if rng.random() < 0.9 else rng.randrange(devices)
            seq = per_device.get(n, 0) + 1
            per_device[n] = seq
            kind = KINDS[int(rng.paretovariate(1.2)) % len(KINDS)]
            severity = rng.choices(severities, weights)[0]
            source = "203.0.%d.%d" % (rng.randrange(256), rng.randrange(256))
            yield (device_id(n), "%016x" % n, seq, received - rng.uniform(0, 2), kind, severity,
                   "%s from %s (synthetic)" % (kind, source),
                   json.dumps({"source_ip": source, "failures": rng.randrange(10, 500)}),
                   1, 1, received, "agent")

    info = {"devices": devices, "anomalies": anomalies, "days": days, "since": start,
            "until": now, "silent": not_online}
    return device_rows, anomaly_rows(), per_device, info


DEVICE_COLUMNS = ("device, first_seen, last_seen, run, status, status_at, alive_at, "
                  "heartbeat_interval, heartbeat_run, heartbeat_seq, last_heartbeat, heartbeats, "
                  "anomalies, agent_version, firmware, firmware_hash, baseline_hash, "
                  "package_manager, inventory_at, silent_since")
ANOMALY_COLUMNS = ("device, run, seq, time, kind, severity, summary, evidence, count, v, "
                   "received_at, origin")


def generate(path, devices=100000, anomalies=1000000, days=7.0, now=None, seed=1):
    """Writes the store at `path` (a SQLite file, or a postgresql:// URL); returns what it holds
    (counts, time range)."""
    from routerwatch_collector.store import open_store
    now = time.time() if now is None else now
    open_store(path).close()                   # the schema, exactly as the collector makes it
    device_rows, anomaly_rows, per_device, info = fleet_rows(devices, anomalies, days, now, seed)
    if str(path).startswith(("postgresql://", "postgres://")):
        _write_postgres(str(path), device_rows, anomaly_rows, per_device)
        return info
    db = sqlite3.connect(str(path))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    for i in range(0, len(device_rows), BATCH):
        _insert_devices(db, device_rows[i:i + BATCH])
    rows = []
    for row in anomaly_rows:
        rows.append(row)
        if len(rows) >= BATCH:
            _insert_anomalies(db, rows)
            rows = []
    _insert_anomalies(db, rows)
    db.executemany("UPDATE devices SET anomalies = ? WHERE device = ?",
                   [(count, device_id(n)) for n, count in per_device.items()])
    db.commit()
    db.execute("ANALYZE")
    db.close()
    return info


def _write_postgres(url, device_rows, anomaly_rows, per_device):
    """COPY into the collector's PostgreSQL schema: devices, the anomalies with their keys, and
    the per-5-minute counts the collector keeps as it stores anomalies."""
    import psycopg
    from routerwatch_collector.store import ROLLUP_SECONDS
    with psycopg.connect(url, autocommit=False) as con:
        for row in device_rows:
            row[12] = per_device.get(int(row[0][3:], 16) - 0x0a1b00000000, 0)
        with con.cursor().copy("COPY devices (%s) FROM STDIN" % DEVICE_COLUMNS) as copy:
            for row in device_rows:
                copy.write_row(row)
        with con.cursor().copy("COPY anomalies (%s) FROM STDIN" % ANOMALY_COLUMNS) as copy:
            for row in anomaly_rows:
                copy.write_row(row)
        con.execute("INSERT INTO anomaly_keys (device, run, seq, received_at) "
                    "SELECT device, run, seq, received_at FROM anomalies")
        con.execute("INSERT INTO anomaly_counts (bucket, severity, kind, n) SELECT "
                    "floor(received_at / %s) * %s, severity, kind, count(*) FROM anomalies "
                    "GROUP BY 1, 2, 3", (float(ROLLUP_SECONDS), float(ROLLUP_SECONDS)))
        con.execute("INSERT INTO anomaly_counts_hourly (bucket, severity, kind, n) SELECT "
                    "floor(bucket / 3600) * 3600, severity, kind, sum(n) FROM anomaly_counts "
                    "GROUP BY 1, 2, 3")
        con.commit()
    with psycopg.connect(url, autocommit=True) as con:
        # as autovacuum leaves an insert-only table (PostgreSQL 13+): statistics and the
        # visibility map, without which no index-only scan skips the heap
        con.execute("VACUUM ANALYZE")


def _insert_devices(db, rows):
    db.executemany(
        "INSERT INTO devices (device, first_seen, last_seen, run, status, status_at, alive_at, "
        "heartbeat_interval, heartbeat_run, heartbeat_seq, last_heartbeat, heartbeats, "
        "anomalies, agent_version, firmware, firmware_hash, baseline_hash, package_manager, "
        "inventory_at, silent_since) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)


def _insert_anomalies(db, rows):
    db.executemany(
        "INSERT INTO anomalies (device, run, seq, time, kind, severity, summary, evidence, "
        "count, v, received_at, origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("--devices", type=int, default=100000)
    parser.add_argument("--anomalies", type=int, default=1000000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    info = generate(args.path, args.devices, args.anomalies, args.days, seed=args.seed)
    print("%s in %.1f s" % (info, time.monotonic() - started))


if __name__ == "__main__":
    import harness  # noqa: F401  (puts agent/ and collector/ on sys.path)
    main()
