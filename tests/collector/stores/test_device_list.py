"""The whole-fleet device list (Store.iter_devices and `routerwatch-collector devices`), on SQLite
and on PostgreSQL: the same rows as the device reads, streamed, and printed without decoding the
stored JSON."""
import json
import tracemalloc

import pytest

from collector_messages import DEVICE, RUN, T0, heartbeat, inventory
from routerwatch.contract import Inventory
from routerwatch_collector.cli import device_json, main


@pytest.fixture
def store(open_test_store):
    return open_test_store()


def _fleet(store):
    """Three devices: one with everything (inventory, heartbeat, a gap and a suspect jump), one
    with a firmware that names itself in non-ASCII and control characters, one bare."""
    store.upsert_device(DEVICE, RUN, T0)
    store.record_inventory(inventory(), T0)
    store.record_heartbeat(heartbeat(1), T0 + 30)
    store.record_gap(DEVICE, RUN, "anomaly", 3, 5, T0 + 40)
    store.record_gap(DEVICE, RUN, "heartbeat", 10, 10 + 2 ** 40, T0 + 40)
    store.upsert_device("rw-b", "run-b", T0 + 1)
    store.record_inventory(Inventory(
        device="rw-b", run="run-b", seq=1, time=T0, agent_version="0.1.0",
        firmware={"DISTRIB_RELEASE": "24.10-\u00e9t\u00e9", "model": "Box \u202e\x1b[31m",
                  "nested": {"k": ["\u2028", 1.5, None]}},
        firmware_hash="b" * 64, baseline_hash="", package_manager="apk"), T0 + 1)
    store.upsert_device("rw-a", "run-a", T0 + 2)


def test_the_list_holds_the_same_devices_and_values_as_the_device_reads(store):
    _fleet(store)
    listed = list(store.iter_devices())
    assert [d.device for d in listed] == [DEVICE, "rw-a", "rw-b"]        # by device id
    for listing in listed:
        assert listing.as_row() == store.device(listing.device)
    assert store.devices() == [store.device(d.device) for d in listed]
    full = store.device(DEVICE)
    assert (full.gaps_missing, full.gaps_suspect) == (3, 1)
    assert listed[0].firmware_label() == "23.05.3 TP-Link Archer C7 v5"
    assert listed[2].firmware_release == "24.10-\u00e9t\u00e9"
    assert listed[1].firmware_label() == "" and listed[1].last_heartbeat_json is None


def test_the_list_leaves_out_what_its_reader_does_not_want(store):
    _fleet(store)
    full = {d.device: d for d in store.iter_devices()}
    for listing in store.iter_devices(labels=False):
        assert listing.firmware_release is listing.firmware_model is None
        assert listing == full[listing.device]._replace(firmware_release=None,
                                                        firmware_model=None)
    for listing in store.iter_devices(documents=False):
        assert listing.last_heartbeat_json is listing.firmware_json is None
        assert listing.plain() == full[listing.device].plain()


def test_a_changed_inventory_changes_the_listed_firmware(store):
    _fleet(store)
    store.record_inventory(Inventory(
        device=DEVICE, run=RUN, seq=2, time=T0, agent_version="0.2.0",
        firmware={"DISTRIB_RELEASE": "24.10.0"}, firmware_hash="c" * 64, baseline_hash="",
        package_manager="opkg"), T0 + 50)
    (listing,) = [d for d in store.iter_devices() if d.device == DEVICE]
    assert (listing.firmware_release, listing.firmware_model) == ("24.10.0", None)


