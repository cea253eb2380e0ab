"""The fleet detections end to end: simulated routers (bench/fleet_devices.py) and two real
agents on fixture trees (fleet_routers.py) publish through a real mosquitto to a real
`routerwatch-collector run`, on SQLite and PostgreSQL.

Given a 1,000-device fleet of one board with one tampered firmware, a fleet mid-upgrade, a small
fleet with an odd device, a campaign across 40 simulated devices and the 2 real routers hidden
among 10,000 unrelated failures, and one program on 3 simulated devices and both real routers
(running from /tmp with a listener and a raw socket, and dropped executable in the overlay):
then exactly one firmware outlier, one campaign of 42 devices and one implant of 5 devices are
stored, the real routers' tampered dropbear and tcpdump are implants of those two, and nothing
else of the fleet kinds."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broker import MosquittoBroker, find_mosquitto, missing_tool
from fleet_routers import IMPLANT_SHA256, RealRouter, tampered_programs
from routerwatch_collector.stores import open_store

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "bench"))
from fleet_devices import SimulatedFleet  # noqa: E402

BIG, UPGRADING, SMALL = 1000, 200, 15
CAMPAIGN_DEVICES, NOISE = 40, 10000
ATTACKER = "45.155.205.17"
IMPLANT = IMPLANT_SHA256
REAL_ROUTERS = ("rw-real-00001", "rw-real-00002")
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


def stored_from(store, devices):
    return sum(len(store.query_anomalies(device=d, limit=1000)) for d in devices)


def expected_fleet(store):
    """The fleet picture the test waits for: every source has reached its count."""
    found = fleet_anomalies(store)
    implants = {a.evidence["sha256"]: a.count for a in found["fleet.implant"]}
    return (found["fleet.firmware_outlier"] and implants.get(IMPLANT) == 5
            and [a.count for a in found["fleet.campaign"]] == [CAMPAIGN_DEVICES + 2]
            and all(implants.get(d) == 2 for d in tampered_programs()))


@pytest.mark.slow
def test_a_simulated_fleet_and_real_agents_through_mosquitto(tmp_path, store_url):
    if not find_mosquitto():
        missing_tool("mosquitto is not installed")
    open_store(store_url).close()
    broker = MosquittoBroker(tmp_path / "broker")
    log = tmp_path / "collector.log"
    routers = [RealRouter(tmp_path / device, device) for device in REAL_ROUTERS]
    with broker:
        with open(log, "ab") as err:
            collector = subprocess.Popen(
                [sys.executable, "-m", "routerwatch_collector.cli", "run", "--port",
                 str(broker.port), "--db", store_url],
                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        fleet = None
        try:
            wait_until(lambda: "subscribed" in log.read_text(), 30, "the collector subscribed")
            for router in routers:        # they scan and report while the fleet does
                router.start(broker.port)
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
                    wait_until(lambda: store.anomaly_count() >= sent - 200, 120,
                               "a wave stored")
                if n % (NOISE // CAMPAIGN_DEVICES) == 0:   # the campaign, spread through it
                    device = devices[(n // (NOISE // CAMPAIGN_DEVICES)) * 23 % BIG]
                    fleet.send(fleet.anomaly(device, "login.bruteforce", "high",
                                             {"source_ip": ATTACKER, "inside": False}))
                    sent += 1
                if n == NOISE // 2:                        # the real routers are attacked too
                    for router in routers:
                        router.brute_force(ATTACKER)
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
                    wait_until(lambda: store.anomaly_count() - stored_from(store, REAL_ROUTERS)
                               >= sent + 3 and expected_fleet(store), 300,
                               "every anomaly stored and the fleet's raised")
                except AssertionError:
                    raise AssertionError("%d of %d stored; fleet: %s; collector log:\n%s\n"
                                         "agent log:\n%s" % (
                                             store.anomaly_count(), sent + 3,
                                             fleet_anomalies(store), log.read_text()[-3000:],
                                             routers[0].log()[-2000:])) from None
                time.sleep(1.0)                  # nothing more should come
                found = fleet_anomalies(store)
                real_kinds = {d: {a.kind for a in store.query_anomalies(device=d, limit=1000)}
                              for d in REAL_ROUTERS}
            finally:
                store.close()
        finally:
            for router in routers:
                router.stop()
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
    assert campaign.count == CAMPAIGN_DEVICES + 2 == campaign.evidence["devices"]
    assert set(REAL_ROUTERS) <= set(campaign.evidence["device_list"])
    implants = {a.evidence["sha256"]: a for a in found["fleet.implant"]}
    assert set(implants) == {IMPLANT} | set(tampered_programs())
    implant = implants[IMPLANT]
    assert implant.count == 5
    assert set(implant.evidence["device_list"]) == set(devices[500:503]) | set(REAL_ROUTERS)
    # what the real agents saw of the program: its listener and raw socket, code run from /tmp,
    # and the executable no package owns in the overlay
    assert {"conn.new_listener:7777", "conn.raw_socket", "integrity.exec_from_tmp",
            "integrity.package_mismatch"} <= set(implant.evidence["seen_as"])
    for digest in tampered_programs():
        assert set(implants[digest].evidence["device_list"]) == set(REAL_ROUTERS)
    for kinds in real_kinds.values():
        assert {"login.bruteforce", "conn.raw_socket", "integrity.exec_from_tmp",
                "integrity.package_mismatch"} <= kinds
