"""The message contract: what the agent sends, the collector accepts, and nothing else."""
import json

import pytest

from routerwatch import contract
from routerwatch.contract import Anomaly, ContractError, Heartbeat, Inventory, Status

RUN = "0123456789abcdef"


def make_anomaly(**changes):
    fields = dict(device="rw-001122334455", run=RUN, seq=1, time=1764043891.5,
                  kind="login.bruteforce", severity="high",
                  summary="12 failed logins from 203.0.113.9 in 60 s",
                  evidence={"source_ip": "203.0.113.9", "failures": 12, "users": ["root"]})
    fields.update(changes)
    return Anomaly(**fields)


def test_anomaly_round_trips_field_by_field():
    anomaly = make_anomaly()
    decoded = contract.decode(contract.encode(anomaly), expected_type="anomaly")
    assert decoded == anomaly


def test_every_payload_type_round_trips():
    payloads = [
        Heartbeat(device="r1", run=RUN, seq=3, time=1.0, interval=60.0, uptime=120.0,
                  rss_kb=14000, cpu_percent=0.5, spool_depth=0,
                  counters={"lines": 10}, drops={"log_queue": 0}),
        Status(device="r1", run=RUN, seq=0, time=1.0, state="offline"),
        Inventory(device="r1", run=RUN, seq=1, time=1.0, agent_version="0.1.0",
                  firmware={"DISTRIB_RELEASE": "23.05.3", "board": "x86/64"},
                  firmware_hash="a" * 64, baseline_hash="", package_manager="opkg"),
    ]
    for payload in payloads:
        assert contract.decode(contract.encode(payload)) == payload


def test_topics_follow_the_design_table():
    assert contract.topic("routerwatch", "r1", "anomaly") == "routerwatch/r1/anomaly"
    assert contract.subscription("routerwatch", "heartbeat") == "routerwatch/+/heartbeat"
    assert contract.subscription("rw", "status", "collectors") == "$share/collectors/rw/+/status"
    assert contract.parse_topic("routerwatch", "routerwatch/r1/inventory") == ("r1", "inventory")


@pytest.mark.parametrize("topic", ["other/r1/anomaly", "routerwatch/r1/x", "routerwatch/a/b/anomaly",
                                   "routerwatch/+/anomaly", "routerwatch//anomaly"])
def test_bad_topics_are_rejected(topic):
    with pytest.raises(ContractError):
        contract.parse_topic("routerwatch", topic)


def _wire(**changes):
    obj = json.loads(contract.encode(make_anomaly()))
    obj.update(changes)
    return json.dumps(obj).encode()


@pytest.mark.parametrize("changes, reason", [
    ({"v": 2}, "unknown schema version"),
    ({"v": True}, "unknown schema version"),
    ({"type": "bogus"}, "unknown message type"),
    ({"seq": True}, "seq"),
    ({"seq": -1}, "seq"),
    ({"seq": "1"}, "seq"),
    ({"severity": "urgent"}, "severity"),
    ({"kind": "Login Bruteforce"}, "kind"),
    ({"summary": "two\nlines"}, "one line"),
    ({"summary": "x" * 241}, "summary"),
    ({"device": "a/b"}, "device"),
    ({"device": "#"}, "device"),
    ({"run": "xyz"}, "run"),
    ({"evidence": {"user": "u" * 1025}}, "longer than"),
    ({"evidence": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, "nests deeper"),
    ({"evidence": {"list": list(range(257))}}, "more than 256 items"),
    ({"evidence": []}, "evidence must be an object"),
    ({"extra": 1}, "unknown field"),
    ({"count": 0}, "count"),
])
def test_strict_decoding_names_the_problem(changes, reason):
    with pytest.raises(ContractError, match=reason):
        contract.decode(_wire(**changes))


def test_missing_fields_and_non_json_are_rejected():
    obj = json.loads(contract.encode(make_anomaly()))
    del obj["kind"]
    with pytest.raises(ContractError, match="missing field"):
        contract.decode(json.dumps(obj))
    for junk in (b"", b"\xff\xfe", b"[1,2]", b'{"v": NaN}', b"1e999999", b"null"):
        with pytest.raises(ContractError):
            contract.decode(junk)


def test_oversized_payload_is_rejected_before_parsing():
    with pytest.raises(ContractError, match="larger than"):
        contract.decode(b" " * (contract.MAX_PAYLOAD_BYTES + 1))


def test_type_must_match_the_topic():
    with pytest.raises(ContractError, match="arrived on the heartbeat topic"):
        contract.decode(contract.encode(make_anomaly()), expected_type="heartbeat")


def test_encode_refuses_what_decode_would_refuse():
    with pytest.raises(ContractError):
        contract.encode(make_anomaly(severity="nope"))


def test_clip_marks_cut_text():
    assert contract.clip("abc", 5) == "abc"
    clipped = contract.clip("a" * 10, 5)
    assert len(clipped) == 5 and clipped.endswith("\u2026")
