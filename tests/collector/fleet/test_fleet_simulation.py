"""The fleet detections end to end: simulated routers (bench/fleet_devices.py) publish through a
real mosquitto to a real `routerwatch-collector run`, on SQLite and PostgreSQL.

Given a 1,000-device fleet of one board with one tampered firmware, a fleet mid-upgrade, a small
fleet with an odd device, a campaign across 40 devices hidden among 10,000 unrelated failures,
and one program on 3 devices: then exactly one firmware outlier, one campaign of 40 devices and
one implant of 3 devices are stored, and nothing else of the fleet kinds."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker import MosquittoBroker, find_mosquitto, missing_tool
from routerwatch_collector.stores import open_store

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))
from fleet_devices import SimulatedFleet  # noqa: E402

BIG, UPGRADING, SMALL = 1000, 200, 15
CAMPAIGN_DEVICES, NOISE = 40, 10000
ATTACKER = "45.155.205.17"
IMPLANT = "9d" * 32
GOOD, TAMPERED, NEWER = "a1" * 32, "b2" * 32, "c3" * 32


def firmware(board, revision):
    return {"DISTRIB_RELEASE": "23.05.3", "DISTRIB_REVISION": revision, "board": board,
            "model": board, "kernel": "5.15.150"}


def firmware_of(index, device):
    if index < BIG:                                    # one board, one tampered
        return firmware("sim,ax1800", "r23809"), TAMPERED if index == 123 else GOOD
    if index < BIG + UPGRADING:                        # half on the next revision
        upgraded = index % 2 == 0
        return (firmware("sim,mt6000", "r24106" if upgraded else "r23809"),
                NEWER if upgraded else GOOD)
    return firmware("sim,small", "r23809"), TAMPERED if index == BIG + UPGRADING else GOOD


def noise_source(n):
    # 10,000 different global addresses, each in its own /24 so no range adds up either
    return "%d.%d.%d.9" % (100 + n // 10000 % 50, n // 100 % 100, n % 100)


def fleet_anomalies(store):
    return {kind: store.query_anomalies(kind=kind, limit=1000)
            for kind in ("fleet.campaign", "fleet.implant", "fleet.firmware_outlier")}


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


@pytest.mark.slow
def test_a_simulated_fleet_through_mosquitto(tmp_path, store_url):
    if not find_mosquitto():
        missing_tool("mosquitto is not installed")
    open_store(store_url).close()
    broker = MosquittoBroker(tmp_path / "broker")
    log = tmp_path / "collector.log"
    with broker:
        with open(log, "ab") as err:
            collector = subprocess.Popen(
                [sys.executable, "-m", "routerwatch_collector.cli", "run", "--port",
                 str(broker.port), "--db", store_url],
                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        fleet = None
        try:
            wait_until(lambda: "subscribed" in log.read_text(), 30, "the collector subscribed")
            fleet = SimulatedFleet(broker.host, broker.port, devices=BIG + UPGRADING + SMALL,
                                   name="fleet").connect()
            fleet.announce(firmware_of=firmware_of)
            devices = fleet.devices
            sent = 0
            store = open_store(store_url)
            for n in range(NOISE):
                if n and n % 1000 == 0:
                    # in waves, as a fleet reports: a burst far beyond what the collector stores
                    # meanwhile would overflow the broker's queue for its session
                    fleet.wait_published()
                    wait_until(lambda: store.anomaly_count() >= sent - 200, 120, "a wave stored")
                if n % (NOISE // CAMPAIGN_DEVICES) == 0:   # the campaign, spread through it
                    device = devices[(n // (NOISE // CAMPAIGN_DEVICES)) * 23 % BIG]
                    fleet.send(fleet.anomaly(device, "login.bruteforce", "high",
                                             {"source_ip": ATTACKER, "inside": False}))
                    sent += 1
                fleet.send(fleet.anomaly(devices[n % len(devices)], "login.bruteforce", "medium",
                                         {"source_ip": noise_source(n), "inside": False}))
                sent += 1
            for device in devices[500:503]:
                fleet.send(fleet.anomaly(device, "conn.new_listener", "high",
                                         {"port": 7777, "pid": 991, "exe": "/tmp/.sys/kwork",
                                          "sha256": IMPLANT}))
                sent += 1
            fleet.send(fleet.anomaly(devices[600], "conn.new_listener", "medium",
                                     {"port": 8080, "pid": 5, "exe": "/usr/bin/x",
                                      "sha256": "%064x" % 600}))
            sent += 1
            fleet.wait_published()
            try:
                try:
                    wait_until(lambda: store.anomaly_count() >= sent + 3, 300,
                               "every anomaly stored and the fleet's raised")
                except AssertionError:
                    raise AssertionError("%d of %d stored; collector log:\n%s" % (
                        store.anomaly_count(), sent + 3, log.read_text()[-3000:])) from None
                time.sleep(1.0)                  # nothing more should come
                found = fleet_anomalies(store)
            finally:
                store.close()
        finally:
            if fleet is not None:
                fleet.close()
            collector.send_signal(signal.SIGTERM)
            try:
                collector.wait(30)
            except subprocess.TimeoutExpired:
                collector.kill()
    (outlier,) = found["fleet.firmware_outlier"]
    assert outlier.device == devices[123] and outlier.evidence["firmware_hash"] == TAMPERED
    (campaign,) = found["fleet.campaign"]
    assert campaign.evidence["source"] == ATTACKER
    assert campaign.count == CAMPAIGN_DEVICES == campaign.evidence["devices"]
    (implant,) = found["fleet.implant"]
    assert implant.count == 3 and set(implant.evidence["device_list"]) == set(devices[500:503])
