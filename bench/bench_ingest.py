"""Ingest at fleet scale: how fast the collector drains a QoS 1 backlog the broker holds for it,
beside mosquitto_sub draining the same backlog in the same run, on SQLite and on PostgreSQL
(one collector, then three in one shared-subscription group); a bare paho-mqtt client draining
it (the client library's own ceiling); three collectors on one PostgreSQL with one of them
killed (SIGKILL) and restarted mid-stream; and `devices` over a fleet of 100,000 device rows.

    python bench/bench_ingest.py [--anomalies 100000] [--devices 1000] [--fleet 100000]
                                 [--cases sqlite,postgresql,group,paho,kill,devices]

Backlog: the reference (mosquitto_sub -c -q 1, a persistent session) and the collector(s) each
subscribe once and stop; N anomalies from D simulated routers (real contract JSON, one topic
per router) are published at QoS 1 while they are away, so the broker queues N for each. Then
each is started alone and timed from its start to the N-th message: printed by mosquitto_sub,
stored as a row by the collector(s). The broker is the same one, its queue the same length.

Kill: three collectors of one share group on one PostgreSQL, D simulated routers sending
heartbeats (every --heartbeat-interval s) and N anomalies; once a quarter is stored one collector
is killed with SIGKILL, more is sent while it is away (some queued in its session), and it is
started again under the same instance name. Checked: every anomaly stored exactly once, the
highest seq per run as sent, no gap left open, and no agent.silent after three heartbeat
intervals of quiet.

Database alone (with the SQLite and PostgreSQL cases): the rows of the same kind of backlog put
into the store's database with nothing in front of it (SQLite: rows already made, inserted from C;
PostgreSQL: psql running the store's statement, then `\\copy` into the anomalies table alone), in
the collector's batches: a rate no collector on this schema and machine can exceed, whatever its
language.

Floor (with the SQLite case): the same kind of backlog only parsed with json.loads and inserted
row by row into the collector's SQLite schema, in this process: what no Python collector on this
schema and machine gets below, beside the collector's and mosquitto_sub's time of the SQLite case.

Devices: D rows written into the PostgreSQL schema (as the collector writes them, with a last
heartbeat and firmware), then `routerwatch-collector devices --json` timed end to end.
"""
import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import harness
import services
from fleet_devices import SimulatedFleet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pgserver import PostgresServer  # noqa: E402


def reference_drain(broker, count, client_id):
    """mosquitto_sub resuming its session: seconds to print `count` messages."""
    start = time.perf_counter()
    sub = subprocess.run(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-c",
                          "-i", client_id, "-q", "1", "-t", "routerwatch/+/anomaly",
                          "-C", str(count)], stdout=subprocess.DEVNULL, timeout=600)
    assert sub.returncode == 0
    return time.perf_counter() - start


def subscribe_reference(broker, client_id):
    """Create the reference's persistent session (subscribe, then leave)."""
    sub = subprocess.Popen(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-c",
                            "-i", client_id, "-q", "1", "-t", "routerwatch/+/anomaly"],
                           stdout=subprocess.DEVNULL)
    time.sleep(1.0)
    sub.send_signal(signal.SIGINT)
    sub.wait(10)


def paho_drain(host, port, client_id, count):
    """A bare paho-mqtt client resuming its session, acknowledging each message on receipt,
    nothing decoded or stored: seconds to receive `count` messages (run in a process of its
    own, started like the collector)."""
    from routerwatch.sinks.mqtt import new_client
    start = time.perf_counter()
    client = new_client(client_id, "3.1.1", clean=False)
    manual = hasattr(client, "manual_ack_set")
    if manual:
        client.manual_ack_set(True)
    received = [0]

    def on_message(client, userdata, message):
        received[0] += 1
        if manual:
            client.ack(message.mid, message.qos)
    client.on_message = on_message
    client.on_connect = lambda client, *rest: client.subscribe("routerwatch/+/anomaly", 1)
    client.connect(host, port, 60)
    while received[0] < count:
        client.loop(timeout=0.5)
    client.disconnect()
    return time.perf_counter() - start


