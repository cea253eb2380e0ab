"""fleet.firmware_outlier: given inventories of many siblings, when one hashes differently from
at least 95 % of at least 20, then that device is an outlier (critical if its integrity scan
also found something serious); a fleet mid-upgrade or a small fleet raises nothing."""
from routerwatch.contract import Anomaly, encode
from routerwatch_collector.ingest import Ingest

from fleet_messages import T0, device_name, firmware_inventory, run_of

GOOD, TAMPERED, NEWER = "a" * 64, "b" * 64, "c" * 64


def feed(ingest, messages, now=T0):
    for m in messages:
        assert ingest.handle("routerwatch/%s/%s" % (m.device, m.type), encode(m), now) == \
            "accepted"
    return ingest.flush(now)


def outliers(store):
    return store.query_anomalies(kind="fleet.firmware_outlier", limit=1000)


def test_one_tampered_device_among_many_siblings_is_an_outlier(open_test_store):
    store = open_test_store()
    ingest = Ingest(store)
    tampered = device_name(7)
    feed(ingest, [firmware_inventory(device_name(n), TAMPERED if n == 7 else GOOD)
                  for n in range(60)])
    (outlier,) = outliers(store)
    assert outlier.device == tampered and outlier.severity == "high"
    assert outlier.origin == "collector"
    assert outlier.evidence["firmware_hash"] == TAMPERED
    assert outlier.evidence["usual_hash"] == GOOD and outlier.evidence["siblings"] == 20   # raised as the group reached 20
    # replayed inventories and more siblings raise it no second time
    feed(Ingest(store), [firmware_inventory(device_name(n), GOOD, seq=2) for n in range(60, 80)])
    assert len(outliers(store)) == 1


def test_the_outlier_arriving_first_is_found_when_the_siblings_arrive(open_test_store):
    store = open_test_store()
    ingest = Ingest(store)
    feed(ingest, [firmware_inventory(device_name(0), TAMPERED)])
    assert outliers(store) == []
    feed(ingest, [firmware_inventory(device_name(n), GOOD) for n in range(1, 25)])
    assert [a.device for a in outliers(store)] == [device_name(0)]


def test_an_outlier_with_an_integrity_finding_is_critical(open_test_store):
    store = open_test_store()
    ingest = Ingest(store)
    bad = device_name(3)
    feed(ingest, [Anomaly(device=bad, run=run_of(bad), seq=1, time=T0,
                          kind="integrity.rom_shadowed", severity="high",
                          summary="/usr/sbin/dropbear shadowed", evidence={"path": "x"})])
    feed(ingest, [firmware_inventory(device_name(n), TAMPERED if n == 3 else GOOD)
                  for n in range(30)])
    (outlier,) = outliers(store)
    assert outlier.device == bad and outlier.severity == "critical"
    assert outlier.evidence["integrity_high"] is True


def test_a_fleet_mid_upgrade_raises_nothing(open_test_store):
    store = open_test_store()
    ingest = Ingest(store)
    # half on the old revision, half on the new: two groups, each consistent
    feed(ingest, [firmware_inventory(device_name(n), GOOD) for n in range(50)])
    feed(ingest, [firmware_inventory(device_name(n), NEWER, revision="r24106-10cc5fcd00",
                                     seq=2) for n in range(25)])
    # and one group split between two builds of the same revision has no consensus
    feed(ingest, [firmware_inventory(device_name(n, "split"), GOOD if n % 3 else NEWER,
                                     board="glinet,gl-mt6000") for n in range(60)])
    assert outliers(store) == []


def test_a_small_fleet_raises_nothing(open_test_store):
    store = open_test_store()
    ingest = Ingest(store)
    feed(ingest, [firmware_inventory(device_name(n), TAMPERED if n == 0 else GOOD)
                  for n in range(19)])
    assert outliers(store) == []


def test_two_outliers_among_twenty_is_no_consensus(open_test_store):
    store = open_test_store()
    feed(Ingest(store), [firmware_inventory(device_name(n), TAMPERED if n < 2 else GOOD)
                         for n in range(20)])
    assert outliers(store) == []       # 18 of 20 is 90 %, under 95 %


def test_an_outlier_arriving_late_or_reflashed_later_is_found(open_test_store):
    store = open_test_store()
    ingest = Ingest(store)
    feed(ingest, [firmware_inventory(device_name(n), GOOD) for n in range(40)])
    feed(ingest, [firmware_inventory(device_name(40), TAMPERED)])
    # a sibling reflashed with a custom build: its next run's inventory
    feed(ingest, [firmware_inventory(device_name(5), NEWER, seq=2)])
    assert sorted(a.device for a in outliers(store)) == [device_name(5), device_name(40)]
