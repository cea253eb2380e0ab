"""A hostile router can publish anything. Whatever it sends, decoding raises only ContractError,
Ingest never raises, and its counters say why each message was refused. What the decoder accepts
every store can hold: no NUL, no unpaired surrogate, no key said twice, anywhere in the payload."""
import json
import math
from dataclasses import asdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector_messages import DEVICE, PREFIX, anomaly, heartbeat, inventory, status
from routerwatch.contract import MAX_PAYLOAD_BYTES, ContractError, decode, encode
from routerwatch_collector.ingest import REJECT_REASONS, Ingest
from routerwatch_collector.store import SqliteStore

VALID = {m.type: json.loads(encode(m)) for m in
         (anomaly(1), heartbeat(1), status("online", 1), inventory())}

FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
# the narrower generators (one repeated key, one bad byte sequence) need fewer examples
FUZZ_NARROW = settings(FUZZ, max_examples=120)


@pytest.fixture
def fuzz_store(open_test_store):
    return open_test_store()


SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)


def unstorable_text():
    """Text no store can hold: an unpaired surrogate (a JSON \\uD800 escape) or NUL, anywhere."""
    return st.one_of(
        st.builds(lambda a, bad, b: a + bad + b, st.text(max_size=8), SURROGATES,
                  st.text(max_size=8)),
        st.builds(lambda a, b: a + "\x00" + b, st.text(max_size=8), st.text(max_size=8)))


def hostile_keys():
    return st.one_of(st.text(max_size=70), unstorable_text())


def hostile_values():
    """What a field can be replaced with: wrong types, edge numbers, huge strings, deep nests,
    unstorable text as values and as keys."""
    leaves = st.one_of(unstorable_text(),
        st.none(), st.booleans(), st.integers(), st.integers(min_value=2 ** 53 - 2,
                                                             max_value=2 ** 80),
        st.integers(min_value=-(2 ** 1100), max_value=-(2 ** 1000)),
        st.integers(min_value=2 ** 1000, max_value=2 ** 1100),
        st.floats(allow_nan=True, allow_infinity=True), st.just(math.nan),
        st.text(max_size=40), st.integers(1000, 1100).map(lambda n: "\u00e9" * n),
        st.just("x" * 70000), st.just("\u202e\x1b[31m"), st.just(DEVICE),
        st.sampled_from(["online", "offline", "anomaly", "high", "login.bruteforce", ""]))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(hostile_keys(), inner, max_size=6)),
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
            obj[draw(hostile_keys())] = draw(hostile_values())
        else:
            obj[key] = deep(draw(st.integers(3, 400)))
    return message_type, obj