COLLECTOR_OPTIONS = []      # more collector options from --collector-option


def collector_argv(broker, db, group, instance):
    argv = [sys.executable, "-m", "routerwatch_collector.cli", "run", "--host", broker.host,
            "--port", str(broker.port), "--db", db] + COLLECTOR_OPTIONS
    if group:
        argv += ["--share-group", group, "--instance", instance]
    else:
        argv += ["--client-id", "bench-%s" % instance]
    return argv


def start_collectors(broker, db, group, count, work, tag):
    processes = []
    for n in range(count):
        log = open(Path(work) / ("collector-%s-%d.log" % (tag, n)), "ab")
        processes.append(subprocess.Popen(collector_argv(broker, db, group, "%s-%d" % (tag, n)),
                                          stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                          env=harness.subprocess_env()))
        log.close()
    return processes


def wait_logged(work, tag, count, text="subscribed to", timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(text in (Path(work) / ("collector-%s-%d.log" % (tag, n))).read_text(
                errors="replace") for n in range(count)):
            return
        time.sleep(0.05)
    raise RuntimeError("collectors %s did not subscribe" % tag)


def stop(processes):
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def stored(db):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "collector"))
    from store_rows import store_rows
    rows = store_rows(db, "SELECT COUNT(*) AS n FROM anomalies")
    return rows[0]["n"] if rows else 0


class StoredCounter:
    """How many anomalies the store holds, asked many times a second while a collector drains:
    one connection kept open, and the per-minute rollup summed (a few rows, written in the
    same transaction as the anomalies) instead of COUNT(*) over the growing table, which at
    100,000 rows took 13 ms of the CPU the collector is measured on, 20 times a second."""

    SQL = "SELECT COALESCE(SUM(n), 0) FROM anomaly_counts"

    def __init__(self, db):
        self.db = db
        self.con = None

    def __call__(self):
        if self.con is None:
            from routerwatch_collector.stores import is_postgres
            if is_postgres(self.db):
                import psycopg
                self.con = psycopg.connect(self.db, autocommit=True)
            elif Path(self.db).exists():
                import sqlite3
                self.con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=5)
            else:
                return 0
        try:
            return int(self.con.execute(self.SQL).fetchone()[0])
        except Exception:      # the collector has not created its tables yet
            self.close()
            return 0

    def close(self):
        if self.con is not None:
            self.con.close()
            self.con = None


def drain_case(broker, work, label, db, collectors, anomalies, devices):
    """One backlog for the reference and for `collectors` collector processes on `db`."""
    tag = label.replace(" ", "-").replace(",", "")
    group = ("bench%s" % secrets.token_hex(2)) if collectors > 1 else None
    ref_id = "bench-ref-%s" % secrets.token_hex(3)
    subscribe_reference(broker, ref_id)
    processes = start_collectors(broker, db, group, collectors, work, tag)
    wait_logged(work, tag, collectors)
    stop(processes)                                       # their sessions now queue
    send_backlog(broker, anomalies, devices)
    ref_seconds = reference_drain(broker, anomalies, ref_id)
    counter = StoredCounter(db)
    before, rows_before = counter(), stored(db)
    start = time.perf_counter()
    processes = start_collectors(broker, db, group, collectors, work, tag)
    try:
        deadline = time.monotonic() + 900
        while counter() < before + anomalies:
            if time.monotonic() > deadline:
                raise RuntimeError("%s: stored %d of %d" % (label, counter() - before,
                                                            anomalies))
            time.sleep(0.05)
        seconds = time.perf_counter() - start
    finally:
        stop(processes)
        counter.close()
    if stored(db) - rows_before != anomalies:       # the rollup and the table must agree
        raise RuntimeError("%s: the rollup counted %d new anomalies, the table %d"
                           % (label, anomalies, stored(db) - rows_before))
    return {"case": label, "messages": anomalies, "devices": devices,
            "mosquitto_sub_s": round(ref_seconds, 2), "collector_s": round(seconds, 2),
            "mosquitto_sub_per_s": round(anomalies / ref_seconds),
            "collector_per_s": round(anomalies / seconds),
            "ratio": round(ref_seconds / seconds, 3)}


