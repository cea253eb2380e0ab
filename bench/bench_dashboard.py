"""The dashboard at fleet scale: how long the fleet page and the other pages take with 100,000
devices and 1,000,000 anomalies over 7 days (target: the fleet page within 1 s).

    python bench/bench_dashboard.py [--quick] [--devices N] [--anomalies N] [--workdir DIR]

The store is made by gen_fleet_store.py (seeded; with --workdir it is kept and reused, since 1M
rows take minutes to write) and served by `routerwatch-collector serve` in its own process; each
page is one HTTP GET over loopback, timed to the last byte of the HTML.

Reference, in the same rounds: the same numbers counted the plain way, straight from the
anomalies with GROUP BY over the range (Python's sqlite3 on the same file, no HTTP, no HTML):
device counts by state, anomalies per bar and severity, top kinds, top devices, the newest high
and critical ones. It is what the page would cost without the store's per-5-minute counts and
indexes; below 1 the page (HTTP and HTML included) is faster than that query alone.
"""
import json
import math
import signal
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import harness
from gen_fleet_store import generate

FULL = {"devices": 100000, "anomalies": 1000000}
QUICK = {"devices": 2000, "anomalies": 20000}
SEVERE = ("high", "critical")


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_postgres_store(work, devices, anomalies):
    """A throwaway PostgreSQL server in the workdir and the fleet in a new database of it:
    (server, url, info)."""
    import sys
    sys.path.insert(0, str(harness.REPO / "tests"))
    from pgserver import PostgresServer
    server = PostgresServer()
    server.start()
    try:
        url = server.new_database("fleet")
        started = time.monotonic()
        info = generate(url, devices=devices, anomalies=anomalies)
        info["generate_seconds"] = round(time.monotonic() - started, 1)
        return server, url, info
    except BaseException:
        server.close()
        raise


def make_store(work, devices, anomalies):
    """The store for these sizes, made once per workdir (a marker file says which sizes)."""
    path = Path(work) / ("fleet-%d-%d.sqlite" % (devices, anomalies))
    marker = path.with_suffix(".json")
    if path.exists() and marker.exists():
        return path, json.loads(marker.read_text())
    for stale in (path, Path(str(path) + "-wal"), Path(str(path) + "-shm")):
        if stale.exists():
            stale.unlink()
    started = time.monotonic()
    info = generate(path, devices=devices, anomalies=anomalies)
    from routerwatch_collector.store import open_store
    store = open_store(path)          # counts the rows per 5 minutes, as for an older store
    store.close()
    info["generate_seconds"] = round(time.monotonic() - started, 1)
    marker.write_text(json.dumps(info))
    return path, info


