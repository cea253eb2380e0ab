"""fleet.firmware_outlier: given inventories of many siblings, when one hashes differently from
at least 95 % of at least 20, then that device is an outlier (critical if its integrity scan
also found something serious); a fleet mid-upgrade or a small fleet raises nothing; an outlier
back on its siblings' firmware is resolved, and raised anew if the odd firmware returns."""
from routerwatch.contract import Anomaly

from fleet_messages import T0, device_name, feed, firmware_inventory, run_of

GOOD, TAMPERED, NEWER = "a" * 64, "b" * 64, "c" * 64
OUTLIER = "fleet.firmware_outlier"


def test_one_tampered_device_among_many_siblings_is_an_outlier(fleet):
    tampered = device_name(7)
    fleet.feed([firmware_inventory(device_name(n), TAMPERED if n == 7 else GOOD)
                for n in range(60)])
    (outlier,) = fleet.found(OUTLIER)
    assert outlier.device == tampered and outlier.severity == "high"
    assert outlier.origin == "collector"
    assert outlier.evidence["firmware_hash"] == TAMPERED
    # raised as the group reached 20
    assert outlier.evidence["usual_hash"] == GOOD and outlier.evidence["siblings"] == 20
    # replayed inventories and more siblings raise it no second time
    feed(fleet.another_collector(), [
        firmware_inventory(device_name(n), TAMPERED if n == 7 else GOOD, seq=2)
        for n in range(80)])
    assert len(fleet.found(OUTLIER)) == 1


def test_the_outlier_arriving_first_is_found_when_the_siblings_arrive(fleet):
    fleet.feed([firmware_inventory(device_name(0), TAMPERED)])
    assert fleet.found(OUTLIER) == []
    fleet.feed([firmware_inventory(device_name(n), GOOD) for n in range(1, 25)])
    assert [a.device for a in fleet.found(OUTLIER)] == [device_name(0)]


def test_an_outlier_with_an_integrity_finding_is_critical(fleet):
    bad = device_name(3)
    fleet.feed([Anomaly(device=bad, run=run_of(bad), seq=1, time=T0,
                        kind="integrity.rom_shadowed", severity="high",
                        summary="/usr/sbin/dropbear shadowed", evidence={"path": "x"})])
    fleet.feed([firmware_inventory(device_name(n), TAMPERED if n == 3 else GOOD)
                for n in range(30)])
    (outlier,) = fleet.found(OUTLIER)
    assert outlier.device == bad and outlier.severity == "critical"
    assert outlier.evidence["integrity_high"] is True


def test_a_fleet_mid_upgrade_raises_nothing(fleet):
    # half on the old revision, half on the new: two groups, each consistent
    fleet.feed([firmware_inventory(device_name(n), GOOD) for n in range(50)])
    fleet.feed([firmware_inventory(device_name(n), NEWER, revision="r24106-10cc5fcd00", seq=2)
                for n in range(25)])
    # and one group split between two builds of the same revision has no consensus
    fleet.feed([firmware_inventory(device_name(n, "split"), GOOD if n % 3 else NEWER,
                                   board="glinet,gl-mt6000") for n in range(60)])
    assert fleet.found(OUTLIER) == []


def test_a_small_fleet_raises_nothing(fleet):
    fleet.feed([firmware_inventory(device_name(n), TAMPERED if n == 0 else GOOD)
                for n in range(19)])
    assert fleet.found(OUTLIER) == []


def test_two_outliers_among_twenty_is_no_consensus(fleet):
    fleet.feed([firmware_inventory(device_name(n), TAMPERED if n < 2 else GOOD)
                for n in range(20)])
    assert fleet.found(OUTLIER) == []       # 18 of 20 is 90 %, under 95 %


def test_an_outlier_arriving_late_or_reflashed_later_is_found(fleet):
    fleet.feed([firmware_inventory(device_name(n), GOOD) for n in range(40)])
    fleet.feed([firmware_inventory(device_name(40), TAMPERED)])
    # a sibling reflashed with a custom build: its next run's inventory
    fleet.feed([firmware_inventory(device_name(5), NEWER, seq=2)])
    assert sorted(a.device for a in fleet.found(OUTLIER)) == [device_name(5), device_name(40)]


def test_an_outlier_back_on_the_usual_firmware_is_resolved_and_raised_again_if_it_returns(
        fleet):
    odd = device_name(7)
    fleet.feed([firmware_inventory(device_name(n), TAMPERED if n == 7 else GOOD)
                for n in range(30)])
    (outlier,) = fleet.found(OUTLIER)
    assert "resolved_at" not in outlier.evidence
    # reflashed from a good image: the next run's inventory carries the usual hash
    fleet.feed([firmware_inventory(odd, GOOD, seq=2)], now=T0 + 3600)
    (resolved,) = fleet.found(OUTLIER)
    assert (resolved.run, resolved.seq) == (outlier.run, outlier.seq)   # the same row
    assert resolved.evidence["resolved_at"] == T0 + 3600
    assert resolved.evidence["resolution"] == "usual_firmware"
    assert resolved.evidence["resolved_hash"] == GOOD
    assert resolved.evidence["firmware_hash"] == TAMPERED  # what it was stays
    assert "resolved: now on the usual firmware" in resolved.summary
    # the fleet picture no longer lists it
    assert fleet.store.fleet_incidents(OUTLIER) == []
    # the odd firmware comes back (the router was re-infected): a new anomaly
    fleet.feed([firmware_inventory(odd, TAMPERED, seq=3)], now=T0 + 7200)
    again = [a for a in fleet.found(OUTLIER)
             if (a.run, a.seq) != (outlier.run, outlier.seq)]
    assert [(a.device, a.evidence["firmware_hash"]) for a in again] == [(odd, TAMPERED)]
    assert "resolved_at" not in again[0].evidence


def test_an_outlier_reflashed_with_another_odd_build_ends_and_a_new_one_opens(fleet):
    odd = device_name(3)
    fleet.feed([firmware_inventory(device_name(n), TAMPERED if n == 3 else GOOD)
                for n in range(30)])
    fleet.feed([firmware_inventory(odd, NEWER, seq=2)], now=T0 + 60)
    by_hash = {a.evidence["firmware_hash"]: a for a in fleet.found(OUTLIER)}
    assert set(by_hash) == {TAMPERED, NEWER}
    assert by_hash[TAMPERED].evidence["resolution"] == "reflashed"
    assert "resolved_at" not in by_hash[NEWER].evidence
    assert [r["key"] for r in fleet.store.fleet_incidents(OUTLIER)] == ["%s|%s" % (odd, NEWER)]


def test_replays_and_inventories_without_a_hash_resolve_nothing(fleet):
    odd = device_name(3)
    fleet.feed([firmware_inventory(device_name(n), TAMPERED if n == 3 else GOOD)
                for n in range(30)])
    fleet.feed([firmware_inventory(odd, TAMPERED, seq=2)])           # the same firmware again
    fleet.feed([firmware_inventory(odd, "", seq=3)])                 # an agent that cannot hash
    (outlier,) = fleet.found(OUTLIER)
    assert "resolved_at" not in outlier.evidence
    # back on the usual firmware: resolved once, by whichever collector hears it first
    fleet.feed([firmware_inventory(odd, GOOD, seq=4)], now=T0 + 10)
    feed(fleet.another_collector(), [firmware_inventory(odd, GOOD, seq=5)], now=T0 + 20)
    (outlier,) = fleet.found(OUTLIER)
    assert outlier.evidence["resolved_at"] == T0 + 10
