"""`routerwatch-collector iocs` and `routerwatch-collector fleet` on a store the fleet
detections filled."""
import csv
import io
import json
import time

from routerwatch_collector.cli import main
from routerwatch_collector.fleet.report import as_nft
from routerwatch_collector.ingest import Ingest

from fleet_messages import device_name, feed, firmware_inventory, login_anomaly, program_anomaly

DIGEST = "5e" * 32


def filled(store, now):
    ingest = Ingest(store)
    feed(ingest, [login_anomaly(device_name(n), 1, "45.155.205.17") for n in range(6)], now)
    feed(ingest, [login_anomaly(device_name(n), 2, "2a01:4f8:1:2::%x" % n) for n in range(6)],
         now)
    feed(ingest, [program_anomaly(device_name(n), 3, DIGEST) for n in range(3)], now)
    feed(ingest, [firmware_inventory(device_name(n), "b" * 64 if n == 4 else "a" * 64)
                  for n in range(25)], now)


def run_cli(capsys, *argv):
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_iocs_as_json_csv_and_nftables(open_test_store, store_url, capsys):
    now = time.time()
    filled(open_test_store(), now)
    rows = [json.loads(line) for line in run_cli(capsys, "iocs", "--db", store_url).splitlines()]
    values = {(r["type"], r["value"]) for r in rows}
    assert ("ipv4", "45.155.205.17") in values
    assert ("ipv6", "2a01:4f8:1:2::/64") in values
    assert ("sha256", DIGEST) in values
    assert all(r["devices"] >= 3 for r in rows)
    table = list(csv.DictReader(io.StringIO(run_cli(capsys, "iocs", "--db", store_url,
                                                    "--format", "csv"))))
    assert {(r["type"], r["value"]) for r in table} == values
    nft = run_cli(capsys, "iocs", "--db", store_url, "--format", "nft")
    assert "add element inet fw4 routerwatch_block { 45.155.205.17 }" in nft.splitlines()
    assert "add element inet fw4 routerwatch_block6 { 2a01:4f8:1:2::/64 }" in nft.splitlines()
    assert DIGEST not in nft


def test_the_nft_snippet_carries_only_valid_addresses():
    rows = [{"type": "ipv4", "value": "1.2.3.4"}, {"type": "sha256", "value": "x"}]
    assert as_nft(rows).splitlines()[-1] == "add element inet fw4 routerwatch_block { 1.2.3.4 }"
    assert "add element" not in as_nft([])
    covered = [{"type": "ipv4", "value": "45.155.205.17"},
               {"type": "ipv4", "value": "45.155.205.0/24"}, {"type": "ipv4", "value": "bad"},
               {"type": "ipv4", "value": "1.2.3.4; flush ruleset"}]
    assert as_nft(covered).splitlines()[-1] == \
        "add element inet fw4 routerwatch_block { 45.155.205.0/24 }"


def test_fleet_picture(open_test_store, store_url, capsys):
    filled(open_test_store(), time.time())
    picture = json.loads(run_cli(capsys, "fleet", "--db", store_url, "--json"))
    assert picture["devices"]["total"] == 25
    assert {c["value"] for c in picture["campaigns"]} >= {"45.155.205.17"}
    assert [i["value"] for i in picture["implants"]] == [DIGEST]
    (group,) = picture["firmware_groups"]
    assert group["devices"] == 25 and group["consensus"]
    assert group["outliers"] == [{"device": device_name(4), "firmware_hash": "b" * 64}]
    text = run_cli(capsys, "fleet", "--db", store_url)
    assert "outlier %s" % device_name(4) in text and "open campaigns:" in text
