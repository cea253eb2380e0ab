"""Ingest: raw (topic, payload) pairs in, stored rows out; duplicates, gaps, rejects, silence."""
import pytest

from collector_messages import (DEVICE, PREFIX, RUN, T0, anomaly, heartbeat, inventory, status,
                                wire)
from routerwatch.contract import encode
from routerwatch_collector.ingest import Ingest, reject_reason
from routerwatch_collector.stores.sqlite import SqliteStore


@pytest.fixture
def store(open_test_store):
    return open_test_store()


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


def test_a_batch_of_many_devices_is_written_whole_with_its_gaps_and_counts(ingest, store):
    # more devices and anomalies than one multi-row statement holds
    devices = ["rw-b%05d" % n for n in range(700)]
    feed(ingest, [anomaly(1, device=d) for d in devices[:3]])
    ingest.flush(T0)
    batch = [anomaly(seq, device=d) for d in devices for seq in (1, 2)]
    batch += [anomaly(5, device=devices[0]),       # after 1, 2: 3 and 4 are missing
              anomaly(4, device=devices[1])]       # after 1, 2: 3 is missing
    feed(ingest, batch)
    stored = ingest.flush(T0 + 1)
    assert len(stored) == 2 * 700 - 3 + 2 and store.anomaly_count() == 2 * 700 + 2
    assert {(g["device"], g["first_seq"], g["last_seq"]) for g in store.gaps()} == {
        (devices[0], 3, 4), (devices[1], 3, 3)}
    counts = {row.device: row.anomalies for row in store.devices()}
    assert counts == dict({d: 2 for d in devices}, **{devices[0]: 3, devices[1]: 3})


def test_a_retained_replay_and_live_messages_of_one_device_in_one_batch(ingest, store):
    other_run = "fedcba9876543210"
    feed(ingest, [inventory(device="rw-known")], now=T0 - 100)
    ingest.flush(T0 - 100)
    feed(ingest, [inventory(device="rw-new")], now=T0, retained=True)
    feed(ingest, [anomaly(1, device="rw-new", run=other_run)], now=T0 + 5)
    feed(ingest, [inventory(device="rw-replayed")], now=T0, retained=True)
    feed(ingest, [inventory(device="rw-known", run=other_run)], now=T0, retained=True)
    ingest.flush(T0 + 5)
    rows = {row.device: row for row in store.devices()}
    assert (rows["rw-new"].first_seen, rows["rw-new"].last_seen, rows["rw-new"].run) == (
        T0, T0 + 5, other_run)
    assert (rows["rw-replayed"].first_seen, rows["rw-replayed"].last_seen) == (T0, T0)
    # a replay proves nothing about now: the known device keeps its run and last_seen
    assert (rows["rw-known"].last_seen, rows["rw-known"].run) == (T0 - 100, RUN)


@pytest.mark.parametrize("order, expected", [(("heartbeat", "stop"), "stopped"),
                                             (("stop", "heartbeat"), "online")])
def test_a_status_and_a_heartbeat_in_one_batch_apply_in_arrival_order(ingest, store, order,
                                                                       expected):
    feed(ingest, [status("online", 1), anomaly(1, device="rw-other")])
    ingest.flush(T0)
    messages = {"heartbeat": heartbeat(1), "stop": status("offline", 2)}
    feed(ingest, [messages[name] for name in order] + [anomaly(2, device="rw-other")],
         now=T0 + 1)
    ingest.flush(T0 + 1)
    rows = {row.device: row for row in store.devices()}
    assert rows[DEVICE].status == expected and rows["rw-other"].anomalies == 2


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


def test_a_clean_stop_not_followed_by_a_return_within_the_grace_is_a_silence(ingest, store):
    # `kill <pid>` or `/etc/init.d/routerwatch stop`: a clean offline, then nothing
    feed(ingest, [status("online", 1), heartbeat(1)], now=T0)
    feed(ingest, [status("offline", 2)], now=T0 + 5)
    assert silent(ingest.tick(T0 + 5)) == []
    assert silent(ingest.tick(T0 + 5 + 899)) == []           # a reboot or upgrade takes this
    (alarm,) = silent(ingest.tick(T0 + 5 + 901))
    assert alarm.evidence["reason"] == "stopped" and alarm.evidence["stop_grace"] == 900
    assert alarm.evidence["last_alive"] == T0 + 5 and alarm.evidence["agent_run"] == RUN
    assert "stopped 15 min ago" in alarm.summary
    assert silent(ingest.tick(T0 + 10000)) == []             # once per stop
    assert store.devices()[0].silent_since == T0 + 5 + 901
    # it comes back, stops again, and this time stays away: a new alarm
    feed(ingest, [status("online", 1, run="fedcba9876543210")], now=T0 + 20000)
    feed(ingest, [status("offline", 3, run="fedcba9876543210")], now=T0 + 20100)
    assert len(silent(ingest.tick(T0 + 20100 + 901))) == 1


