"""The collector for the benchmarks: its SQLite store, Ingest and MQTT Subscriber, wired the way
the collector program wires them, with the knobs the benchmarks need on the command line.

    python bench/collector_main.py --mqtt-host 127.0.0.1 --mqtt-port 1883 --db FILE
"""
import argparse
import logging
import signal
import sys
import threading

from harness import REPO  # noqa: F401  (puts agent/ and collector/ on sys.path)
from routerwatch_collector.ingest import Ingest
from routerwatch_collector.store import open_store
from routerwatch_collector.subscriber import Subscriber


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--db", required=True)
    parser.add_argument("--client-id", default="routerwatch-collector-bench")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="collector: %(levelname)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    store = open_store(args.db)
    try:
        Subscriber(Ingest(store), args.mqtt_host, args.mqtt_port,
                   client_id=args.client_id).run(stop)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
