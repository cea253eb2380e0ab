#!/usr/bin/env python3
"""routerwatch at fleet scale on one machine: PostgreSQL, a broker, three collectors in one
shared-subscription group, and 200 simulated routers.

    make fleet-demo                # or: .venv/bin/python demo/fleet_demo.py [--routers N]

Starts a throwaway PostgreSQL (initdb in a temp dir, as `nobody` when run as root) and mosquitto
on free loopback ports, three `routerwatch-collector run --share-group fleet` processes writing
to that database (the first with --metrics-port), and simulated routers that come online, send
heartbeats and anomalies; one router stops sending heartbeats. Then it prints the fleet view
(`routerwatch-collector devices`, summed up), the newest anomalies, a few of the first
collector's Prometheus metrics, and stops everything. Nothing is kept.
"""
import argparse
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from broker import MosquittoBroker, find_mosquitto, free_port  # noqa: E402
from fleet_devices import SimulatedFleet  # noqa: E402
from pgserver import PostgresServer, find_postgres_bin  # noqa: E402

PY = sys.executable
COLLECTORS = 3


def cli(*argv):
    return subprocess.run([PY, "-m", "routerwatch_collector.cli"] + list(argv),
                          capture_output=True, text=True, timeout=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routers", type=int, default=200)
    parser.add_argument("--anomalies", type=int, default=2000)
    args = parser.parse_args()
    if not find_mosquitto() or not find_postgres_bin():
        print("fleet demo: needs mosquitto and postgresql-15 (make setup installs them)",
              file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="routerwatch-fleet-demo-"))
    metrics_port = free_port()
    server = broker = fleet = None
    collectors = []
    try:
        server = PostgresServer().start()
        db = server.new_database("routerwatch")
        broker = MosquittoBroker(work / "broker").start()
        print("fleet demo\n  PostgreSQL  %s\n  broker      mosquitto on 127.0.0.1:%d\n"
              "  collectors  %d x routerwatch-collector run --share-group fleet --db %s"
              % (db, broker.port, COLLECTORS, db), flush=True)
        for n in range(COLLECTORS):
            argv = [PY, "-m", "routerwatch_collector.cli", "run", "--port", str(broker.port),
                    "--db", db, "--share-group", "fleet", "--instance", "demo-%d" % (n + 1),
                    "--missed-heartbeats", "2"]
            if n == 0:
                argv += ["--metrics-port", str(metrics_port)]
            log = open(work / ("collector-%d.log" % n), "wb")
            collectors.append(subprocess.Popen(argv, stdout=log, stderr=log,
                                               stdin=subprocess.DEVNULL))
            log.close()
        deadline = time.monotonic() + 60
        while not all("subscribed to" in (work / ("collector-%d.log" % n)).read_text()
                      for n in range(COLLECTORS)):
            if time.monotonic() > deadline:
                raise RuntimeError("the collectors did not start")
            time.sleep(0.2)
        fleet = SimulatedFleet(broker.host, broker.port, devices=args.routers, name="demo",
                               heartbeat_interval=5.0).connect()
        fleet.announce()
        fleet.start_heartbeats()
        print("  routers     %d simulated, %d anomalies between them" % (
            args.routers, args.anomalies), flush=True)
        fleet.send_anomalies(args.anomalies)
        fleet.wait_published()
        # one router goes quiet: its heartbeats stop, the others keep theirs
        quiet = fleet.devices.pop()
        print("  %s stops sending heartbeats; waiting for the collectors" % quiet, flush=True)
        deadline = time.monotonic() + 120
        while True:
            out = cli("anomalies", "--db", db, "--kind", "agent.*", "--json").stdout
            if quiet in out or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        devices = cli("devices", "--db", db).stdout.splitlines()
        rows = devices[1:]
        states = {}
        for line in rows:
            if line.startswith("rejected messages"):
                continue
            fields = line.split()
            state = "silent" if " yes " in line else fields[1]
            states[state] = states.get(state, 0) + 1
        print("\nfleet view (routerwatch-collector devices):")
        print("  " + devices[0])
        for line in rows[:5]:
            print("  " + line)
        print("  ... %d devices: %s" % (len(rows), ", ".join(
            "%s %d" % item for item in sorted(states.items()))))
        print("\nnewest anomalies (routerwatch-collector anomalies --limit 5):")
        for line in cli("anomalies", "--db", db, "--limit", "5").stdout.splitlines():
            print("  " + line[:150])
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port,
                                    timeout=5) as response:
            text = response.read().decode()
        print("\nmetrics of collector 1 (--metrics-port %d):" % metrics_port)
        for line in text.splitlines():
            if line.startswith(("routerwatch_collector_messages_received_total",
                                "routerwatch_collector_devices{",
                                "routerwatch_collector_batch_seconds_count")):
                print("  " + line)
        print("\nfleet demo: stopped", flush=True)
        return 0
    finally:
        if fleet is not None:
            fleet.close()
        for process in collectors:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in collectors:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        if broker is not None:
            broker.close()
        if server is not None:
            server.close()


if __name__ == "__main__":
    sys.exit(main())
