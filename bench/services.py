"""The processes the end-to-end benchmarks run: mosquitto (loopback, bench/mosquitto.conf), the
collector and the agent, plus synthetic payloads in the message contract.

The broker is the tests' MosquittoBroker (tests/broker.py) with the benchmark template; every
process here is started by us, killed by its own pid, and listens on 127.0.0.1 only.
"""
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import harness

sys.path.insert(0, str(harness.REPO / "tests"))
from broker import MosquittoBroker, find_mosquitto  # noqa: E402  (the tests' broker helper)

BENCH_TEMPLATE = Path(__file__).with_name("mosquitto.conf")


def mosquitto_missing():
    """A reason string when the broker or its clients are missing, else None."""
    if not find_mosquitto():
        return "mosquitto is not installed (ci/install-system-packages.sh installs it)"
    for tool in ("mosquitto_pub", "mosquitto_sub"):
        if not shutil.which(tool):
            return "%s is not installed (package mosquitto-clients)" % tool
    return None


def start_broker(workdir):
    return MosquittoBroker(Path(workdir) / "mosquitto", template=BENCH_TEMPLATE).start()


# --------------------------------------------------------------------------- payloads

def anomaly_payloads(count, device="bench-router-1", run=None, start_seq=1, now=None):
    """`count` encoded Anomaly payloads (bytes) in the contract, numbered from start_seq."""
    from routerwatch.contract import Anomaly, encode
    run = run or secrets.token_hex(8)
    now = time.time() if now is None else now
    out = []
    for i in range(count):
        seq = start_seq + i
        out.append(encode(Anomaly(
            device=device, run=run, seq=seq, time=now, kind="login.bruteforce", severity="high",
            summary="6 failed SSH logins for root from 192.0.2.%d in 60 s" % (seq % 250 + 2),
            evidence={"source_ip": "192.0.2.%d" % (seq % 250 + 2), "failures": 6,
                      "users": ["root"], "window": 60, "service": "ssh"})))
    return out


def anomaly_objects(count, device="bench-router-1", run=None, now=None):
    from routerwatch.contract import Anomaly
    run = run or secrets.token_hex(8)
    now = time.time() if now is None else now
    return [Anomaly(device=device, run=run, seq=i + 1, time=now, kind="login.bruteforce",
                    severity="high",
                    summary="6 failed SSH logins for root from 192.0.2.%d in 60 s" % (i % 250 + 2),
                    evidence={"source_ip": "192.0.2.%d" % (i % 250 + 2), "failures": 6,
                              "users": ["root"], "window": 60, "service": "ssh"})
            for i in range(count)]


def heartbeat_payload(device, run, seq=1, now=None):
    from routerwatch.contract import Heartbeat, encode
    now = time.time() if now is None else now
    return encode(Heartbeat(device=device, run=run, seq=seq, time=now, interval=60.0,
                            uptime=3600.0, rss_kb=14000, cpu_percent=0.4, spool_depth=0,
                            counters={"events": 120, "anomalies": 0, "sent": 3},
                            drops={}))


# --------------------------------------------------------------------------- collector

