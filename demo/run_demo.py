#!/usr/bin/env python3
"""routerwatch end to end on one machine: broker, collector, agent, and an attack to watch.

    make demo                      # or: .venv/bin/python demo/run_demo.py [--duration N]

Starts mosquitto on a free loopback port (the test config, ci/mosquitto/test.conf), a collector
that writes to a temporary SQLite file and prints each anomaly as it is stored, and an agent that
follows a log file. demo/attack_replay.py then writes a brute force, a password spray and a
successful guess into that file, and finally the agent is killed the way an attacker would
(kill -9), which the collector reports as agent.silent. Ctrl-C stops everything; with
--duration N it stops by itself after N seconds. The collector's database is kept when the demo
stops, to query it afterwards (--discard deletes it; --keep keeps the logs as well).
"""
import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))       # the one mosquitto harness: tests/broker.py
sys.path.insert(0, str(REPO / "demo"))

import attack_replay  # noqa: E402
from broker import BrokerError, MosquittoBroker, find_mosquitto  # noqa: E402

DEVICE = "rw-demo-router"
PY = sys.executable

BANNER = """\
routerwatch demo
  broker     mosquitto on 127.0.0.1:{port}
  collector  {collector} run --port {port} --db {db} --print
  agent      {agent} --log-file {log} --set mqtt.host=127.0.0.1 --set mqtt.port={port}
  attack     demo/attack_replay.py writes a brute force from {brute}, a password spray from
             {spray} addresses and a guessed root password from {winner} into the log
             over {seconds:.0f} s; then the agent is killed with kill -9.
  database   {db} {kept}
Anomalies appear below as the collector stores them.{stop}
"""


class Stopped(Exception):
    pass


def wait_for(condition, timeout, stop):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stop.is_set():
            raise Stopped()
        if condition():
            return True
        stop.wait(0.1)
    return False


def query(db, sql, args=()):
    """Read the collector's database while it writes (WAL: readers never block it)."""
    if not os.path.exists(db):
        return []
    try:
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=2)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


def start(argv, log_path, inherit_stdout=False):
    log = open(log_path, "ab")
    try:
        # own session: Ctrl-C reaches only this script, which then stops the children in order
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=None if inherit_stdout else log, stderr=log,
                                start_new_session=True)
    finally:
        log.close()


def terminate(process, sig=signal.SIGTERM, timeout=8.0):
    if process is None or process.poll() is not None:
        return
    try:
        process.send_signal(sig)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    except ProcessLookupError:
        pass


KEPT = {"all": "(kept with the logs when the demo stops)",
        "database": "(kept when the demo stops; --discard deletes it)",
        "nothing": "(deleted when the demo stops: --discard)"}


def _keeping(args):
    return "all" if args.keep else "nothing" if args.discard else "database"


def _command(name):
    """How to run one of the project's commands: from the venv the demo runs in, when there."""
    beside = Path(PY).parent / name
    if beside.exists():
        return os.path.relpath(beside) if not os.path.relpath(beside).startswith("..") \
            else str(beside)
    return name


