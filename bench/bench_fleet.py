"""The fleet detections' cost per message at fleet scale: the same batches of login anomalies
and inventories stored by ingest with the fleet detections on and off (the reference), on a
SQLite store that already knows DEVICES devices (their firmware groups and a day of login
sightings, written in bulk), reported as a ratio.

    .venv/bin/python bench/bench_fleet.py --devices 100000 --messages 5000
"""
import argparse
import os
import random
import sys
import tempfile
import time

from routerwatch.contract import Anomaly, Inventory, encode
from routerwatch_collector.ingest import Ingest
from routerwatch_collector.stores import open_store


def prefill(store, devices, now):
    """DEVICES devices in 20 firmware groups, one login sighting each (distinct sources)."""
    db = store._db
    names = ["rw-b-%06d" % n for n in range(devices)]
    with store.transaction():
        db.executemany("INSERT INTO devices (device, first_seen, last_seen, run) VALUES "
                       "(?,?,?,?)", [(d, now, now, "0" * 16) for d in names])
        db.executemany("INSERT INTO fleet_firmware (device, grp, firmware_hash) VALUES (?,?,?)",
                       [(d, "board%d|23.05.3|r1|5.15" % (n % 20), "a" * 64)
                        for n, d in enumerate(names)])
        db.executemany("INSERT INTO fleet_firmware_counts (grp, firmware_hash, n) VALUES (?,?,?)",
                       [("board%d|23.05.3|r1|5.15" % g, "a" * 64, devices // 20)
                        for g in range(20)])
        db.executemany("INSERT INTO fleet_sightings (kind, key, device, detail, at) VALUES "
                       "(?,?,?,?,?)", [("fleet.campaign", "%d.%d.%d.%d" % (
                           60 + n // 65536 % 60, n // 256 % 256, n % 256, 7), d,
                           "login.bruteforce", now) for n, d in enumerate(names)])
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


def measure(path, batch, fleet, now):
    store = open_store(path)
    ingest = Ingest(store, fleet=None if fleet else False)
    start = time.perf_counter()
    for i in range(0, len(batch), 500):
        for m in batch[i:i + 500]:
            ingest.handle("routerwatch/%s/%s" % (m.device, m.type), encode(m), now)
        ingest.flush(now)
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100000)
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args(argv)
    now = time.time()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as work:
        paths = {}
        for name in ("on", "off"):
            paths[name] = os.path.join(work, "%s.sqlite" % name)
            store = open_store(paths[name])
            names = prefill(store, args.devices, now)
            store.close()
        batch = messages(names, args.messages, rng, now)
        off = measure(paths["off"], batch, False, now)
        on = measure(paths["on"], batch, True, now)
    print("devices %d, messages %d (4/5 login anomalies, 1/5 inventories)" % (
        args.devices, args.messages))
    print("fleet off: %.2f s (%.0f msg/s)" % (off, args.messages / off))
    print("fleet on:  %.2f s (%.0f msg/s)" % (on, args.messages / on))
    print("ratio on/off: %.2fx" % (on / off))
    return 0


if __name__ == "__main__":
    sys.exit(main())
