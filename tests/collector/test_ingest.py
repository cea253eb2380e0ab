"""Ingest: raw (topic, payload) pairs in, stored rows out; duplicates, gaps, rejects, silence."""
import pytest

from collector_messages import (DEVICE, PREFIX, RUN, T0, anomaly, heartbeat, inventory, status,
                                wire)
from routerwatch.contract import encode
from routerwatch_collector.ingest import Ingest, reject_reason
from routerwatch_collector.store import SqliteStore


@pytest.fixture
def store():
    s = SqliteStore(":memory:")
    yield s
    s.close()


@pytest.fixture
def ingest(store):
    return Ingest(store, prefix=PREFIX, missed_heartbeats=3, run_id="c011ec7000000001")


def feed(ingest, messages, now=T0, retained=False):
    return [ingest.handle(*wire(m), now=now, retained=retained) for m in messages]


def test_a_valid_anomaly_is_stored_once_even_when_qos1_delivers_it_three_times(ingest, store):
    outcomes = feed(ingest, [anomaly(1), anomaly(1), anomaly(1)])
    assert outcomes == ["accepted", "duplicate", "duplicate"]
    (stored,) = ingest.flush(T0)
    assert (stored.device, stored.run, stored.seq, stored.kind) == (DEVICE, RUN, 1,
                                                                     "login.bruteforce")
    assert stored.evidence["source_ip"] == "203.0.113.7"
    assert store.anomaly_count() == 1 and ingest.counters["duplicates"] == 2


def test_a_redelivery_after_the_memory_window_is_still_dropped_by_the_store(store):
    ingest = Ingest(store, dedupe_window=16)
    feed(ingest, [anomaly(1)])
    ingest.flush(T0)
    feed(ingest, [anomaly(n) for n in range(2, 40)])      # pushes seq 1 out of the window
    ingest.flush(T0 + 1)
    assert feed(ingest, [anomaly(1)], now=T0 + 2) == ["accepted"]
    assert ingest.flush(T0 + 2) == []
    assert store.anomaly_count() == 39


def test_a_payload_speaking_for_another_device_is_rejected(ingest, store):
    topic, payload = wire(anomaly(1, device="rw-victim"))
    assert ingest.handle(topic.replace("rw-victim", "rw-attacker"), payload, T0) == \
        "rejected:device_mismatch"
    ingest.flush(T0)
    assert store.anomaly_count() == 0
    assert store.rejected() == {"device_mismatch": 1}
    assert store.devices() == []       # a rejected message creates no device


@pytest.mark.parametrize("topic, payload, reason", [
    ("routerwatch/%s/anomaly" % DEVICE, b"\xff\xfe", "not_json"),
    ("routerwatch/%s/anomaly" % DEVICE, b"[1, 2]", "not_object"),
    ("routerwatch/%s/anomaly" % DEVICE, b"x" * (64 * 1024 + 1), "oversized"),
    ("routerwatch/%s/anomaly" % DEVICE,
     encode(anomaly(1)).replace(b'"v":1', b'"v":2'), "version"),
    ("routerwatch/%s/anomaly" % DEVICE,
     encode(anomaly(1)).replace(b'"v":1', b'"v":true'), "version"),
    ("routerwatch/%s/heartbeat" % DEVICE, encode(anomaly(1)), "type_mismatch"),
    ("routerwatch/%s/anomaly" % DEVICE,
     encode(anomaly(1)).replace(b'"count":1', b'"count":1,"extra":1'), "unknown_field"),
    ("routerwatch/%s/anomaly" % DEVICE,
     encode(anomaly(1)).replace(b'"count":1', b'"count":0'), "invalid_field"),
    ("routerwatch/%s/anomaly" % DEVICE,
     encode(anomaly(1)).replace(b'"seq":1,', b""), "missing_field"),
    ("routerwatch/%s/anomaly" % DEVICE,
     encode(anomaly(1)).replace(b'"seq":1', b'"seq":true'), "invalid_field"),
    ("routerwatch/%s/anomaly" % DEVICE,
     encode(anomaly(1)).replace(b'"severity":"high"', b'"severity":"urgent"'), "invalid_field"),
    ("routerwatch/a/b/anomaly", encode(anomaly(1)), "topic"),
    ("other/%s/anomaly" % DEVICE, encode(anomaly(1)), "topic"),
    ("routerwatch/bad+id/anomaly", encode(anomaly(1)), "topic"),
    (b"routerwatch/\xff/anomaly", encode(anomaly(1)), "topic"),
])
def test_malformed_messages_are_rejected_and_counted_by_reason(ingest, store, topic, payload,
                                                               reason):
    assert ingest.handle(topic, payload, T0) == "rejected:" + reason
    ingest.flush(T0)
    assert ingest.rejects == {reason: 1}
    assert store.rejected() == {reason: 1}
    assert store.anomaly_count() == 0