class Server:
    def __init__(self, db, work):
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        log = open(Path(work) / "serve.log", "ab")
        try:
            self.process = subprocess.Popen(
                [harness.python_exe(), "-m", "routerwatch_collector.cli", "serve", "--db",
                 str(db), "--listen", "127.0.0.1:%d" % self.port], stdout=log, stderr=log,
                stdin=subprocess.DEVNULL, env=harness.subprocess_env(), start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.get("/api/health")
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("serve exited %s" % self.process.returncode)
                time.sleep(0.1)
        self.close()
        raise RuntimeError("serve did not answer within 60 s")

    def get(self, path):
        with urllib.request.urlopen(self.base + path, timeout=120) as response:
            body = response.read()
            if response.status != 200:
                raise RuntimeError("%s: HTTP %d" % (path, response.status))
            return body

    def timed(self, path):
        def run():
            start = time.perf_counter()
            self.get(path)
            return time.perf_counter() - start
        return run

    def close(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Plain:
    """A connection for the reference queries, written with `?` for either backend."""

    def __init__(self, db):
        self.db = str(db)
        self.postgres = self.db.startswith(("postgresql://", "postgres://"))

    def connect(self):
        if self.postgres:
            import psycopg
            return _Translated(psycopg.connect(self.db, autocommit=True))
        return sqlite3.connect("file:%s?mode=ro" % self.db, uri=True)


class _Translated:
    def __init__(self, con):
        self.con = con

    def execute(self, sql, args=()):
        return self.con.execute(sql.replace("?", "%s").replace("LIKE 'login.%'",
                                                                "LIKE 'login.%%'"), args)

    def close(self):
        self.con.close()


def plain_fleet(db, since, until, bucket, where=""):
    """The fleet page's numbers straight from the anomalies (the reference); `where` adds the
    page's filters as SQL."""
    def run():
        start = time.perf_counter()
        con = Plain(db).connect()
        try:
            con.execute("SELECT CASE WHEN silent_since IS NOT NULL THEN 'silent' ELSE status END "
                        "AS s, COUNT(*) FROM devices GROUP BY s").fetchall()
            rng = (since, until)
            con.execute("SELECT floor(received_at / ?), severity, COUNT(*) FROM "
                        "anomalies WHERE received_at >= ? AND received_at < ?" + where + " GROUP BY 1, 2",
                        (bucket,) + rng).fetchall()
            con.execute("SELECT kind, COUNT(*) AS n FROM anomalies WHERE received_at >= ? AND "
                        "received_at < ?" + where + " GROUP BY kind ORDER BY n DESC LIMIT 10", rng).fetchall()
            con.execute("SELECT device, COUNT(*) AS n FROM anomalies WHERE received_at >= ? AND "
                        "received_at < ? AND severity IN ('high', 'critical')" + where + " GROUP BY device "
                        "ORDER BY n DESC LIMIT 10", rng).fetchall()
            con.execute("SELECT * FROM anomalies WHERE received_at >= ? AND received_at < ? AND "
                        "severity IN ('high', 'critical')" + where + " ORDER BY id DESC LIMIT 50",
                        rng).fetchall()
        finally:
            con.close()
        return time.perf_counter() - start
    return run


def plain_rows(db, sql, args):
    def run():
        start = time.perf_counter()
        con = Plain(db).connect()
        try:
            con.execute(sql, args).fetchall()
        finally:
            con.close()
        return time.perf_counter() - start
    return run


def run(quick=False, workdir=None, devices=None, anomalies=None, repeat=None, postgres=False):
    sizes = dict(QUICK if quick else FULL)
    if devices:
        sizes["devices"] = devices
    if anomalies:
        sizes["anomalies"] = anomalies
    repeat = repeat or (2 if quick else 5)
    rows, notes = [], []
    pg_server = None
    with harness.Workdir(workdir) as work:
        if postgres:
            pg_server, db, info = make_postgres_store(work, sizes["devices"], sizes["anomalies"])
            notes.append("store: PostgreSQL %s (a throwaway server, fsync off), %d devices "
                         "(%d not online), %d anomalies over %g days; made in %s s" % (
                             Path(pg_server.bindir).parts[-2], info["devices"], info["silent"],
                             info["anomalies"], info["days"], info["generate_seconds"]))
        else:
            db, info = make_store(work, sizes["devices"], sizes["anomalies"])
            notes.append("store: SQLite (WAL), %d devices (%d not online), %d anomalies over %g "
                          "days, %.0f MB; made in %s s" % (
                              info["devices"], info["silent"], info["anomalies"], info["days"],
                              Path(db).stat().st_size / 1e6, info.get("generate_seconds", "?")))
        try:
            _measure(db, info, work, repeat, rows)
        finally:
            if pg_server is not None:
                pg_server.close()
    return harness.result("dashboard", quick, rows, notes, sizes=sizes,
                          backend="postgresql" if postgres else "sqlite")


def _measure(db, info, work, repeat, rows):
    """One row per page: the dashboard over HTTP beside the plain SQL, interleaved."""
    until = info["until"]
    server = Server(db, work)
    # the pages ask for "the last 24 h": the generated store ends at `until`, so the
    # timestamps below are absolute and every round sees the same rows
    day = "since=%s&until=%s" % (iso(until - 86400), iso(until + 1))
    week = "since=%s&until=%s" % (iso(until - 7 * 86400 + 60), iso(until + 1))
    try:
        busiest = json.loads(server.get("/api/fleet?" + day))["top_devices"][0]["device"]
        cases = [
            ("fleet page, last 24 h", "/?" + day,
             plain_fleet(db, until - 86400, until + 1, 1800)),
            ("fleet page, last 7 days", "/?" + week,
             plain_fleet(db, until - 7 * 86400 + 60, until + 1, 3 * 3600)),
            ("fleet page, login.* high+, 24 h", "/?kind=login.*&severity=high&" + day,
             plain_fleet(db, until - 86400, until + 1, 1800,
                         " AND kind LIKE 'login.%' AND severity IN ('high', 'critical')")),
            ("anomaly list, newest 50", "/anomalies?" + day, plain_rows(
                db, "SELECT * FROM anomalies WHERE received_at >= ? ORDER BY id DESC "
                    "LIMIT 50", (until - 86400,))),
            ("device page (busiest device)", "/devices/%s?%s" % (busiest, week),
             plain_rows(db, "SELECT * FROM anomalies WHERE device = ? ORDER BY id DESC "
                            "LIMIT 50", (busiest,))),
        ]
        for case, path, reference in cases:
            server.get(path)                                     # warm the caches
            times, _ = harness.interleaved({"plain SQL": reference,
                                            "dashboard": server.timed(path)}, repeat)
            rows.append(harness.comparison(
                case, "plain SQL, no rollup", times["plain SQL"], times["dashboard"],
                harness.ratios(times, "dashboard", "plain SQL"), path=path,
                target_seconds=1.0 if case.startswith("fleet") else None))
    finally:
        server.close()


def iso(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.floor(seconds)))


def _extra(parser):
    parser.add_argument("--devices", type=int)
    parser.add_argument("--anomalies", type=int)
    parser.add_argument("--postgres", action="store_true", default=None,
                        help="on a throwaway PostgreSQL server instead of SQLite")


if __name__ == "__main__":
    raise SystemExit(harness.main(run, __doc__.split("\n\n")[0], _extra))
