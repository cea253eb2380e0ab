"""Latency from a line written to the followed log file to the anomaly's row in the collector's
SQLite store: p50/p95/p99 over many events.

    python bench/bench_latency.py [--quick] [--events N] [--rate EVENTS_PER_S]

Pipeline: routerwatch-agent (a subprocess, MQTT sink) -> mosquitto -> routerwatch-collector run
(a subprocess) -> SQLite. Two agents read the same lines at the same time: one follows the file
(--log-file, which it polls every 0.25 s, as on a host without logread), one reads them from a
pipe (`tail -n0 -F FILE | routerwatch-agent --stdin`), the way it reads `logread -f` on a router. One event is two failed dropbear logins from a
new source (login.bruteforce.threshold=2, its minimum), so every event is one new incident and one
anomaly. Events are written open-loop at a fixed rate; a thread polls the store every few ms and
notes when each event's row (matched by evidence.source_ip) becomes visible.

Reference, on the same file at the same time: `tail -n0 -F FILE | mosquitto_pub -l -q 1` into
`mosquitto_sub` — the floor of "follow a file and deliver its lines over MQTT", with no parsing,
no detection and no store. The gap between the two is what routerwatch's reading (file polling,
for the file follower), its detectors and the collector's batched commits add.
"""
import ipaddress
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import harness
import services

POLL_SECONDS = 0.005