def send_backlog(broker, anomalies, devices):
    """The simulated fleet publishes `anomalies` (QoS 1) while the subscribers are away."""
    fleet = SimulatedFleet(broker.host, broker.port, devices=devices,
                           name="b%s" % secrets.token_hex(2)).connect()
    fleet.send_anomalies(anomalies)
    fleet.wait_published()
    fleet.close()


ANOMALY_COLUMNS = ("device, run, seq, time, kind, severity, summary, evidence, count, v, "
                   "received_at, origin")
# an anomaly's row in the collector's SQLite schema, nothing else written
SQLITE_INSERT = ("INSERT INTO anomalies (%s) VALUES (?,?,?,?,?,?,?,?,?,?,?,'agent') "
                 "ON CONFLICT (device, run, seq) DO NOTHING" % ANOMALY_COLUMNS)


def sqlite_values(p, now):
    """SQLITE_INSERT's parameters for the decoded payload `p`, received at `now`."""
    return (p["device"], p["run"], p["seq"], p["time"], p["kind"], p["severity"], p["summary"],
            json.dumps(p["evidence"]), p["count"], p["v"], now)


def new_sqlite_store(work, prefix):
    """(path, connection) of a new SQLite file with the collector's schema, indexes and WAL,
    written as the collector writes (synchronous=NORMAL, transactions begun by hand)."""
    import sqlite3

    from routerwatch_collector.stores import open_store
    path = Path(work) / ("%s-%s.sqlite" % (prefix, secrets.token_hex(3)))
    open_store(str(path)).close()
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA synchronous=NORMAL")
    return path, db


def backlog_payloads(anomalies, devices):
    """The JSON of `anomalies` anomalies from `devices` simulated routers, as they are sent."""
    from routerwatch.contract import encode
    fleet = SimulatedFleet("127.0.0.1", 1, devices=devices, name="f%s" % secrets.token_hex(2))
    return [encode(m) for m in fleet.anomaly_messages(anomalies)]


def floor_case(work, anomalies, devices, reference):
    """What no Python collector on this schema gets below, in this interpreter: each payload
    of the same kind of backlog only parsed (json.loads, nothing checked) and its row inserted
    into the anomalies table of a new SQLite store (the collector's schema and indexes), in
    batches of the collector's default size; no MQTT, no validation, no dedupe, gaps, counts or
    fleet detections. `reference`: the SQLite case's result, whose mosquitto_sub time this is
    compared with."""
    from routerwatch_collector.ingest import DEFAULT_BATCH_SIZE
    payloads = backlog_payloads(anomalies, devices)
    db = new_sqlite_store(work, "floor")[1]
    loads = json.loads
    start = time.perf_counter()
    for first in range(0, anomalies, DEFAULT_BATCH_SIZE):
        rows = []
        now = time.time()
        for payload in payloads[first:first + DEFAULT_BATCH_SIZE]:
            rows.append(sqlite_values(loads(payload), now))
        db.execute("BEGIN")
        db.executemany(SQLITE_INSERT, rows)
        db.execute("COMMIT")
    seconds = time.perf_counter() - start
    db.close()
    ref_seconds = reference["mosquitto_sub_s"]
    return {"case": "floor: json.loads + one SQLite insert per message, nothing else",
            "messages": anomalies, "devices": devices, "mosquitto_sub_s": ref_seconds,
            "collector_s": round(seconds, 2), "collector_per_s": round(anomalies / seconds),
            "ratio": round(ref_seconds / seconds, 3),
            "collector_over_floor": round(reference["collector_s"] / seconds, 2)}