def test_a_reboot_or_upgrade_back_within_the_grace_is_not_a_silence(ingest):
    feed(ingest, [status("online", 1), heartbeat(1)], now=T0)
    feed(ingest, [status("offline", 2)], now=T0 + 5)           # procd stops it on reboot
    new_run = "fedcba9876543210"
    feed(ingest, [status("online", 1, run=new_run)], now=T0 + 400)     # the new firmware's
    for n in range(1, 12):
        feed(ingest, [heartbeat(n, run=new_run)], now=T0 + 400 + 60 * n)
        assert silent(ingest.tick(T0 + 400 + 60 * n)) == []
    assert T0 + 400 + 60 * 11 > T0 + 5 + 900                   # well past the grace


def test_the_stop_grace_counts_only_while_the_collector_listens(store):
    ingest = Ingest(store, stop_grace=60.0)
    feed(ingest, [status("online", 1), status("offline", 2)], now=T0)
    # the collector was cut off from the broker until T0 + 1000: the router may have come back
    assert silent(ingest.tick(T0 + 1001, listening_since=T0 + 1000)) == []
    assert len(silent(ingest.tick(T0 + 1061, listening_since=T0 + 1000))) == 1


def test_without_a_stop_grace_a_clean_stop_is_never_a_silence(store):
    ingest = Ingest(store, stop_grace=None)
    feed(ingest, [status("online", 1), heartbeat(1)], now=T0)
    feed(ingest, [status("offline", 2)], now=T0 + 5)
    assert silent(ingest.tick(T0 + 10 ** 6)) == []


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


# ---------------------------------------------------------------- strings no store can hold

def raw_anomaly(**replace):
    """An anomaly's JSON text with fields replaced by raw JSON fragments (escapes kept as sent)."""
    import json
    obj = json.loads(encode(anomaly(1)))
    text = json.dumps({k: v for k, v in obj.items() if k not in replace})
    extra = ",".join('"%s":%s' % (k, v) for k, v in replace.items())
    return (text[:-1] + "," + extra + "}").encode("ascii")


@pytest.mark.parametrize("fragment", [
    {"summary": r'"\ud800"'},                                  # a lone high surrogate
    {"summary": r'"ok \udfff"'},                               # a lone low surrogate
    {"summary": r'"\ude00\ud83d"'},                            # a pair in the wrong order
    {"summary": r'"nul \u0000 inside"'},                       # PostgreSQL refuses NUL in text
    {"evidence": r'{"path":"/etc/init.d/\udcff"}'},            # a value inside evidence
    {"evidence": r'{"\ud800":"key"}'},                         # a key inside evidence
    {"evidence": r'{"a":[1,{"c":"x\u0000"}]}'},                # at depth, inside a list
    {"evidence": r'{"a":[["x","\udbff"]]}'},                   # a list inside a list
    {"kind": r'"login.\ud800"'},                               # a field checked by a pattern
    {r"\udc80": "1"},                                          # an unknown top-level key
])
def test_a_string_no_store_can_hold_is_rejected_as_an_invalid_field_anywhere(
        ingest, store, fragment):
    topic = "routerwatch/%s/anomaly" % DEVICE
    assert ingest.handle(topic, raw_anomaly(**fragment), T0) == "rejected:invalid_field"
    feed(ingest, [anomaly(2, device="rw-0a1b2c3d4e60")])
    ingest.flush(T0)             # the batch is written: nothing unstorable got into it
    assert store.rejected() == {"invalid_field": 1}
    assert [a.device for a in store.query_anomalies()] == ["rw-0a1b2c3d4e60"]


def test_inventory_and_heartbeat_strings_are_checked_too(ingest, store):
    import json
    inv = json.loads(encode(inventory()))
    inv["firmware"] = {"model": "x"}
    text = json.dumps(inv).replace('"model"', r'"mo\u0000del"').encode()
    assert ingest.handle("routerwatch/%s/inventory" % DEVICE, text, T0) == \
        "rejected:invalid_field"
    beat = json.dumps(json.loads(encode(heartbeat(1)))).replace('"lines"', r'"\udcff"').encode()
    assert ingest.handle("routerwatch/%s/heartbeat" % DEVICE, beat, T0) == \
        "rejected:invalid_field"
    ingest.flush(T0)
    assert store.rejected() == {"invalid_field": 2}