def event_lines(i, when):
    """Two failed logins from source i (a fresh IPv6 /64 per event) and that source's text."""
    # written as getnameinfo() (and so dropbear) prints it: compressed
    source = str(ipaddress.ip_address("2001:db8:%x:%x::1" % (i // 65536 + 1, i % 65536)))
    stamp = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(when))
    pid = 2000 + i % 30000
    line = ("%s authpriv.warn dropbear[%d]: Bad password attempt for 'root' from %s:%d\n"
            % (stamp, pid, source, 40000 + i % 20000))
    return source, (line + line).encode()


class StoreWatcher(threading.Thread):
    """Notes the monotonic time each login.bruteforce row first appears, by device and
    source_ip: seen[device][source]."""

    def __init__(self, db):
        super().__init__(daemon=True)
        self.db = db
        self.seen = {}
        self.stop = threading.Event()

    def run(self):
        last_id = 0
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=1)
                rows = conn.execute("SELECT id, device, evidence FROM anomalies WHERE id > ? AND "
                                    "kind = 'login.bruteforce' ORDER BY id", (last_id,)).fetchall()
            except sqlite3.Error:
                rows = []
                conn = None
            now = time.monotonic()
            for row_id, device, evidence in rows:
                last_id = row_id
                try:
                    source = json.loads(evidence).get("source_ip")
                except ValueError:
                    continue
                self.seen.setdefault(device, {}).setdefault(source, now)
            self.stop.wait(POLL_SECONDS)
        if conn is not None:
            conn.close()


class SubscriberWatcher(threading.Thread):
    """Reads mosquitto_sub's output; notes the time each source's line arrives (first line)."""

    def __init__(self, process):
        super().__init__(daemon=True)
        self.process = process
        self.seen = {}

    def run(self):
        for raw in self.process.stdout:
            now = time.monotonic()
            text = raw.decode(errors="replace").rstrip()
            if " from " in text:
                source = text.rsplit(" from ", 1)[1].rsplit(":", 1)[0]
                self.seen.setdefault(source, now)


class AnomalyWatcher(SubscriberWatcher):
    """Reads mosquitto_sub's output of an agent's anomaly topic; notes when each source's
    anomaly arrives (evidence.source_ip)."""

    def run(self):
        for raw in self.process.stdout:
            now = time.monotonic()
            try:
                source = json.loads(raw).get("evidence", {}).get("source_ip")
            except (ValueError, AttributeError):
                continue
            self.seen.setdefault(source, now)


def run(quick=False, workdir=None, events=None, rate=None, repeat=None):
    events = events or (100 if quick else 1000)
    rate = rate or 20.0
    rows, notes = [], []
    missing = services.mosquitto_missing()
    if missing:
        return harness.result("latency", quick, [harness.skipped("latency", missing)], notes)
    for module, attr in (("routerwatch.sinks.mqtt", "MqttSink"),
                         ("routerwatch.sources.logread", "LogSource"),
                         ("routerwatch_collector.cli", "main")):
        _, why = harness.optional_import(module, attr)
        if why:
            return harness.result("latency", quick, [harness.skipped("latency", why)], notes)
    with harness.Workdir(workdir) as work:
        work = Path(work)
        log = work / "followed.log"
        log.write_bytes(b"")
        broker = services.start_broker(work)
        collector = tail = sub = at_broker = None
        agents = {}
        try:
            collector = services.Collector(work / "collector", broker).start()
            for name, stream in (("file", False), ("pipe", True)):
                agents[name] = services.AgentProcess(
                    work / ("agent-" + name), log, broker, stream=stream,
                    device_id="bench-router-" + name, overrides=[
                        "watchers.connections=false", "watchers.processes=false",
                        "watchers.integrity=false", "login.bruteforce.threshold=2"]).start()
            for agent in agents.values():
                agent.wait_started()
            topic = "bench/latency"
            sub = subprocess.Popen(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port),
                                    "-t", topic, "-q", "1"], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
            tail = subprocess.Popen(["sh", "-c", 'tail -n0 -F "$0" | mosquitto_pub -h %s -p %d '
                                     '-t %s -q 1 -l' % (broker.host, broker.port, topic),
                                     str(log)], stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            at_broker = subprocess.Popen(
                ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-q", "1", "-t",
                 "routerwatch/bench-router-pipe/anomaly"], stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, start_new_session=True)
            broker_watch = AnomalyWatcher(at_broker)
            broker_watch.start()
            store = StoreWatcher(collector.db)
            store.start()
            reference = SubscriberWatcher(sub)
            reference.start()

            def stored(name):
                return store.seen.get("bench-router-" + name, {})

            # warm-up: until one event went all the way through every pipeline
            deadline = time.monotonic() + 30
            warm = 0
            with open(log, "ab", buffering=0) as out:
                while time.monotonic() < deadline:
                    source, data = event_lines(900000 + warm, time.time())
                    out.write(data)
                    warm += 1
                    time.sleep(0.5)
                    if all(source in stored(name) for name in agents) \
                            and source in reference.seen:
                        break
                else:
                    raise RuntimeError("no event reached the store within 30 s: agent logs: %s\n"
                                       "collector log: %s" % (
                                           [a.log_tail() for a in agents.values()],
                                           collector.log_tail()))
                written = {}
                start = time.monotonic()
                for i in range(events):
                    due = start + i / rate
                    pause = due - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                    source, data = event_lines(i, time.time())
                    written[source] = time.monotonic()
                    out.write(data)
            settle = time.monotonic() + 10
            while time.monotonic() < settle and (
                    any(len([s for s in written if s in stored(name)]) < events
                        for name in agents)
                    or len([s for s in written if s in reference.seen]) < events):
                time.sleep(0.05)
            store.stop.set()
            store.join(5)
            ref = [(reference.seen[s] - t) * 1000 for s, t in written.items()
                   if s in reference.seen]
            for name, how, seen in (
                    ("file", "reads a followed file (polled) -> row in the store", stored("file")),
                    ("pipe", "reads a pipe, as from logread -f -> row in the store",
                     stored("pipe")),
                    ("pipe", "reads a pipe -> anomaly at the broker (no collector)",
                     broker_watch.seen)):
                rw = [(seen[s] - t) * 1000 for s, t in written.items() if s in seen]
                row = {"case": "log line -> agent %s (ms)" % how,
                       "events": events, "rate_per_s": rate,
                       "routerwatch": dict(harness.percentiles(rw), received=len(rw),
                                           max=max(rw) if rw else None, unit="ms"),
                       "reference_tool": "tail -F | mosquitto_pub -l -> mosquitto_sub",
                       "reference": dict(harness.percentiles(ref), received=len(ref),
                                         max=max(ref) if ref else None, unit="ms")}
                if rw and ref:
                    row["ratio_p50"] = row["routerwatch"]["p50"] / max(row["reference"]["p50"],
                                                                       1e-6)
                    row["ratio_p99"] = row["routerwatch"]["p99"] / max(row["reference"]["p99"],
                                                                       1e-6)
                rows.append(row)
            from routerwatch_collector.ingest import DEFAULT_BATCH_SIZE
            notes.append("store polled every %.0f ms (resolution); the file follower polls the "
                         "file every 0.25 s, the pipe reader wakes the loop on each line; the "
                         "collector writes a batch as soon as its inbox runs dry (at most %d "
                         "messages)" % (POLL_SECONDS * 1000, DEFAULT_BATCH_SIZE))
        finally:
            for proc in (tail, sub, at_broker):
                if proc is not None and proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            for agent in agents.values():
                agent.stop()
            if collector is not None:
                collector.stop()
            broker.close()
    return harness.result("latency", quick, rows, notes)


if __name__ == "__main__":
    raise SystemExit(harness.main(run, __doc__.split("\n\n")[0], lambda p: (
        p.add_argument("--events", type=int), p.add_argument("--rate", type=float))))
