"""The Fleet runner (fleet/__init__.py) as ingest feeds it: every anomaly and inventory a batch
stores reaches the fleet detections once, whatever the batch's size and order, and nothing a
batch does not store (a redelivered duplicate) reaches them at all."""
from routerwatch.contract import Anomaly

from fleet_messages import T0, device_name, feed, firmware_inventory, login_anomaly, run_of

ATTACKER = "45.155.205.17"
GOOD, TAMPERED = "a" * 64, "b" * 64


def test_one_large_batch_reaches_the_detections_whole(fleet):
    devices = [device_name(n) for n in range(300)]
    # 100 of them already reported it: redelivered (QoS 1) in the big batch, stored no second time
    fleet.feed([login_anomaly(d, 1, ATTACKER) for d in devices[:100]])
    before = fleet.store.anomaly_count()
    odd = devices[42]
    batch = [login_anomaly(d, 1, ATTACKER) for d in devices]
    batch += [firmware_inventory(d, TAMPERED if d == odd else GOOD) for d in devices]
    # the odd device's integrity finding arrives in the same batch as its inventory
    batch.append(Anomaly(device=odd, run=run_of(odd), seq=2, time=T0,
                         kind="integrity.rom_shadowed", severity="high",
                         summary="/usr/sbin/dropbear shadowed", evidence={"path": "x"}))
    new = feed(fleet.another_collector(), batch, now=T0 + 60)
    assert fleet.store.anomaly_count() - before == 200 + 1 + 1    # the new, and the outlier
    assert [a.kind for a in new if a.origin == "collector"] == ["fleet.firmware_outlier"]
    (campaign,) = fleet.found("fleet.campaign")
    assert campaign.count == 300 == campaign.evidence["devices"]
    (outlier,) = fleet.found("fleet.firmware_outlier")
    assert outlier.device == odd and outlier.severity == "critical"
    # raised as it arrived (ingest takes a batch's devices in order): 42 siblings before it
    assert outlier.evidence["siblings"] == 43