def run(args, stop):
    work = Path(tempfile.mkdtemp(prefix="routerwatch-demo-"))
    db = str(work / "collector.sqlite")
    log_file = work / "messages"
    log_file.touch()
    state = work / "agent-state"
    state.mkdir()
    replay_seconds = args.replay_seconds
    if args.duration:
        replay_seconds = min(replay_seconds, max(1.0, args.duration / 3.0))
    broker = collector = agent = None
    try:
        broker = MosquittoBroker(work / "broker").start()
        print(BANNER.format(port=broker.port, db=db, log=log_file, kept=KEPT[_keeping(args)],
                            collector=_command("routerwatch-collector"),
                            agent=_command("routerwatch-agent"),
                            brute=attack_replay.BRUTE_SOURCE,
                            spray=len(attack_replay.SPRAY_SOURCES),
                            winner=attack_replay.WINNER_SOURCE, seconds=replay_seconds,
                            stop=" Stops after %g s." % args.duration if args.duration
                            else " Ctrl-C stops the demo."), flush=True)
        collector = start([PY, "-m", "routerwatch_collector.cli", "run", "--port",
                           str(broker.port), "--db", db, "--print", "--missed-heartbeats", "3"],
                          work / "collector.log", inherit_stdout=True)
        agent = start([PY, "-m", "routerwatch.cli", "--log-file", str(log_file),
                       "--set", "mqtt.host=127.0.0.1", "--set", "mqtt.port=%d" % broker.port,
                       "--set", "device_id=" + DEVICE, "--set", "state_dir=%s" % state,
                       "--set", "run_dir=%s" % state, "--set", "intervals.heartbeat=5",
                       "--set", "watchers.connections=false", "--set", "watchers.processes=false",
                       "--set", "watchers.integrity=false"], work / "agent.log")
        online = wait_for(lambda: query(db, "SELECT 1 FROM devices WHERE device = ? AND "
                                            "status = 'online'", (DEVICE,)), 15, stop)
        if not online:
            print("demo: the agent did not come online; logs in %s" % work, file=sys.stderr)
            return 1
        print("-- agent %s is online; the attack starts" % DEVICE, flush=True)
        attack_replay.replay(str(log_file), replay_seconds, sleep=stop.wait, stop=stop.is_set)
        wait_for(lambda: len(query(db, "SELECT 1 FROM anomalies WHERE device = ?", (DEVICE,)))
                 >= len(attack_replay.EXPECTED), 10, stop)
        print("-- the attacker kills the agent (kill -9); the broker publishes its Last Will",
              flush=True)
        terminate(agent, signal.SIGKILL)
        wait_for(lambda: query(db, "SELECT 1 FROM anomalies WHERE kind = 'agent.silent'"), 10,
                 stop)
        stop.wait(0.5)
        print("-- stored so far (%s devices --db %s):" % (_command("routerwatch-collector"), db),
              flush=True)
        subprocess.run([PY, "-m", "routerwatch_collector.cli", "devices", "--db", db])
        if not args.duration:
            print("-- press Ctrl-C to stop", flush=True)
        stop.wait()
        return 0
    except Stopped:
        return 0
    except BrokerError as exc:
        print("demo: %s" % exc, file=sys.stderr)
        return 3
    finally:
        terminate(agent)
        terminate(collector)
        if broker is not None:
            broker.close()
        keeping = _keeping(args)
        if keeping == "all":
            print("demo: files kept in %s" % work)
        elif keeping == "database" and os.path.exists(db):
            for path in work.iterdir():
                if not path.name.startswith("collector.sqlite"):
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
        else:
            shutil.rmtree(work, ignore_errors=True)
        if keeping != "nothing" and os.path.exists(db):
            print("demo: the database stays in %s; query it with\n  %s anomalies --db %s\n"
                  "  (rm -r %s removes it)" % (db, _command("routerwatch-collector"), db, work))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=0,
                        help="stop by itself after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--replay-seconds", type=float, default=20.0,
                        help="seconds the attack is spread over (default 20)")
    parser.add_argument("--keep", action="store_true",
                        help="keep every file: the database, the logs, the broker's directory")
    parser.add_argument("--discard", action="store_true",
                        help="delete the database too when the demo stops (kept by default)")
    args = parser.parse_args(argv)
    if args.keep and args.discard:
        parser.error("--keep and --discard exclude each other")
    if args.duration < 0 or args.replay_seconds < 0:
        parser.error("--duration and --replay-seconds must not be negative")
    if not find_mosquitto():
        print("demo: mosquitto is not installed (make setup installs it)", file=sys.stderr)
        return 3
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if args.duration:
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True
        timer.start()
    code = run(args, stop)
    print("demo: stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
