"""A hostile router can publish anything. Whatever it sends, decoding raises only ContractError,
Ingest never raises, and its counters say why each message was refused."""
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector_messages import DEVICE, PREFIX, anomaly, heartbeat, inventory, status
from routerwatch.contract import ContractError, decode, encode
from routerwatch_collector.ingest import REJECT_REASONS, Ingest
from routerwatch_collector.store import SqliteStore

VALID = {m.type: json.loads(encode(m)) for m in
         (anomaly(1), heartbeat(1), status("online", 1), inventory())}

FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def hostile_values():
    """What a field can be replaced with: wrong types, edge numbers, huge strings, deep nests."""
    leaves = st.one_of(
        st.none(), st.booleans(), st.integers(), st.integers(min_value=2 ** 53 - 2,
                                                             max_value=2 ** 80),
        st.integers(min_value=-(2 ** 1100), max_value=-(2 ** 1000)),
        st.integers(min_value=2 ** 1000, max_value=2 ** 1100),
        st.floats(allow_nan=True, allow_infinity=True), st.just(math.nan),
        st.text(max_size=40), st.integers(1000, 1100).map(lambda n: "\u00e9" * n),
        st.just("x" * 70000), st.just("\u202e\x1b[31m"), st.just(DEVICE),
        st.sampled_from(["online", "offline", "anomaly", "high", "login.bruteforce", ""]))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=70), inner, max_size=6)),
        max_leaves=30)


def deep(levels):
    value = 1
    for _ in range(levels):
        value = {"a": value}
    return value


@st.composite
def near_valid(draw):
    """A valid payload of some type with a few fields replaced, dropped or added."""
    message_type = draw(st.sampled_from(sorted(VALID)))
    obj = dict(VALID[message_type])
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "drop", "add", "deep"]))
        key = draw(st.sampled_from(sorted(obj) or ["v"]))
        if action == "replace":
            obj[key] = draw(hostile_values())
        elif action == "drop":
            obj.pop(key, None)
        elif action == "add":
            obj[draw(st.text(max_size=20))] = draw(hostile_values())
        else:
            obj[key] = deep(draw(st.integers(3, 400)))
    return message_type, obj


def dumps_hostile(obj):
    try:
        return json.dumps(obj, allow_nan=True).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return b"{"


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_contract_error(data):
    try:
        decode(data)
    except ContractError:
        pass


@FUZZ
@given(near_valid())
def test_near_valid_objects_raise_only_contract_error(case):
    message_type, obj = case
    try:
        decode(dumps_hostile(obj), message_type)
    except ContractError:
        pass


@FUZZ
@given(st.one_of(st.binary(max_size=512), near_valid().map(lambda c: dumps_hostile(c[1]))),
       st.sampled_from(["anomaly", "heartbeat", "status", "inventory"]),
       st.sampled_from([DEVICE, "rw-other", "bad/level", "+", ""]))
def test_ingest_never_raises_and_counts_every_refusal_by_reason(payload, message_type, device):
    store = SqliteStore(":memory:")
    try:
        ingest = Ingest(store, prefix=PREFIX)
        outcome = ingest.handle("%s/%s/%s" % (PREFIX, device, message_type), payload, 1.0e9)
        assert outcome in ("accepted", "duplicate") or outcome.startswith("rejected:")
        if outcome.startswith("rejected:"):
            reason = outcome.split(":", 1)[1]
            assert reason in REJECT_REASONS
            assert ingest.rejects == {reason: 1} and ingest.counters["rejected"] == 1
        ingest.tick(1.0e9)                    # whatever was accepted is storable
        assert sum(store.rejected().values()) == ingest.counters["rejected"]
    finally:
        store.close()


def test_an_integer_too_large_for_a_float_is_a_contract_error_not_an_overflow():
    obj = dict(VALID["heartbeat"], time=10 ** 400)
    try:
        decode(json.dumps(obj).encode(), "heartbeat")
    except ContractError as exc:
        assert "time" in str(exc)
    else:
        raise AssertionError("accepted a time of 10**400")


def test_nesting_deeper_than_the_parser_allows_is_a_contract_error():
    text = b'{"v":1,"type":"anomaly","evidence":' + b"[" * 100000 + b"]" * 100000 + b"}"
    try:
        decode(text[:64 * 1024 - 2] + b"}}")
    except ContractError:
        pass