def database_case(work, anomalies, devices, reference, server=None):
    """The store's database alone, with no collector in front of it: the rows of the same kind
    of backlog, in batches of the collector's default size, one transaction each. SQLite: the
    rows already made, inserted by the sqlite3 module's executemany (SQLite stepped from C)
    into the collector's schema (indexes, WAL, synchronous=NORMAL), nothing else. PostgreSQL
    (`server`): psql runs the store's own statement for each batch (the exactly-once key, the
    row, the device's count and both rollups; the batch is one JSON literal, as the collector
    passes it as one parameter); then `\\copy` of the same rows into the anomalies table alone
    (no exactly-once key, no counts), the loosest bound. `reference`: the drain case of the
    same store, whose mosquitto_sub time the results are compared with."""
    if server and not shutil.which("psql"):
        return {"case": "database alone, PostgreSQL", "skipped": "psql is not installed"}
    rows = [json.loads(p) for p in backlog_payloads(anomalies, devices)]
    now = time.time()
    timed = _postgres_alone(work, rows, now, server) if server else _sqlite_alone(work, rows, now)
    ref_seconds = reference["mosquitto_sub_s"]
    results = {"case": "database alone, %s" % ("PostgreSQL" if server else "SQLite"),
               "messages": anomalies, "devices": devices, "mosquitto_sub_s": ref_seconds}
    for what, seconds, count in timed:
        if count() != anomalies:
            raise RuntimeError("%s: stored %d of %d" % (what, count(), anomalies))
        results[what] = {"seconds": round(seconds, 2), "rows_per_s": round(anomalies / seconds),
                         "ratio": round(ref_seconds / seconds, 3)}
    results["collector_ratio"] = reference["ratio"]
    return results


def _sqlite_alone(work, rows, now):
    """[(what, seconds, count of stored rows)]: the rows inserted from C, timed. (The sqlite3
    shell would be no bound: it parses each batch as SQL text, slower than binding.)"""
    from routerwatch_collector.ingest import DEFAULT_BATCH_SIZE
    values = [sqlite_values(r, now) for r in rows]
    path, db = new_sqlite_store(work, "alone")
    start = time.perf_counter()
    for first in range(0, len(values), DEFAULT_BATCH_SIZE):
        db.execute("BEGIN")
        db.executemany(SQLITE_INSERT, values[first:first + DEFAULT_BATCH_SIZE])
        db.execute("COMMIT")
    seconds = time.perf_counter() - start
    db.close()
    return [("SQLite: each batch's rows, already made, inserted into the collector's schema",
             seconds, lambda: _sqlite_count(path))]


