"""`routerwatch-collector devices` over a fleet: 100,000 device rows on SQLite and on PostgreSQL,
the text list and `--json`, each beside the database's own client dumping the same rows in the
same run; and the silence sweep over that fleet beside one plain pass over the device table.

    python bench/bench_devices.py [--quick] [--devices N] [--repeat N]

The rows are written straight into the collector's schema (as ingest leaves them: a last
heartbeat, a firmware document, counters; 1 in 100 devices with a sequence gap, 1 in 1,000 due
for a silence alarm). Reference: `sqlite3` / `psql` printing `SELECT * FROM devices ORDER BY
device` unaligned, the floor for any program that lists every device. Ratio: collector time /
reference time. Each row also keeps the CPU seconds of every run (user + system), which a busy
machine inflates less than the wall time.
"""
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import harness

sys.path.insert(0, str(harness.REPO / "tests"))
from pgserver import PostgresServer  # noqa: E402

FULL, QUICK = 100000, 2000
DUE_EVERY = 1000        # one device in this many has missed its heartbeats
GAP_EVERY = 100
HEALTH = json.dumps({"interval": 60.0, "uptime": 3600, "rss_kb": 9000, "cpu_percent": 0.5,
                     "spool_depth": 0, "counters": {"lines": 10}, "drops": {}, "seq": 60,
                     "time": 0})
FIRMWARE = json.dumps({"DISTRIB_RELEASE": "23.05.3", "model": "Simulated AX1800",
                       "board": "sim,ax1800"})


def fill(store, devices, now):
    """`devices` rows through the store's own connection, in one statement per table."""
    numbers = ("WITH RECURSIVE n(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM n WHERE n < ?) "
               "SELECT n FROM n")
    name = "'rw-fleet-' || substr('00000000' || n, -8, 8)"
    modulo = "%"
    if type(store).__name__ == "PostgresStore":
        numbers = "SELECT n FROM generate_series(1, ?) AS n"
        name = "'rw-fleet-' || lpad(n::text, 8, '0')"
        modulo = "%%"       # psycopg's placeholders
    with store.transaction():
        store._x(
            "INSERT INTO devices (device, first_seen, last_seen, run, status, status_at, "
            "alive_at, heartbeat_interval, heartbeat_run, heartbeat_seq, last_heartbeat, "
            "heartbeats, anomalies, agent_version, firmware, firmware_hash) "
            "SELECT %s, ?, ?, 'r', 'online', ?, "
            "CASE WHEN n %s %d = 0 THEN ? ELSE ? END, 60, 'r', 60, %s, 60, n %s 7, '0.1.0', "
            "%s, 'h' FROM (%s) AS numbers" % (name, modulo, DUE_EVERY, store.JSON_PARAM,
                                               modulo, store.JSON_PARAM, numbers),
            (now - 3600, now, now - 3600, now - 3600, now, HEALTH, FIRMWARE, devices))
        store._x("INSERT INTO gaps (device, run, type, first_seq, last_seq, detected_at) "
                 "SELECT %s, 'r', 'anomaly', 5, 7, ? FROM (%s) AS numbers WHERE n %s %d = 0"
                 % (name, numbers, modulo, GAP_EVERY), (now, devices))
    store._x("ANALYZE")


def timed_with_cpu(argv, cpu, **kwargs):
    """Wall seconds of one run, and its lines; the CPU seconds of the process (user + system)
    appended to `cpu`: on a shared machine the wall time also counts waiting for a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, proc = harness.run_timed(argv, stdout=subprocess.PIPE, **kwargs)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.append(round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 3))
    return seconds, proc.stdout.count(b"\n")


def cli_run(db, extra, cpu):
    argv = [harness.python_exe(), "-m", "routerwatch_collector.cli", "devices", "--db", db]
    return lambda: timed_with_cpu(argv + list(extra), cpu, env=harness.subprocess_env())


def client_run(argv, cpu):
    return lambda: timed_with_cpu(argv, cpu)


def sweep_run(store, now):
    def run():
        start = time.perf_counter()
        due = store.silence_candidates(now, 3)
        return time.perf_counter() - start, len(due)
    return run


def plain_pass_run(store):
    def run():
        start = time.perf_counter()
        store._x("SELECT device, status, alive_at, heartbeat_interval FROM devices").fetchall()
        return time.perf_counter() - start
    return run


def measure(backend, db, store, devices, now, repeat, rows):
    if backend == "SQLite":
        reference = ["sqlite3", "-readonly", db, "SELECT * FROM devices ORDER BY device"]
    else:
        reference = ["psql", "-X", "-At", "-d", db, "-c", "SELECT * FROM devices ORDER BY device"]
    for label, extra in (("devices", ()), ("devices --json", ("--json",))):
        cpu = {"client": [], "collector": []}
        times, lines = harness.interleaved({"client": client_run(reference, cpu["client"]),
                                            "collector": cli_run(db, extra, cpu["collector"])},
                                           repeat)
        assert lines["collector"] >= devices, lines
        rows.append(harness.comparison(
            "%s, %s, %d devices" % (label, backend, devices), reference[0] + " SELECT *",
            times["client"], times["collector"],
            harness.ratios(times, "collector", "client"), target_seconds=2.0,
            cpu_seconds=cpu, load_average=os.getloadavg()[0]))
    times, extras = harness.interleaved({"plain pass": plain_pass_run(store),
                                         "sweep": sweep_run(store, now + 30)}, repeat)
    rows.append(harness.comparison(
        "silence sweep, %s, %d devices (%d due)" % (backend, devices, extras["sweep"]),
        "one pass over the device table", times["plain pass"], times["sweep"],
        harness.ratios(times, "sweep", "plain pass")))


def filled_and_measured(backend, db, devices, now, repeat, rows):
    from routerwatch_collector.stores import open_store
    store = open_store(db)
    try:
        fill(store, devices, now)
        measure(backend, db, store, devices, now, repeat, rows)
    finally:
        store.close()


def run(quick=False, workdir=None, devices=None, repeat=None):
    devices = devices or (QUICK if quick else FULL)
    repeat = repeat or (2 if quick else 3)
    rows, notes = [], []
    now = time.time()
    with harness.Workdir(workdir) as work:
        db = str(Path(work) / ("devices-%d.sqlite" % devices))
        Path(db).unlink(missing_ok=True)
        filled_and_measured("SQLite", db, devices, now, repeat, rows)
        server = PostgresServer().start()
        try:
            filled_and_measured("PostgreSQL", server.new_database("devices_bench"), devices, now,
                                repeat, rows)
            notes.append("PostgreSQL %s, a throwaway server (fsync off)"
                         % Path(server.bindir).parts[-2])
        finally:
            server.close()
    return harness.result("devices", quick, rows, notes, devices=devices)


def _extra(parser):
    parser.add_argument("--devices", type=int)


if __name__ == "__main__":
    raise SystemExit(harness.main(run, __doc__.split("\n\n")[0], _extra))
