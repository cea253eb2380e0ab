"""routerwatch-collector's command line: queries, output, and errors for people."""
import json
import subprocess
import sys
import time

import pytest

from collector_messages import DEVICE, RUN, anomaly, heartbeat, inventory, status
from routerwatch_collector.cli import main, parse_since, printable
from routerwatch_collector.ingest import Ingest
from routerwatch_collector.stores import open_store

NOW = time.time()


@pytest.fixture
def db(store_url):
    """A database as the collector leaves it: one router, three anomalies, one silence."""
    path = store_url
    store = open_store(path)
    ingest = Ingest(store)
    for when, message in [(NOW - 7200, status("online", 1)), (NOW - 7200, inventory()),
                          (NOW - 7200, heartbeat(1)),
                          (NOW - 7200, anomaly(1, kind="login.bruteforce")),
                          (NOW - 60, anomaly(2, kind="login.spray", severity="medium")),
                          (NOW - 30, anomaly(3, kind="conn.new_listener", source="192.0.2.1"))]:
        ingest.handle("routerwatch/%s/%s" % (message.device, message.type),
                      _encode(message), when)
        ingest.flush(when)
    ingest.tick(NOW)       # the heartbeat is two hours old: agent.silent
    store.close()
    return str(path)


def _encode(message):
    from routerwatch.contract import encode
    return encode(message)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_anomalies_lists_oldest_first_with_device_kind_and_source(db, capsys):
    code, out, _ = run_cli(capsys, "anomalies", "--db", db)
    lines = out.splitlines()
    assert code == 0
    assert [line.split()[2] for line in lines] == ["login.bruteforce", "login.spray",
                                                   "conn.new_listener", "agent.silent"]
    assert DEVICE in lines[0] and "seq=1" in lines[0] and "from 203.0.113.7" in lines[0]


def test_anomalies_filters_by_kind_family_since_and_limit(db, capsys):
    _, out, _ = run_cli(capsys, "anomalies", "--db", db, "--kind", "login.*")
    assert [line.split()[2] for line in out.splitlines()] == ["login.bruteforce", "login.spray"]
    _, out, _ = run_cli(capsys, "anomalies", "--db", db, "--since", "1h", "--kind",
                        "conn.new_listener")
    assert len(out.splitlines()) == 1
    _, out, _ = run_cli(capsys, "anomalies", "--db", db, "--limit", "2")
    assert [line.split()[2] for line in out.splitlines()] == ["conn.new_listener",
                                                              "agent.silent"]


def test_anomalies_json_carries_every_field(db, capsys):
    code, out, _ = run_cli(capsys, "anomalies", "--db", db, "--json", "--device", DEVICE,
                           "--kind", "login.bruteforce")
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert (row["device"], row["run"], row["seq"], row["kind"], row["severity"]) == (
        DEVICE, RUN, 1, "login.bruteforce", "high")
    assert row["evidence"]["source_ip"] == "203.0.113.7" and row["origin"] == "agent"
    assert abs(row["received_at"] - (NOW - 7200)) < 1


def test_devices_shows_status_firmware_counts_and_silence(db, capsys):
    code, out, _ = run_cli(capsys, "devices", "--db", db)
    header, line = out.splitlines()[:2]
    assert code == 0 and header.startswith("DEVICE")
    assert line.split()[:2] == [DEVICE, "online"]
    assert "23.05.3" in line and " yes " in line
    assert line.split()[-3:] == ["4", "1", "0"]     # anomalies (3 + agent.silent), heartbeats, gaps
    _, out, _ = run_cli(capsys, "devices", "--db", db, "--json")
    row = json.loads(out.splitlines()[0])
    assert row["firmware"]["model"] == "TP-Link Archer C7 v5" and row["silent_since"]