def _postgres_alone(work, rows, now, server):
    """[(what, seconds, count of stored rows)]: psql running a script of the store's statement
    for each batch, then one of `\\copy` for each batch, each into a new database whose device
    rows exist (the collector upserts them before the anomalies), timed from start to exit."""
    import psycopg

    from routerwatch_collector.ingest import DEFAULT_BATCH_SIZE
    from routerwatch_collector.stores import open_store
    from routerwatch_collector.stores.postgres import (_INSERT_ANOMALIES, HOURLY_ROLLUP_SECONDS,
                                                       ROLLUP_SECONDS)
    batches = [rows[i:i + DEFAULT_BATCH_SIZE] for i in range(0, len(rows), DEFAULT_BATCH_SIZE)]
    timed = []
    for label in ("statement", "copy"):
        url = server.new_database("alone_%s_%s" % (label, secrets.token_hex(2)))
        open_store(url).close()
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("INSERT INTO devices (device, first_seen, last_seen, run) "
                        "SELECT DISTINCT r->>'device', %s, %s, r->>'run' "
                        "FROM jsonb_array_elements(%s::jsonb) AS r",
                        (now, now, json.dumps([{"device": r["device"], "run": r["run"]}
                                               for r in rows])))
        script = []
        for n, batch in enumerate(batches):
            if label == "statement":
                literal = json.dumps([[r["device"], r["run"], r["seq"], r["time"], r["kind"],
                                       r["severity"], r["summary"], r["evidence"], r["count"],
                                       r["v"], now] for r in batch])
                assert "$rows$" not in literal
                statement = _INSERT_ANOMALIES % {
                    "rows": "$rows$%s$rows$" % literal, "origin": "'agent'",
                    "rollup": repr(float(ROLLUP_SECONDS)),
                    "hourly": repr(float(HOURLY_ROLLUP_SECONDS))}
                script.append("BEGIN;\n%s;\nCOMMIT;" % statement.strip())
            else:
                tsv = Path(work) / ("alone-%d.tsv" % n)
                tsv.write_text("".join(_tsv_line(r, now) for r in batch))
                script.append("BEGIN;\n\\copy anomalies (%s) FROM '%s'\nCOMMIT;"
                              % (ANOMALY_COLUMNS, tsv))
        script_path = Path(work) / ("alone-%s.sql" % secrets.token_hex(3))
        script_path.write_text("\n".join(script) + "\n")
        with open(script_path, "rb") as stdin:
            start = time.perf_counter()
            subprocess.run(["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", url], stdin=stdin,
                           stdout=subprocess.DEVNULL, check=True, timeout=900)
            seconds = time.perf_counter() - start
        what = ("psql: the store's statement for each batch" if label == "statement" else
                "psql: \\copy of each batch into the anomalies table alone")
        timed.append((what, seconds, lambda url=url: _pg_count(url)))
    return timed


def _tsv_line(r, now):
    def text(value):     # COPY's text format: backslash, tab and newline escaped
        return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return "\t".join(text(v) for v in (r["device"], r["run"], r["seq"], repr(r["time"]),
                                       r["kind"], r["severity"], r["summary"],
                                       json.dumps(r["evidence"]), r["count"], r["v"], repr(now),
                                       "agent")) + "\n"


def _sqlite_count(path):
    import sqlite3
    con = sqlite3.connect(str(path))
    try:
        return con.execute("SELECT COUNT(*) FROM anomalies").fetchone()[0]
    finally:
        con.close()


def _pg_count(url):
    import psycopg
    with psycopg.connect(url) as con:
        return con.execute("SELECT COUNT(*) FROM anomalies").fetchone()[0]


def paho_case(broker, work, anomalies, devices):
    """mosquitto_sub and a bare paho-mqtt client on one backlog: the client library's cost."""
    ref_id, paho_id = ("bench-%s-%s" % (who, secrets.token_hex(3)) for who in ("ref", "paho"))
    subscribe_reference(broker, ref_id)
    subscribe_reference(broker, paho_id)
    send_backlog(broker, anomalies, devices)
    ref_seconds = reference_drain(broker, anomalies, ref_id)
    out = subprocess.run([sys.executable, __file__, "--paho-drain", broker.host,
                          str(broker.port), paho_id, str(anomalies)], stdout=subprocess.PIPE,
                         check=True, timeout=900, env=harness.subprocess_env(), text=True)
    seconds = float(out.stdout.split()[-1])
    return {"case": "paho-mqtt client alone (no decoding, no store)", "messages": anomalies,
            "devices": devices, "mosquitto_sub_s": round(ref_seconds, 2),
            "collector_s": round(seconds, 2),
            "mosquitto_sub_per_s": round(anomalies / ref_seconds),
            "collector_per_s": round(anomalies / seconds),
            "ratio": round(ref_seconds / seconds, 3)}


def agent_rows(db, sql):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "collector"))
    from store_rows import store_rows
    return store_rows(db, sql)