@pytest.mark.parametrize("topic_type, payload", [
    ("anomaly", encode(anomaly(1)).replace(b'"seq":1', b'"seq":1,"seq":2')),
    ("anomaly", encode(anomaly(1)).replace(b'"severity":"high"',
                                           b'"severity":"info","severity":"high"')),
    ("anomaly", encode(anomaly(1)).replace(b'"failures":10', b'"failures":10,"failures":1')),
    ("anomaly", encode(anomaly(1, a=[{"b": 1}])).replace(b'{"b":1}',
                                                                     b'{"b":1,"b":1}')),
    ("inventory", encode(inventory()).replace(b'"model"', b'"model":"x","model"')),
    ("heartbeat", encode(heartbeat(1)).replace(b'"lines":10', b'"lines":10,"lines":0')),
])
def test_a_key_said_twice_anywhere_is_rejected_even_with_the_same_value(
        ingest, store, topic_type, payload):
    # json.loads keeps the last value; another parser may keep the first: one payload, two
    # meanings. Refused whole, whichever value would have won.
    assert ingest.handle("routerwatch/%s/%s" % (DEVICE, topic_type), payload, T0) == \
        "rejected:duplicate_key"
    ingest.flush(T0)
    assert store.rejected() == {"duplicate_key": 1} and store.anomaly_count() == 0


def test_paired_surrogate_escapes_are_one_character_and_are_stored(ingest, store):
    assert ingest.handle("routerwatch/%s/anomaly" % DEVICE,
                         raw_anomaly(summary=r'"smile \ud83d\ude00"'), T0) == "accepted"
    ingest.flush(T0)
    assert store.query_anomalies()[0].summary == "smile \U0001f600"


def test_the_text_of_a_reject_quotes_hostile_bytes_in_a_form_the_store_holds(ingest, store):
    # the decoder names what it refused; the name itself must not poison the rejected table
    from routerwatch_collector.ingest import storable_detail
    assert storable_detail("bad key \ud800 and \x00") == "bad key \\ud800 and \\x00"
    ingest._reject("unknown_field", T0, DEVICE, "unknown field(s): \udcff\x00")
    ingest.flush(T0)
    assert store.rejected() == {"unknown_field": 1}


# ---------------------------------------------------------------- one message never blocks others

def refuse_inserts(store, table, message, when="true"):
    """A trigger that makes `store` refuse inserts into `table` (where `when`, SQL on NEW):
    a store with a limit the contract does not know, or a store that is down."""
    name = "refuse_%s" % table
    if isinstance(store, SqliteStore):
        store._x("CREATE TRIGGER %s BEFORE INSERT ON %s WHEN %s BEGIN "
                 "SELECT RAISE(ABORT, '%s'); END" % (name, table, when, message))
        return
    store._db.execute(
        "CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF %s THEN "
        "RAISE EXCEPTION '%s'; END IF; RETURN NEW; END $$" % (name, when, message))
    store._db.execute("CREATE TRIGGER %s BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION %s()"
                      % (name, table, name))


def accept_inserts(store, table):
    name = "refuse_%s" % table
    if isinstance(store, SqliteStore):
        store._x("DROP TRIGGER %s" % name)
    else:
        store._db.execute("DROP TRIGGER %s ON %s" % (name, table))
        store._db.execute("DROP FUNCTION %s" % name)


def poisoned(seq, device):
    a = anomaly(seq, device=device)
    return type(a)(**dict(a.__dict__, summary="poison " + a.summary))


def test_a_message_the_store_refuses_is_rejected_and_the_rest_of_its_batch_stored(ingest, store):
    # a message that passes the contract but that this store cannot hold (PostgreSQL and NUL,
    # a driver's limit, a constraint): the trigger plays that store
    refuse_inserts(store, "anomalies", "this store cannot hold it",
                   when="NEW.summary LIKE 'poison%'")
    outcomes = feed(ingest, [anomaly(1, device="rw-good-a"), poisoned(1, "rw-bad"),
                             heartbeat(1, device="rw-good-b"), anomaly(2, device="rw-good-a")])
    assert outcomes == ["accepted"] * 4
    assert ingest.handle("routerwatch/rw-good-b/anomaly", b"not json", T0) == "rejected:not_json"
    stored = ingest.flush(T0)
    assert sorted((a.device, a.seq) for a in stored) == [("rw-good-a", 1), ("rw-good-a", 2)]
    assert store.rejected() == {"not_json": 1, "unstorable": 1}
    assert ingest.rejects == {"not_json": 1, "unstorable": 1}
    assert ingest.pending() == 0                     # nothing is retried forever
    assert {d.device: d.heartbeats for d in store.devices()}["rw-good-b"] == 1
    # and the batches after it are written as a whole again
    feed(ingest, [anomaly(3, device="rw-good-a")])
    assert [a.seq for a in ingest.flush(T0 + 1)] == [3]