@pytest.mark.parametrize("argv, message", [
    (["anomalies", "--since", "yesterday"], "--since wants a relative time"),
    (["anomalies", "--limit", "0"], "--limit must be 1-1000000"),
    (["anomalies", "--kind", "Login Bruteforce"], "--kind must look like"),
    (["anomalies", "--device", "a/b"], "--device must look like"),
    (["run", "--port", "70000"], "--port must be 1-65535"),
    (["run", "--share-group", "a/b"], "--share-group must look like"),
    (["run", "--prefix", "a/+"], "--prefix must look like"),
    (["run", "--ca-file", "ca.pem"], "need --tls"),
    (["run", "--tls", "--cert-file", "c.pem"], "--cert-file and --key-file go together"),
    (["bogus"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_a_message_naming_the_option(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    _, err = capsys.readouterr()
    assert exit_info.value.code == 2
    assert message in err and "Traceback" not in err


def test_a_missing_database_is_exit_3_and_is_not_created(tmp_path, capsys):
    code, _, err = run_cli(capsys, "devices", "--db", str(tmp_path / "nope.sqlite"))
    assert code == 3 and "no database at" in err
    assert not (tmp_path / "nope.sqlite").exists()


def test_a_database_that_is_not_sqlite_is_exit_3_without_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database at all" * 100)
    code, _, err = run_cli(capsys, "anomalies", "--db", str(bad))
    assert code == 3 and "cannot open the database" in err


def test_relative_and_iso_times_for_since():
    assert parse_since("90s", 1000.0) == 910.0
    assert parse_since("2h", 10000.0) == 2800.0
    assert parse_since("1w", 10 ** 6) == 10 ** 6 - 604800
    assert parse_since("2026-11-25T16:00:00Z", 0) == parse_since("2026-11-25T16:00:00", 0)
    assert parse_since("2026-11-25T17:00:00+01:00", 0) == parse_since("2026-11-25T16:00", 0)


def test_router_chosen_text_cannot_drive_the_terminal():
    assert printable("root\x1b[2J\u202egnp.exe") == "root\\x1b[2J\\u202egnp.exe"


def test_printable_escapes_every_character_of_its_class_whatever_the_fast_path():
    from routerwatch_collector.cli import _UNPRINTABLE_RE
    # the fast path passes text that str.isprintable() accepts: none of the escaped
    # characters may be among those
    escaped = [c for c in map(chr, range(0x110000)) if _UNPRINTABLE_RE.match(c)]
    assert len(escaped) == 0x20 + 0x21 + 2 + 5 + 4
    for c in escaped:
        assert "\\" in printable("ok" + c) and c not in printable("ok" + c)


def test_help_lists_the_commands_and_exit_codes():
    result = subprocess.run([sys.executable, "-m", "routerwatch_collector.cli", "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for word in ("run", "anomalies", "devices", "exit codes", "3 the store cannot be opened"):
        assert word in result.stdout


def test_run_against_a_broker_that_refuses_the_credentials_exits_3(tmp_path, capsys):
    from broker import MosquittoBroker, find_mosquitto, make_password_file, missing_tool
    if not find_mosquitto():
        missing_tool("mosquitto is not installed")
    passwords = make_password_file(tmp_path / "passwd", {"collector": "right"})
    broker = MosquittoBroker(tmp_path / "broker",
                             extra="allow_anonymous false\npassword_file %s" % passwords)
    with broker:
        code, _, err = run_cli(capsys, "run", "--port", str(broker.port), "--db",
                               str(tmp_path / "c.sqlite"), "--user", "collector",
                               "--password", "wrong")
    assert code == 3 and "refused the connection" in err


def test_an_unreadable_tls_file_is_exit_3_with_a_message(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", "--tls", "--ca-file", str(tmp_path / "missing.pem"),
                           "--db", str(tmp_path / "c.sqlite"))
    assert code == 3 and "cannot set up the MQTT client" in err and "Traceback" not in err
    assert "--ca-file %s: no such file" % (tmp_path / "missing.pem") in err
    assert not (tmp_path / "c.sqlite").exists(), "no database is left behind a typo"


def test_run_makes_the_database_directory_of_the_readme_example(tmp_path, capsys):
    """`run --db /var/lib/routerwatch/collector.sqlite` on a machine without that directory:
    it is made, and the collector goes on to the broker (here one that refuses)."""
    from broker import MosquittoBroker, find_mosquitto, make_password_file, missing_tool
    if not find_mosquitto():
        missing_tool("mosquitto is not installed")
    db = tmp_path / "var" / "lib" / "routerwatch" / "collector.sqlite"
    passwords = make_password_file(tmp_path / "passwd", {"collector": "right"})
    broker = MosquittoBroker(tmp_path / "broker",
                             extra="allow_anonymous false\npassword_file %s" % passwords)
    with broker:
        code, _, err = run_cli(capsys, "run", "--port", str(broker.port), "--db", str(db),
                               "--user", "collector", "--password", "wrong")
    assert code == 3 and "refused the connection" in err      # past the database
    assert db.exists() and oct(db.parent.stat().st_mode & 0o777) == "0o750"


# ---------------------------------------------------------------- content a router chose

def test_runs_starting_near_two_to_the_53_are_suspicious_events_not_missing_messages(
        store_url, capsys):
    # every new run may start anywhere: 1,100 runs whose first anomaly is near 2^53 once
    # claimed ~2^53 missing messages each, and SUM() over them overflowed in `devices`
    path = store_url
    store = open_store(path)
    ingest = Ingest(store)
    from dataclasses import replace
    for n in range(1100):
        first = replace(anomaly(1, run="%016x" % (n + 1)), seq=2 ** 53 - n)
        ingest.handle(*_wire(first), now=NOW)
    ingest.handle(*_wire(anomaly(1, run="%016x" % 5000)), now=NOW)
    ingest.handle(*_wire(anomaly(4, run="%016x" % 5000)), now=NOW)    # a real gap of two
    ingest.flush(NOW)
    store.close()
    code, out, err = run_cli(capsys, "devices", "--db", str(path), "--json")
    assert code == 0 and "Traceback" not in err
    (device,) = [json.loads(line) for line in out.splitlines()]
    assert device["gaps_missing"] == 2 and device["gaps_suspect"] == 1100
    code, out, _ = run_cli(capsys, "gaps", "--db", str(path), "--json")
    gaps = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(gaps) == 1101
    assert sum(g["missing"] for g in gaps) == 2
    assert sum(1 for g in gaps if g["suspect"]) == 1100
    code, out, _ = run_cli(capsys, "devices", "--db", str(path))
    assert code == 0 and DEVICE in out


def _wire(message):
    return "routerwatch/%s/%s" % (message.device, message.type), _encode(message)