def kill_case(broker, work, db, anomalies, devices, interval):
    """Three collectors on one group and one PostgreSQL, one killed mid-stream and restarted."""
    group = "kill%s" % secrets.token_hex(2)
    tag = "kill"
    processes = start_collectors(broker, db, group, 3, work, tag)
    wait_logged(work, tag, 3)

    def agent_stored():
        return agent_rows(db, "SELECT COUNT(*) AS n FROM anomalies WHERE origin = 'agent'")[0]["n"]

    def wait_for(count, what, timeout=1200):
        deadline = time.monotonic() + timeout
        while agent_stored() < count:
            if time.monotonic() > deadline:
                raise RuntimeError("kill: %s: %d of %d stored" % (what, agent_stored(), count))
            time.sleep(0.2)

    fleet = SimulatedFleet(broker.host, broker.port, devices=devices,
                           name="k%s" % secrets.token_hex(2),
                           heartbeat_interval=interval).connect()
    try:
        fleet.announce()
        fleet.start_heartbeats()
        start = time.perf_counter()
        fleet.send_anomalies(anomalies // 2)
        wait_for(anomalies // 4, "a quarter")
        victim = processes[1]
        victim.kill()                                  # SIGKILL: a batch in hand, unacknowledged
        victim.wait(10)
        killed_with = agent_stored()
        fleet.send_anomalies(anomalies // 4)           # some queue in the dead member's session
        time.sleep(1.0)
        log = open(Path(work) / "collector-kill-restarted.log", "ab")
        processes[1] = subprocess.Popen(collector_argv(broker, db, group, "%s-1" % tag),
                                        stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                        env=harness.subprocess_env())
        log.close()
        fleet.send_anomalies(anomalies - anomalies // 2 - anomalies // 4)
        fleet.wait_published()
        wait_for(anomalies, "every anomaly")
        seconds = time.perf_counter() - start
        time.sleep(3 * interval + 5)                   # long enough for a false silence to show
        silent = agent_rows(db, "SELECT COUNT(*) AS n FROM anomalies "
                                "WHERE kind = 'agent.silent'")[0]["n"]
    finally:
        fleet.close()
        stop(processes)
    rows = agent_rows(db, "SELECT device, run, MAX(seq) AS m, COUNT(*) AS n, "
                          "COUNT(DISTINCT seq) AS d FROM anomalies WHERE origin = 'agent' "
                          "GROUP BY device, run")
    stored_rows = sum(r["n"] for r in rows)
    once = all(r["n"] == r["d"] for r in rows)
    highest_right = {(r["device"], r["run"]): r["m"] for r in rows} == fleet.expected()
    open_gaps = agent_rows(db, "SELECT COUNT(*) AS n FROM gaps WHERE type = 'anomaly' AND "
                               "last_seq - first_seq + 1 - filled > 0")[0]["n"]
    result = {"case": "3 collectors, PostgreSQL, one killed (SIGKILL) and restarted",
              "messages": anomalies, "devices": devices, "seconds": round(seconds, 2),
              "per_s": round(anomalies / seconds), "stored_when_killed": killed_with,
              "stored": stored_rows, "each_once": once, "highest_seq_as_sent": highest_right,
              "open_anomaly_gaps": open_gaps, "agent_silent": silent}
    if not (stored_rows == anomalies and once and highest_right and open_gaps == 0
            and silent == 0):
        raise RuntimeError("kill: wrong result: %s" % json.dumps(result))
    return result


def devices_case(server, fleet_size):
    import psycopg

    from routerwatch_collector.stores import open_store
    url = server.new_database("devices_bench")
    open_store(url).close()
    health = json.dumps({"interval": 60.0, "uptime": 3600, "rss_kb": 9000, "cpu_percent": 0.5,
                         "spool_depth": 0, "counters": {"lines": 10}, "drops": {}, "seq": 60,
                         "time": 0})
    firmware = json.dumps({"DISTRIB_RELEASE": "23.05.3", "model": "Simulated AX1800"})
    now = time.time()
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(
            "INSERT INTO devices (device, first_seen, last_seen, run, status, status_at, "
            "alive_at, heartbeat_interval, heartbeat_run, heartbeat_seq, last_heartbeat, "
            "heartbeats, anomalies, agent_version, firmware, firmware_hash) "
            "SELECT 'rw-fleet-' || lpad(n::text, 6, '0'), %s, %s, 'r', 'online', %s, %s, 60, "
            "'r', 60, %s::jsonb, 60, n %% 7, '0.1.0', %s::jsonb, 'h' "
            "FROM generate_series(1, %s) AS n",
            (now - 3600, now, now - 3600, now, health, firmware,
             fleet_size))
        con.execute("ANALYZE devices")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "routerwatch_collector.cli", "devices",
                                 "--db", url, "--json"], stdout=subprocess.PIPE, check=True)
        times.append(time.perf_counter() - start)
        assert result.stdout.count(b"\n") == fleet_size
    store = open_store(url, create=False)
    try:
        sweep = []
        for _ in range(3):
            start = time.perf_counter()
            due = store.silence_candidates(now + 30, 3)
            sweep.append(time.perf_counter() - start)
        assert due == []
    finally:
        store.close()
    return {"case": "devices --json, PostgreSQL", "devices": fleet_size,
            "seconds_min": round(min(times), 2), "seconds_max": round(max(times), 2),
            "silence_sweep_ms": round(min(sweep) * 1000, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anomalies", type=int, default=100000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--fleet", type=int, default=100000)
    parser.add_argument("--heartbeat-interval", type=float, default=10.0,
                        help="the kill case's heartbeat interval (s)")
    parser.add_argument("--cases", default="sqlite,postgresql,group,paho,kill,devices")
    parser.add_argument("--workdir")
    parser.add_argument("--collector-option", action="append", default=[], metavar="OPTION",
                        help="pass OPTION to every collector started (repeat for more), "
                             "e.g. --collector-option=--batch-size=2000")
    parser.add_argument("--paho-drain", nargs=4, metavar=("HOST", "PORT", "CLIENT_ID", "N"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.paho_drain:
        host, port, client_id, count = args.paho_drain
        print(paho_drain(host, int(port), client_id, int(count)))
        return 0
    cases = set(args.cases.split(","))
    COLLECTOR_OPTIONS.extend(args.collector_option)
    reason = services.mosquitto_missing()
    if reason:
        print("skipped: %s" % reason)
        return 0
    work = Path(args.workdir or "/tmp/routerwatch-bench-ingest-%d" % os.getpid())
    work.mkdir(parents=True, exist_ok=True)
    results = []

    class Printed(list):
        def append(self, item):
            print(json.dumps(item), flush=True)
            super().append(item)

    results = Printed()
    broker = services.start_broker(work)
    server = PostgresServer().start()
    try:
        if "paho" in cases:
            results.append(paho_case(broker, work, args.anomalies, args.devices))
        if "sqlite" in cases:
            sqlite_db = str(work / "collector.sqlite")
            results.append(drain_case(broker, work, "1 collector, SQLite", sqlite_db, 1,
                                      args.anomalies, args.devices))
            drained = results[-1]
            results.append(floor_case(work, args.anomalies, args.devices, drained))
            results.append(database_case(work, args.anomalies, args.devices, drained))
        pg_db = server.new_database("ingest_bench")
        if "postgresql" in cases:
            results.append(drain_case(broker, work, "1 collector, PostgreSQL", pg_db, 1,
                                      args.anomalies, args.devices))
            results.append(database_case(work, args.anomalies, args.devices, results[-1],
                                         server))
        if "group" in cases:
            results.append(drain_case(broker, work, "3 collectors, PostgreSQL", pg_db, 3,
                                      args.anomalies, args.devices))
        if "kill" in cases:
            results.append(kill_case(broker, work, server.new_database("kill_bench"),
                                     args.anomalies, args.devices, args.heartbeat_interval))
        if "devices" in cases:
            results.append(devices_case(server, args.fleet))
    finally:
        server.close()
        broker.close()
    print(json.dumps({"machine": harness.machine_info(), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