def test_every_contract_error_maps_to_a_known_reason():
    assert reject_reason("payload is not JSON: Expecting value") == "not_json"
    assert reject_reason("message type 'status' arrived on the anomaly topic") == "type_mismatch"
    assert reject_reason("seq must be an integer 0..2^53") == "invalid_field"


def test_a_gap_in_anomaly_sequence_numbers_is_recorded_and_filled_when_the_rest_arrives(
        ingest, store):
    feed(ingest, [anomaly(1), anomaly(2), anomaly(5)])
    ingest.flush(T0)
    (gap,) = store.gaps()
    assert (gap["type"], gap["first_seq"], gap["last_seq"], gap["missing"]) == ("anomaly", 3, 4, 2)
    feed(ingest, [anomaly(4), anomaly(3)], now=T0 + 5)      # the spool replays them late
    ingest.flush(T0 + 5)
    (gap,) = store.gaps()
    assert gap["missing"] == 0 and ingest.counters["late"] == 2
    assert store.anomaly_count() == 5


def test_a_run_whose_first_anomaly_is_not_number_one_has_lost_the_ones_before(ingest, store):
    feed(ingest, [anomaly(3)])
    ingest.flush(T0)
    assert [(g["first_seq"], g["last_seq"]) for g in store.gaps()] == [(1, 2)]


def test_heartbeat_gaps_are_recorded_per_run_and_a_new_run_starts_fresh(ingest, store):
    feed(ingest, [heartbeat(1), heartbeat(2), heartbeat(6)])
    feed(ingest, [heartbeat(1, run="fedcba9876543210")])
    ingest.flush(T0)
    assert [(g["run"], g["type"], g["first_seq"], g["last_seq"]) for g in store.gaps()] == [
        (RUN, "heartbeat", 3, 5)]
    assert store.devices()[0].gaps_missing == 3


def test_gaps_are_found_across_batches_and_across_a_collector_restart(store):
    first = Ingest(store)
    feed(first, [anomaly(1), heartbeat(1)])
    first.flush(T0)
    second = Ingest(store)           # a new process knows nothing in memory
    feed(second, [anomaly(3), heartbeat(3)], now=T0 + 120)
    second.flush(T0 + 120)
    assert sorted((g["type"], g["first_seq"]) for g in store.gaps()) == [
        ("anomaly", 2), ("heartbeat", 2)]


def test_the_whole_message_set_lands_in_the_device_row(ingest, store):
    feed(ingest, [status("online", 1), inventory(), heartbeat(1), anomaly(1)])
    ingest.flush(T0)
    (row,) = store.devices()
    assert (row.device, row.run, row.status, row.anomalies, row.heartbeats) == (
        DEVICE, RUN, "online", 1, 1)
    assert row.firmware["model"] == "TP-Link Archer C7 v5"


# ----------------------------------------------------------------------------- agent.silent

def silent(stored):
    return [a for a in stored if a.kind == "agent.silent"]


def test_missing_three_heartbeats_raises_agent_silent_once_per_silence(ingest, store):
    feed(ingest, [status("online", 1), heartbeat(1, interval=60.0)], now=T0)
    assert silent(ingest.tick(T0 + 179)) == []              # 2.98 intervals: not yet
    (alarm,) = silent(ingest.tick(T0 + 181))
    assert (alarm.device, alarm.run, alarm.severity, alarm.origin) == (
        DEVICE, "c011ec7000000001", "high", "collector")
    assert alarm.evidence["reason"] == "heartbeats"
    assert alarm.evidence["missed_heartbeats"] == 3 and alarm.evidence["agent_run"] == RUN
    assert silent(ingest.tick(T0 + 600)) == []               # same silence: no second alarm
    feed(ingest, [heartbeat(2, interval=60.0)], now=T0 + 700)  # it speaks again ...
    assert silent(ingest.tick(T0 + 700)) == []
    (again,) = silent(ingest.tick(T0 + 700 + 181))           # ... and falls silent again
    assert again.seq == alarm.seq + 1
    assert store.devices()[0].silent_since == T0 + 700 + 181