def dumps_hostile(obj, ascii_only=True):
    """JSON text; surrogates as \\u escapes (ascii_only) or as the raw bytes a UTF-8 encoder
    that lets them pass writes (ED A0 80 ...: invalid UTF-8)."""
    try:
        return json.dumps(obj, allow_nan=True, ensure_ascii=ascii_only).encode(
            "utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return b"{"


def storable(value):
    """Every string, key and value, at any depth: valid UTF-8 and no NUL."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")
            if "\x00" in item:
                return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


class Pairs(list):
    """An object written pair by pair, so a key can appear twice."""


def render(value):
    if isinstance(value, dict):
        value = Pairs(value.items())
    if isinstance(value, Pairs):
        return "{%s}" % ",".join("%s:%s" % (json.dumps(k), render(v)) for k, v in value)
    if isinstance(value, list):
        return "[%s]" % ",".join(render(v) for v in value)
    return json.dumps(value)


@st.composite
def with_duplicate_key(draw):
    """A valid payload with one key said twice: at the top, or in any object inside it."""
    message_type = draw(st.sampled_from(sorted(VALID)))
    obj = json.loads(json.dumps(VALID[message_type]))
    objects = []
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            objects.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    target = draw(st.sampled_from(range(len(objects))))
    if not objects[target]:
        objects[target]["k"] = 1
    key = draw(st.sampled_from(sorted(objects[target])))
    second = draw(st.one_of(st.just(objects[target][key]), hostile_values()))
    first_or_last = draw(st.booleans())

    def build(value):
        if isinstance(value, dict):
            pairs = Pairs((k, build(v)) for k, v in value.items())
            if value is objects[target]:
                pairs.insert(0 if first_or_last else len(pairs), (key, second))
            return pairs
        if isinstance(value, list):
            return [build(v) for v in value]
        return value
    try:
        data = render(build(obj)).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return message_type, None
    return message_type, data if len(data) <= MAX_PAYLOAD_BYTES else None   # refused unread


INVALID_UTF8 = (b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80",
                b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80")


@st.composite
def with_invalid_bytes(draw):
    """A valid payload with bytes that are not UTF-8 put somewhere, most often inside a string."""
    message_type = draw(st.sampled_from(sorted(VALID)))
    data = json.dumps(VALID[message_type]).encode()
    quotes = [i for i, byte in enumerate(data) if byte == ord('"')]
    where = draw(st.one_of(st.sampled_from(quotes).map(lambda i: i + 1),
                           st.integers(0, len(data))))
    return message_type, data[:where] + draw(st.sampled_from(INVALID_UTF8)) + data[where:]


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_contract_error(data):
    try:
        decode(data)
    except ContractError:
        pass


@FUZZ
@given(near_valid(), st.booleans())
def test_near_valid_objects_raise_only_contract_error_and_what_passes_can_be_stored(
        case, ascii_only):
    message_type, obj = case
    try:
        payload = decode(dumps_hostile(obj, ascii_only), message_type)
    except ContractError:
        return
    assert storable(asdict(payload))


@FUZZ_NARROW
@given(with_duplicate_key())
def test_a_key_said_twice_at_any_depth_is_refused(case):
    message_type, data = case
    if data is None:
        return
    try:
        decode(data, message_type)
    except ContractError as exc:
        assert "duplicate key" in str(exc) or "not JSON" in str(exc)   # or invalid bytes first
    else:
        raise AssertionError("accepted a payload that repeats a key: %r" % data[:200])


@FUZZ_NARROW
@given(with_invalid_bytes())
def test_bytes_that_are_not_utf8_are_refused_wherever_they_are(case):
    message_type, data = case
    store = SqliteStore(":memory:")
    try:
        ingest = Ingest(store, prefix=PREFIX)
        assert ingest.handle("%s/%s/%s" % (PREFIX, DEVICE, message_type), data, 1.0e9) == \
            "rejected:not_json"
        ingest.tick(1.0e9)
        assert store.rejected() == {"not_json": 1}
    finally:
        store.close()


@FUZZ
@given(st.one_of(st.binary(max_size=512), near_valid().map(lambda c: dumps_hostile(c[1])),
                with_duplicate_key().map(lambda c: c[1] or b"{"),
                with_invalid_bytes().map(lambda c: c[1])),
       st.sampled_from(["anomaly", "heartbeat", "status", "inventory"]),
       st.sampled_from([DEVICE, "rw-other", "bad/level", "+", ""]))
def test_ingest_never_raises_and_counts_every_refusal_by_reason(fuzz_store, payload,
                                                                message_type, device):
    # one store, SQLite or PostgreSQL, for all examples (a database per example would be slow):
    # the rejected counts are compared before and after
    rejected_before = sum(fuzz_store.rejected().values())
    ingest = Ingest(fuzz_store, prefix=PREFIX)
    outcome = ingest.handle("%s/%s/%s" % (PREFIX, device, message_type), payload, 1.0e9)
    assert outcome in ("accepted", "duplicate") or outcome.startswith("rejected:")
    if outcome.startswith("rejected:"):
        reason = outcome.split(":", 1)[1]
        assert reason in REJECT_REASONS
        assert ingest.rejects == {reason: 1} and ingest.counters["rejected"] == 1
    ingest.tick(1.0e9)
    assert "unstorable" not in ingest.rejects   # whatever the decoder accepted is storable
    assert sum(fuzz_store.rejected().values()) - rejected_before == ingest.counters["rejected"]


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


def test_checking_every_string_of_a_deep_payload_with_many_siblings_stays_small():
    # 300 levels of 40-character keys, then 12,000 strings: naming each value's path up front
    # would cost a 12 kB string per value (150 MB); the check must stay in bounded memory
    import tracemalloc
    key = "k" * 40
    data = (('{"%s":' % key) * 300 + "[" + ",".join(['"x"'] * 12000) + "]" + "}" * 300).encode()
    assert len(data) <= MAX_PAYLOAD_BYTES
    tracemalloc.start()
    try:
        try:
            decode(data)
        except ContractError:
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, "peak %.1f MB" % (peak / 1e6)
