"""Collectors scale out in one shared-subscription group, each with a name that survives its
restarts: given three collector processes writing to one PostgreSQL through a real mosquitto,
when one is killed with SIGKILL while a fleet reports and then started again, then every anomaly
is stored exactly once, no gap is left open, and no router is reported silent."""
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker import MosquittoBroker, find_mosquitto, missing_tool
from routerwatch_collector.instance import claim_instance, client_id
from store_rows import store_rows

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from fleet_devices import SimulatedFleet  # noqa: E402

ANOMALIES, DEVICES = 6000, 100


def test_instance_numbers_are_the_lowest_free_and_come_back_after_the_holder_dies(tmp_path):
    first = claim_instance("g", lock_dir=tmp_path, host="h")
    second = claim_instance("g", lock_dir=tmp_path, host="h")
    other_group = claim_instance("other", lock_dir=tmp_path, host="h")
    assert (first.name, second.name, other_group.name) == ("h-1", "h-2", "h-1")
    first.close()                                  # the holder died: its number is free again
    assert claim_instance("g", lock_dir=tmp_path, host="h").name == "h-1"
    assert client_id("g", "h-1") == "routerwatch-collector-g-h-1"


def test_a_killed_process_releases_its_instance_number(tmp_path):
    code = ("import sys, time; sys.path.insert(0, %r); "
            "from routerwatch_collector.instance import claim_instance; "
            "s = claim_instance('g', lock_dir=%r, host='h'); print(s.name, flush=True); "
            "time.sleep(60)" % (str(REPO / "collector"), str(tmp_path)))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "h-1"
        assert claim_instance("g", lock_dir=tmp_path, host="h").name == "h-2"
    finally:
        holder.kill()
        holder.wait(10)
    assert claim_instance("g", lock_dir=tmp_path, host="h").name == "h-1"


def start_collector(port, db, group, workdir, number):
    log = open(workdir / ("collector-%d.log" % number), "ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "routerwatch_collector.cli", "run", "--port", str(port),
             "--db", db, "--share-group", group, "--missed-heartbeats", "3"],
            stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
    finally:
        log.close()


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


def stored_count(db):
    return store_rows(db, "SELECT COUNT(*) AS n FROM anomalies WHERE origin = 'agent'")[0]["n"] \
        if store_rows(db, "SELECT 1 AS one FROM devices LIMIT 1") else 0


@pytest.mark.slow
def test_three_collectors_one_killed_and_restarted_store_every_anomaly_once(
        tmp_path, postgres_server):
    if not find_mosquitto():
        missing_tool("mosquitto is not installed (ci/install-system-packages.sh installs it)")
    db = postgres_server.new_database()
    group = "fleet%s" % secrets.token_hex(3)          # its own instance numbers on this host
    broker = MosquittoBroker(tmp_path / "broker")
    fleet = None
    collectors = {}
    with broker:
        try:
            for number in (1, 2, 3):
                collectors[number] = start_collector(broker.port, db, group, tmp_path, number)
                # one at a time, so each has taken its instance number before the next starts
                wait_until(lambda: (tmp_path / ("collector-%d.log" % number)).read_text()
                           .count("subscribed to"), 30, "collector %d subscribed" % number)
            fleet = SimulatedFleet(broker.host, broker.port, devices=DEVICES,
                                   heartbeat_interval=5.0).connect()
            fleet.announce()
            fleet.start_heartbeats()
            fleet.send_anomalies(ANOMALIES // 3)
            wait_until(lambda: stored_count(db) >= ANOMALIES // 6, 60, "a sixth stored")
            victim = collectors[2]
            victim.send_signal(signal.SIGKILL)        # mid-stream: a batch in hand, unacked
            victim.wait(10)
            fleet.send_anomalies(ANOMALIES // 3)      # some queued in the dead member's session
            time.sleep(1.0)
            collectors[2] = start_collector(broker.port, db, group, tmp_path, 4)
            fleet.send_anomalies(ANOMALIES - 2 * (ANOMALIES // 3))
            fleet.wait_published()
            wait_until(lambda: stored_count(db) >= ANOMALIES, 120, "every anomaly stored")
            time.sleep(3 * 5.0 + 2)                   # long enough for a false silence to show
            silent = store_rows(db, "SELECT device, evidence, received_at FROM anomalies "
                                    "WHERE kind = 'agent.silent'")
        finally:
            if fleet is not None:
                fleet.close()
            for process in collectors.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in collectors.values():
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()

    restarted_log = (tmp_path / "collector-4.log").read_text()
    killed_log = (tmp_path / "collector-2.log").read_text()
    # the restarted process came back under the killed one's client id
    name = killed_log.split(" as ", 1)[1].split()[0]
    assert " as %s " % name in restarted_log
    rows = store_rows(db, "SELECT device, run, seq FROM anomalies WHERE origin = 'agent'")
    assert len(rows) == ANOMALIES
    assert len({(r["device"], r["run"], r["seq"]) for r in rows}) == ANOMALIES   # once each
    highest = {}
    for r in rows:
        key = (r["device"], r["run"])
        highest[key] = max(highest.get(key, 0), r["seq"])
    assert highest == fleet.expected()
    assert store_rows(db, "SELECT * FROM gaps WHERE type = 'anomaly' AND "
                          "last_seq - first_seq + 1 - filled > 0") == []
    assert silent == []
    devices = store_rows(db, "SELECT device, anomalies, status FROM devices")
    assert len(devices) == DEVICES
    assert {d["status"] for d in devices} == {"online"}
    assert sum(d["anomalies"] for d in devices) == ANOMALIES
    assert os.path.exists(tmp_path / "collector-4.log")
