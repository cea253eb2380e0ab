"""The fleet detections' cost per message at fleet scale: the same batches of login anomalies
and inventories stored by ingest with the fleet detections on and off (the reference), taking
turns batch by batch, on a store that already knows DEVICES devices (their firmware groups and a
day of login sightings, written in bulk), reported as a ratio: SQLite, and with --postgres a
throwaway PostgreSQL server (tests/pgserver.py) with one database per side.

    .venv/bin/python bench/bench_fleet.py --devices 100000 --messages 5000 [--postgres]
"""
import argparse
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from routerwatch.contract import Anomaly, Inventory, encode
from routerwatch_collector.ingest import Ingest
from routerwatch_collector.stores import open_store


def prefill_rows(devices, now):
    """{table: (columns, rows)}: DEVICES devices in 20 firmware groups, one login sighting each
    (distinct sources)."""
    names = ["rw-b-%06d" % n for n in range(devices)]
    return names, {
        "devices": (("device", "first_seen", "last_seen", "run"),
                    [(d, now, now, "0" * 16) for d in names]),
        "fleet_firmware": (("device", "grp", "firmware_hash"),
                           [(d, "board%d|23.05.3|r1|5.15" % (n % 20), "a" * 64)
                            for n, d in enumerate(names)]),
        "fleet_firmware_counts": (("grp", "firmware_hash", "n"),
                                  [("board%d|23.05.3|r1|5.15" % g, "a" * 64, devices // 20)
                                   for g in range(20)]),
        "fleet_sightings": (("kind", "key", "device", "detail", "at"),
                            [("fleet.campaign", "%d.%d.%d.%d" % (
                                60 + n // 65536 % 60, n // 256 % 256, n % 256, 7), d,
                              "login.bruteforce", now) for n, d in enumerate(names)]),
    }


def prefill(path, devices, now):
    """Writes the prefilled fleet into the store at `path` (SQLite file or PostgreSQL URL) through
    the collector's own schema; returns the device names."""
    open_store(path).close()
    names, tables = prefill_rows(devices, now)
    if str(path).startswith(("postgresql://", "postgres://")):
        import psycopg
        with psycopg.connect(path) as con:
            for table, (columns, rows) in tables.items():
                with con.cursor().copy("COPY %s (%s) FROM STDIN" % (
                        table, ", ".join(columns))) as copy:
                    for row in rows:
                        copy.write_row(row)
            con.commit()
        with psycopg.connect(path, autocommit=True) as con:
            con.execute("ANALYZE")
        return names
    db = sqlite3.connect(path)
    with db:
        for table, (columns, rows) in tables.items():
            db.executemany("INSERT INTO %s (%s) VALUES (%s)" % (
                table, ", ".join(columns), ",".join("?" * len(columns))), rows)
    db.execute("ANALYZE")
    db.close()
    return names


def messages(names, count, rng, now):
    out = []
    for n in range(count):
        device = rng.choice(names)
        if n % 5 == 4:      # an inventory that moves the device to a new build
            out.append(Inventory(device=device, run="1" * 16, seq=n + 1, time=now,
                                 agent_version="0.1.0",
                                 firmware={"board": "board%d" % (n % 20),
                                           "DISTRIB_RELEASE": "23.05.3",
                                           "DISTRIB_REVISION": "r1", "kernel": "5.15"},
                                 firmware_hash="%064x" % n, baseline_hash="",
                                 package_manager="opkg"))
        else:
            out.append(Anomaly(device=device, run="1" * 16, seq=n + 1, time=now,
                               kind="login.bruteforce", severity="medium", summary="s",
                               evidence={"source_ip": "%d.%d.%d.%d" % (
                                   60 + rng.randrange(60), rng.randrange(256),
                                   rng.randrange(256), 7), "inside": False}))
    return out


BATCH = 500


def measure(paths, batch, now):
    """Seconds per side ({"off": s, "on": s}) and the ratio on/off of each batch: the sides take
    turns batch by batch, so a busy moment of the machine weighs on both alike."""
    stores = {name: open_store(paths[name]) for name in ("off", "on")}
    ingests = {"off": Ingest(stores["off"], fleet=False), "on": Ingest(stores["on"])}
    elapsed = {"off": 0.0, "on": 0.0}
    ratios = []
    for i in range(0, len(batch), BATCH):
        took = {}
        for name in ("off", "on") if i // BATCH % 2 == 0 else ("on", "off"):
            ingest = ingests[name]
            start = time.perf_counter()
            for m in batch[i:i + BATCH]:
                ingest.handle("routerwatch/%s/%s" % (m.device, m.type), encode(m), now)
            ingest.flush(now)
            took[name] = time.perf_counter() - start
            elapsed[name] += took[name]
        ratios.append(took["on"] / took["off"])
    for store in stores.values():
        store.close()
    return elapsed, sorted(ratios)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100000)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--postgres", action="store_true",
                        help="measure on a throwaway PostgreSQL server instead of SQLite")
    args = parser.parse_args(argv)
    now = time.time()
    rng = random.Random(7)
    server = None
    with tempfile.TemporaryDirectory() as work:
        try:
            paths = {}
            if args.postgres:
                sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
                from pgserver import PostgresServer
                server = PostgresServer()
                server.start()
            for name in ("on", "off"):
                paths[name] = server.new_database("fleet_%s" % name) if server else \
                    os.path.join(work, "%s.sqlite" % name)
                names = prefill(paths[name], args.devices, now)
            batch = messages(names, args.messages, rng, now)
            elapsed, ratios = measure(paths, batch, now)
            off, on = elapsed["off"], elapsed["on"]
        finally:
            if server is not None:
                server.close()
    print("%s: devices %d, messages %d (4/5 login anomalies, 1/5 inventories)" % (
        "PostgreSQL" if args.postgres else "SQLite", args.devices, args.messages))
    print("fleet off: %.2f s (%.0f msg/s)" % (off, args.messages / off))
    print("fleet on:  %.2f s (%.0f msg/s)" % (on, args.messages / on))
    print("ratio on/off: %.2fx (batches of %d: median %.2fx, range %.2f-%.2fx)" % (
        on / off, BATCH, ratios[len(ratios) // 2], ratios[0], ratios[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