def stop_process_group(process):
    """SIGTERM the process group of a child started with start_new_session, SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


class Collector:
    """`routerwatch-collector run` as a subprocess, subscribed to the broker, writing SQLite."""

    def __init__(self, workdir, broker, extra_args=()):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db = self.workdir / "collector.sqlite"
        for stale in (self.db, self.db.with_name(self.db.name + "-wal"),
                      self.db.with_name(self.db.name + "-shm")):
            if stale.exists():      # a kept --workdir of an earlier run: start empty
                stale.unlink()
        self.broker = broker
        self.extra_args = list(extra_args)
        self.process = None

    def argv(self):
        return [harness.python_exe(), "-m", "routerwatch_collector.cli", "run",
                "--host", self.broker.host, "--port", str(self.broker.port),
                "--client-id", "routerwatch-collector-bench", "--db", str(self.db)] \
            + self.extra_args

    def start(self, timeout=20.0):
        log = open(self.workdir / "collector.log", "ab")
        try:
            self.process = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=log, env=harness.subprocess_env(),
                                            start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("collector exited %s: %s" % (self.process.returncode,
                                                                self.log_tail()))
            if self.db.exists() and self.subscribed():
                return self
            time.sleep(0.05)
        raise RuntimeError("collector did not start within %.0f s: %s" % (timeout, self.log_tail()))

    def subscribed(self):
        """The collector logs its subscription, or at least has its store open."""
        text = self.log_tail(4000).lower()
        return "subscribed" in text or "listening" in text or "connected" in text

    def log_tail(self, size=2000):
        try:
            return (self.workdir / "collector.log").read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def count(self, sql):
        try:
            with sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=5) as conn:
                return conn.execute(sql).fetchone()[0]
        except sqlite3.Error:
            return None

    def anomalies(self):
        return self.count("SELECT COUNT(*) FROM anomalies") or 0

    def devices(self):
        return self.count("SELECT COUNT(*) FROM devices") or 0

    def heartbeats(self):
        return self.count("SELECT COALESCE(SUM(heartbeats), 0) FROM devices") or 0

    def wait_for(self, what, target, timeout, poll=0.01):
        """Poll until what() >= target; returns (seconds waited, last value)."""
        start = time.perf_counter()
        value = what()
        while value < target and time.perf_counter() - start < timeout:
            time.sleep(poll)
            value = what()
        return time.perf_counter() - start, value

    def stop(self):
        process, self.process = self.process, None
        stop_process_group(process)


# --------------------------------------------------------------------------- agent

class AgentProcess:
    """routerwatch-agent following a log file (the way procd runs it, minus procd). With
    stream=True it reads the file's new lines from a pipe instead (`tail -n0 -F FILE |
    routerwatch-agent --stdin`), the way it reads `logread -f` on a router."""

    def __init__(self, workdir, log_file, broker=None, overrides=(), root=None, command=None,
                 stream=False, device_id="bench-router-1"):
        self.command = command or harness.agent_command()
        self.stream = stream
        self.device_id = device_id
        self.feeder = None
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_file = Path(log_file)
        self.broker = broker
        self.overrides = list(overrides)
        self.root = root
        self.process = None

    def argv(self):
        argv = list(self.command) + (
            ["--stdin"] if self.stream else ["--log-file", str(self.log_file)])
        if self.root:
            argv += ["--root", str(self.root)]
        sets = ["device_id=%s" % self.device_id, "state_dir=%s" % (self.workdir / "state"),
                "run_dir=%s" % (self.workdir / "run")]
        if self.broker is not None:
            sets += ["mqtt.host=%s" % self.broker.host, "mqtt.port=%d" % self.broker.port]
        for item in sets + self.overrides:
            argv += ["--set", item]
        return argv

    def start(self):
        (self.workdir / "state").mkdir(exist_ok=True)
        (self.workdir / "run").mkdir(exist_ok=True)
        out = open(self.workdir / "agent.out", "ab")
        err = open(self.workdir / "agent.log", "ab")
        stdin = subprocess.DEVNULL
        if self.stream:
            self.feeder = subprocess.Popen(["tail", "-n0", "-F", str(self.log_file)],
                                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                           start_new_session=True)
            stdin = self.feeder.stdout
        try:
            self.process = subprocess.Popen(self.argv(), stdin=stdin, stdout=out,
                                            stderr=err, env=harness.subprocess_env(),
                                            start_new_session=True)
        finally:
            out.close()
            err.close()
            if self.feeder is not None:
                self.feeder.stdout.close()     # the agent holds the pipe now
        return self

    def wait_started(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("agent exited %s: %s" % (self.process.returncode,
                                                            self.log_tail()))
            if "started" in self.log_tail():
                return self
            time.sleep(0.05)
        raise RuntimeError("agent did not start within %.0f s: %s" % (timeout, self.log_tail()))

    def log_tail(self, size=3000):
        try:
            return (self.workdir / "agent.log").read_text(errors="replace")[-size:]
        except OSError:
            return ""

    @property
    def pid(self):
        return self.process.pid

    def stop(self):
        process, self.process = self.process, None
        stop_process_group(process)
        feeder, self.feeder = self.feeder, None
        stop_process_group(feeder)


# --------------------------------------------------------------------------- reference

def mosquitto_rate(broker, payloads, workdir, qos=1, timeout=300.0):
    """The broker's own rate: mosquitto_sub -C N subscribed, mosquitto_pub -l sends N lines.
    Returns (seconds from the first publish to the N-th delivery, delivered count)."""
    count = len(payloads)
    source = Path(workdir) / "payloads.txt"
    source.write_bytes(b"\n".join(payloads) + b"\n")
    topic = "bench/ref/%s" % secrets.token_hex(4)
    sub = subprocess.Popen(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t",
                            topic, "-q", str(qos), "-C", str(count + 1)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        _await_subscriber(broker, topic, sub)
        start = time.perf_counter()
        with open(source, "rb") as stdin:
            subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t",
                            topic, "-q", str(qos), "-l"], stdin=stdin, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
        delivered = 0
        for line in sub.stdout:
            delivered += line.strip() != b"probe"
        sub.wait(timeout=timeout)
        seconds = time.perf_counter() - start
        return seconds, delivered
    finally:
        if sub.poll() is None:
            os.killpg(sub.pid, signal.SIGKILL)
            sub.wait()


def _await_subscriber(broker, topic, sub, timeout=10.0):
    """Publish one probe until the subscriber has printed it: then it is surely subscribed.
    mosquitto_sub -C counts the probe too, hence -C N+1."""
    deadline = time.monotonic() + timeout
    import select
    while time.monotonic() < deadline:
        subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", topic,
                        "-q", "1", "-m", "probe"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        ready, _, _ = select.select([sub.stdout], [], [], 0.2)
        if ready:
            line = sub.stdout.readline()
            if line.strip() == b"probe":
                return
    raise RuntimeError("mosquitto_sub did not subscribe within %.0f s" % timeout)
