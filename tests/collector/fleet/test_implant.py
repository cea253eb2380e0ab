"""fleet.implant: given anomalies naming a program by sha256, when two devices report the same
one, then one critical fleet anomaly, updated as more devices report it."""
from routerwatch.contract import encode
from routerwatch_collector.ingest import Ingest

from fleet_messages import T0, device_name, login_anomaly, program_anomaly

DIGEST = "3f" * 32


def feed(ingest, messages, now=T0):
    for m in messages:
        assert ingest.handle("routerwatch/%s/%s" % (m.device, m.type), encode(m), now) == \
            "accepted"
    return ingest.flush(now)


def implants(store):
    return store.query_anomalies(kind="fleet.implant", limit=1000)


def test_the_same_program_on_three_devices_is_one_implant(open_test_store):
    store = open_test_store()
    ingest = Ingest(store)
    feed(ingest, [program_anomaly(device_name(0), 1, DIGEST)])
    assert implants(store) == []
    feed(ingest, [program_anomaly(device_name(1), 1, DIGEST, kind="integrity.exec_from_tmp",
                                  port=None)])
    (implant,) = implants(store)
    assert implant.severity == "critical" and implant.count == 2
    assert implant.evidence["sha256"] == DIGEST
    assert sorted(implant.evidence["seen_as"]) == ["conn.new_listener:7777",
                                                   "integrity.exec_from_tmp"]
    feed(ingest, [program_anomaly(device_name(2), 1, DIGEST)])
    (implant,) = implants(store)
    assert implant.count == 3
    assert sorted(implant.evidence["device_list"]) == [device_name(n) for n in range(3)]


def test_different_programs_bad_hashes_and_old_agents_raise_nothing(open_test_store):
    store = open_test_store()
    ingest = Ingest(store)
    feed(ingest, [program_anomaly(device_name(n), 1, "%064x" % n) for n in range(10)])
    feed(ingest, [program_anomaly(device_name(n), 2, "XYZ" * 20) for n in range(10)])
    feed(ingest, [program_anomaly(device_name(n), 3, DIGEST, kind="conn.beacon")
                  for n in range(10)])
    feed(ingest, [login_anomaly(device_name(n), 4, "45.1.2.3") for n in range(3)])
    assert implants(store) == []


def test_integrity_files_count_only_when_they_are_code(open_test_store):
    store = open_test_store()
    ingest = Ingest(store)
    config = [program_anomaly(device_name(n), 1, DIGEST, kind="integrity.baseline_drift",
                              port=None) for n in range(5)]
    feed(ingest, config)                 # /etc/config/network, the same on five routers
    assert implants(store) == []
    code = [program_anomaly(device_name(n), 2, "ab" * 32, kind="integrity.rom_shadowed",
                            port=None, **{"class": "code"}) for n in range(2)]
    feed(ingest, code)
    assert [a.evidence["sha256"] for a in implants(store)] == ["ab" * 32]