def test_the_heartbeats_own_interval_sets_the_deadline(ingest):
    feed(ingest, [heartbeat(1, interval=10.0)], now=T0)
    assert len(silent(ingest.tick(T0 + 31))) == 1


def test_the_last_will_raises_agent_silent_at_once(ingest, store):
    feed(ingest, [status("online", 1), heartbeat(1)], now=T0)
    ingest.tick(T0 + 1)
    feed(ingest, [status("offline", 0)], now=T0 + 5)
    (alarm,) = silent(ingest.tick(T0 + 5))
    assert alarm.evidence["reason"] == "last_will"
    assert "Last Will" in alarm.summary
    assert silent(ingest.tick(T0 + 1000)) == []


def test_a_clean_stop_is_not_a_silence(ingest):
    feed(ingest, [status("online", 1), heartbeat(1)], now=T0)
    feed(ingest, [status("offline", 2)], now=T0 + 5)
    assert silent(ingest.tick(T0 + 5)) == []
    assert silent(ingest.tick(T0 + 10000)) == []


def test_a_retained_last_will_replayed_to_a_restarted_collector_does_not_alarm_twice(store):
    first = Ingest(store)
    feed(first, [status("online", 1), heartbeat(1)], now=T0)
    feed(first, [status("offline", 0)], now=T0 + 5)
    assert len(silent(first.tick(T0 + 5))) == 1
    second = Ingest(store)            # restarted: the broker replays the retained Last Will
    feed(second, [status("offline", 0)], now=T0 + 50, retained=True)
    assert silent(second.tick(T0 + 50)) == []
    assert store.devices()[0].last_seen == T0 + 5   # a replay is not a sign of life


def test_two_collectors_on_one_store_raise_one_alarm(store):
    a, b = Ingest(store), Ingest(store)
    feed(a, [heartbeat(1)], now=T0)
    a.flush(T0)
    assert len(silent(a.tick(T0 + 500)) + silent(b.tick(T0 + 500))) == 1


def test_a_device_never_heard_with_a_heartbeat_is_not_declared_silent(ingest):
    feed(ingest, [anomaly(1)], now=T0)
    assert silent(ingest.tick(T0 + 100000)) == []


def test_an_announced_interval_of_zero_does_not_turn_every_tick_into_a_silence(ingest):
    feed(ingest, [heartbeat(1, interval=0.0)], now=T0)
    assert silent(ingest.tick(T0 + 1)) == []
    assert len(silent(ingest.tick(T0 + 16))) == 1        # 3 x the 5 s floor


def test_the_last_will_of_a_run_the_router_already_replaced_is_not_a_silence(ingest, store):
    new_run = "fedcba9876543210"
    feed(ingest, [status("online", 1), heartbeat(1)], now=T0)
    feed(ingest, [status("online", 1, run=new_run), heartbeat(1, run=new_run)], now=T0 + 60)
    feed(ingest, [status("offline", 0)], now=T0 + 61)        # the old run's will, late
    assert silent(ingest.tick(T0 + 61)) == []
    (row,) = store.devices()
    assert (row.run, row.status) == (new_run, "online") and ingest.counters["stale"] == 1


def test_heartbeats_due_while_the_collector_was_not_listening_were_not_missed_by_the_router(
        ingest):
    feed(ingest, [heartbeat(1, interval=60.0)], now=T0)
    ingest.flush(T0)
    # the broker was down from T0 + 10 to T0 + 1000; the collector is back since T0 + 1000
    assert silent(ingest.tick(T0 + 1001, listening_since=T0 + 1000)) == []
    assert silent(ingest.tick(T0 + 1179, listening_since=T0 + 1000)) == []
    assert len(silent(ingest.tick(T0 + 1181, listening_since=T0 + 1000))) == 1