def test_a_store_that_takes_nothing_keeps_the_batch_and_its_rejects_until_it_is_back(
        ingest, store):
    for table in ("anomalies", "devices", "rejected"):
        refuse_inserts(store, table, "disk full")
    feed(ingest, [anomaly(1), anomaly(2)])
    ingest.handle("routerwatch/%s/anomaly" % DEVICE, b"[]", T0)
    for attempt in range(3):
        with pytest.raises(Exception):
            ingest.flush(T0 + attempt)
        assert ingest.pending() == 3                 # two messages and one reject reason
    for table in ("anomalies", "devices", "rejected"):
        accept_inserts(store, table)
    assert [a.seq for a in ingest.flush(T0 + 5)] == [1, 2]
    assert store.rejected() == {"not_object": 1}     # counted once, not once per attempt
    assert "unstorable" not in ingest.rejects


def test_a_heartbeat_still_queued_for_a_lagging_collector_is_late_not_missed(ingest, store):
    feed(ingest, [status("online", 1), heartbeat(1, interval=60.0)], now=T0)
    ingest.flush(T0)
    lagging = Ingest(store, prefix=PREFIX, run_id="c011ec7000000002")
    lagging.tick(T0 + 400, caught_up_at=T0 + 30)     # handed its queue only up to T0 + 30
    assert [a.kind for a in ingest.tick(T0 + 400)] == []
    # caught up: the heartbeats never came, and one of the two says so, once
    raised = lagging.tick(T0 + 401, caught_up_at=T0 + 401) + ingest.tick(T0 + 402)
    assert [a.kind for a in raised] == ["agent.silent"]


def test_heartbeats_a_killed_collector_took_with_it_are_our_silence_not_the_routers(
        ingest, store):
    # three collectors of one group share the store; the router heartbeats every 10 s (QoS 0)
    feed(ingest, [status("online", 1), heartbeat(1, interval=10.0)], now=T0)
    ingest.tick(T0, listening_since=T0 - 100, caught_up_at=T0)
    victim = Ingest(store, prefix=PREFIX, run_id="c011ec7000000002")
    victim.tick(T0 + 5, listening_since=T0 - 100, caught_up_at=T0 + 5)
    # the heartbeats of T0 + 10 and T0 + 20 were handed to the victim, which was SIGKILLed at
    # T0 + 25 before it stored them; the one of T0 + 30 the broker routed to its session while
    # it was away, and dropped (QoS 0); it is back under its name at T0 + 32 (a new process)
    restarted = Ingest(store, prefix=PREFIX, run_id="c011ec7000000003")
    restarted.tick(T0 + 32, listening_since=T0 + 32, caught_up_at=T0 + 32)
    # the victim's progress goes stale at T0 + 35: every live collector has caught up, and the
    # router was not heard for 38 s, but the collectors were not listening all that time
    for now in (T0 + 38, T0 + 50, T0 + 64):
        raised = ingest.tick(now, listening_since=T0 - 100, caught_up_at=now) + \
            restarted.tick(now, listening_since=T0 + 32, caught_up_at=now)
        assert [a.kind for a in raised] == [], now
    # a router that really stopped is still reported: once every collector has listened for
    # three intervals (since the victim died, at the latest T0 + 35), and only once
    raised = ingest.tick(T0 + 66, listening_since=T0 - 100, caught_up_at=T0 + 66) + \
        restarted.tick(T0 + 67, listening_since=T0 + 32, caught_up_at=T0 + 67)
    assert [(a.kind, a.evidence["reason"]) for a in raised] == [("agent.silent", "heartbeats")]


def test_a_reconnection_of_any_collector_of_the_group_restarts_the_heartbeat_count(
        ingest, store):
    feed(ingest, [status("online", 1), heartbeat(1, interval=10.0)], now=T0)
    ingest.tick(T0, listening_since=T0 - 100, caught_up_at=T0)
    # another collector of the group lost its connection and is back at T0 + 20: what the
    # broker routed to it meanwhile (QoS 0) is gone, whoever judges the silence
    other = Ingest(store, prefix=PREFIX, run_id="c011ec7000000002")
    other.tick(T0 + 20, listening_since=T0 + 20, caught_up_at=T0 + 20)
    other.tick(T0 + 44, listening_since=T0 + 20, caught_up_at=T0 + 44)
    assert ingest.tick(T0 + 45, listening_since=T0 - 100, caught_up_at=T0 + 45) == []
    other.tick(T0 + 51, listening_since=T0 + 20, caught_up_at=T0 + 51)
    raised = ingest.tick(T0 + 51, listening_since=T0 - 100, caught_up_at=T0 + 51)
    assert [a.kind for a in raised] == ["agent.silent"]