def test_devices_json_is_ascii_and_decodes_to_each_devices_full_row(store, store_url, capsys):
    _fleet(store)
    assert main(["devices", "--db", store_url, "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.isascii() for line in lines)
    for line in lines:
        row = json.loads(line)
        assert row == json.loads(json.dumps(store.device(row["device"]).as_dict()))
    assert json.loads(lines[2])["firmware"]["model"] == "Box \u202e\x1b[31m"


def test_devices_text_shows_the_firmware_columns_escaped_and_the_gap_totals(store, store_url,
                                                                          capsys):
    _fleet(store)
    assert main(["devices", "--db", store_url]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:4]] == ["DEVICE", DEVICE, "rw-a", "rw-b"]
    assert "\x1b" not in out and "\u202e" not in out
    assert "24.10-\u00e9t\u00e9 Box \\u202e\\x1b[31m" in lines[3]
    assert "23.05.3 TP-Link Archer C7" in lines[1] and lines[1].split()[-1] == "3"
    assert "suspect sequence jumps: 1" in out


def test_a_json_line_passes_the_stored_documents_on_without_decoding_them(store):
    _fleet(store)
    (listing,) = [d for d in store.iter_devices() if d.device == DEVICE]
    # whatever text the store kept is what the line carries (only non-ASCII is re-encoded)
    marked = listing._replace(firmware_json='{"kept":"as stored"}')
    assert json.loads(device_json(marked))["firmware"] == {"kept": "as stored"}
    assert json.loads(device_json(listing._replace(firmware_json='{"x":"\u00e9"}'))) [
        "firmware"] == {"x": "\u00e9"}


def test_the_list_is_streamed_not_read_whole_into_memory(store):
    postgres = type(store).__name__ == "PostgresStore"
    numbers = ("SELECT n FROM generate_series(1, ?) AS n" if postgres else
               "WITH RECURSIVE n(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM n WHERE n < ?) "
               "SELECT n FROM n")
    document = json.dumps({"padding": "x" * 1000})
    store._x("INSERT INTO devices (device, first_seen, last_seen, run, last_heartbeat) "
             "SELECT 'rw-' || n, 0, 0, 'r', %s FROM (%s) AS numbers"
             % (store.JSON_PARAM, numbers), (document, 3000))
    store.STREAM_ROWS = 100
    tracemalloc.start()
    try:
        whole = list(store.iter_devices())
        _, whole_peak = tracemalloc.get_traced_memory()
        del whole
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        assert sum(1 for _ in store.iter_devices()) == 3000
        _, streamed_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 3,000 devices of 1 kB each held at once, against a batch of them at a time
    assert whole_peak > 3000 * 1000
    assert streamed_peak - base < whole_peak / 5


def _generated_fleet(store, devices, now):
    """`devices` rows of every shape the text list prints: each status, ages from seconds to
    days (and in the future), firmware with release and model, one of them, none, longer than
    its column, or hostile; silent devices, gaps and suspect jumps on some."""
    firmwares = [None, {"DISTRIB_RELEASE": "23.05.3", "model": "TP-Link Archer C7 v5"},
                 {"DISTRIB_RELEASE": "24.10.0"}, {"model": "Only A Model"},
                 {"DISTRIB_RELEASE": "24.10-\u00e9t\u00e9", "model": "Box \u202e\x1b[31m"},
                 {"DISTRIB_RELEASE": "x" * 40, "model": "y"}, {"unrelated": 1}]
    ages = [-30, 0, 1, 59, 60, 3599, 3600, 86399, 86400, 86400 * 400]
    for n in range(devices):
        device = "rw-gen-%04d" % n if n % 13 else "rw-gen-%04d\x1b]0;x\x07" % n
        firmware = firmwares[n % len(firmwares)]
        store._x("INSERT INTO devices (device, first_seen, last_seen, run, status, "
                 "heartbeats, anomalies, firmware, silent_since) VALUES "
                 "(?, ?, ?, 'r', ?, ?, ?, %s, ?)" % store.JSON_PARAM,
                 (device, now - 10 ** 7, now - ages[n % len(ages)] - 0.25,
                  [None, "online", "offline", "stopped"][n % 4], n * 7, n % 11,
                  None if firmware is None else json.dumps(firmware),
                  now - 5 if n % 9 == 0 else None))
        if n % 5 == 0:
            store.record_gap(device, "r", "anomaly", 3, 3 + n % 4, now)
        if n % 17 == 0:
            store.record_gap(device, "r", "heartbeat", 10, 10 + 2 ** 40, now)


def _listed_from_the_device_reads(store, now):
    """The text list as it is meant to read, made from each device's full row (store.devices)
    one line at a time: what the fleet-sized list must print, byte for byte."""
    import routerwatch_collector.cli as cli
    lines = ["%-22s %-8s %-10s %-9s %-28s %9s %10s %5s\n" % (
        "DEVICE", "STATUS", "LAST SEEN", "SILENT", "FIRMWARE", "ANOMALIES", "HEARTBEATS", "GAPS")]
    suspect = 0
    for row in store.devices():
        firmware = row.firmware if isinstance(row.firmware, dict) else {}
        release, model = firmware.get("DISTRIB_RELEASE"), firmware.get("model")
        label = " ".join(part for part in (release, model) if part is not None)
        lines.append("%-22s %-8s %-10s %-9s %-28s %9d %10d %5d\n" % (
            cli.printable(row.device), row.status or "-", cli._age(row.last_seen, now),
            "yes" if row.silent_since else "no", cli.printable(label)[:28] or "-",
            row.anomalies, row.heartbeats, row.gaps_missing))
        suspect += row.gaps_suspect
    if suspect:
        lines.append("suspect sequence jumps: %d (routerwatch-collector gaps)\n" % suspect)
    return "".join(lines)


@pytest.mark.parametrize("cache_size", [4096, 3])
def test_devices_text_prints_what_the_full_device_reads_say(store, store_url, capsys,
                                                           monkeypatch, cache_size):
    import routerwatch_collector.cli as cli
    now = 1_800_000_000.0
    monkeypatch.setattr(cli.time, "time", lambda: now)
    # a table of 3 labels and ages is emptied over and over: it must not change a line
    monkeypatch.setattr(cli, "_LINE_CACHE_MAX", cache_size)
    monkeypatch.setattr(cli, "DEVICE_LINES_PER_WRITE", 7)    # several writes and a partial one
    _generated_fleet(store, 250, now)
    assert main(["devices", "--db", store_url]) == 0
    out = capsys.readouterr().out
    expected = _listed_from_the_device_reads(store, now)
    assert out.count("\n") == 1 + 250 + 1
    assert {"1d ago", "400d ago", "0s ago", "59s ago", "1m ago", "59m ago", "1h ago",
            "23h ago"} <= set(line[32:42].strip() for line in out.splitlines())
    assert out == expected


def test_devices_json_prints_each_devices_full_row_on_a_generated_fleet(store, store_url,
                                                                       capsys, monkeypatch):
    import routerwatch_collector.cli as cli
    monkeypatch.setattr(cli, "DEVICE_LINES_PER_WRITE", 7)
    _generated_fleet(store, 60, 1_800_000_000.0)
    assert main(["devices", "--db", store_url, "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["device"] for line in lines] == [d.device for d in store.devices()]
    for line, row in zip(lines, store.devices()):
        assert line.isascii()
        assert json.loads(line) == json.loads(json.dumps(row.as_dict()))


def test_the_text_lines_hold_the_same_values_as_the_full_list(store):
    _generated_fleet(store, 40, 1_800_000_000.0)
    full = list(store.iter_devices())
    lines = list(store.iter_device_lines())
    assert [line.device for line in lines] == [listing.device for listing in full]
    for line, listing in zip(lines, full):
        assert line == tuple(getattr(listing, field) for field in line._fields)
        assert line.firmware_label() == listing.firmware_label()
