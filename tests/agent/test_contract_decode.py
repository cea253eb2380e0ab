"""contract.decode() against a plain reference decoder: the same payload or the same error for any
bytes, well-formed or hostile (decode takes shortcuts for what agents send; they must not change
what is accepted, what is rejected, or the error text)."""
import dataclasses
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routerwatch import contract, jsonio
from routerwatch.contract import Anomaly, ContractError, Heartbeat, Status

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RUN = "0123456789abcdef"


def reference_decode(data, expected_type=None):
    """decode() written the straightforward way: every check in turn, every payload walked."""
    if not isinstance(data, (bytes, bytearray, str)):
        raise ContractError("payload must be bytes")
    if len(data) > contract.MAX_PAYLOAD_BYTES:
        raise ContractError("payload is larger than %d bytes" % contract.MAX_PAYLOAD_BYTES)
    try:
        obj = jsonio.loads(data, unique_keys=True)
    except jsonio.DuplicateKeyError as exc:
        raise ContractError("payload has a duplicate key: %s" % contract.clip(exc, 120)) from None
    except (ValueError, RecursionError) as exc:
        raise ContractError("payload is not JSON: %s" % contract.clip(exc, 120)) from None
    if not isinstance(obj, dict):
        raise ContractError("payload must be a JSON object")
    contract._check_storable(obj)
    version = obj.get("v")
    if version != contract.SCHEMA_VERSION or isinstance(version, bool):
        raise ContractError("unknown schema version %r" % (contract.clip(repr(version), 40),))
    kind = obj.get("type")
    cls = contract.PAYLOAD_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ContractError("unknown message type %r" % (contract.clip(repr(kind), 40),))
    if expected_type is not None and kind != expected_type:
        raise ContractError("message type %r arrived on the %s topic" % (kind, expected_type))
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    required = {f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    unknown = set(obj) - names
    if unknown:
        raise ContractError("unknown field(s): %s"
                            % contract.clip(", ".join(sorted(map(str, unknown))), 120))
    missing = required - set(obj)
    if missing:
        raise ContractError("missing field(s): %s" % ", ".join(sorted(missing)))
    return contract.validate(cls(**obj))


def outcome(decoder, data, expected_type):
    try:
        payload = decoder(data, expected_type)
    except ContractError as exc:
        return ("rejected", str(exc))
    return ("accepted", type(payload), payload, repr(payload))


def assert_same_outcome(data, expected_type=None):
    got = outcome(contract.decode, data, expected_type)
    want = outcome(reference_decode, data, expected_type)
    assert got == want, data
    return got


# ----------------------------------------------------------------- JSON text, hostile included

SCALAR_TEXTS = st.one_of(
    st.sampled_from([
        "0", "-0", "1", "5", "-1", "1.5", "-0.0", "1e9", "1E5", "1e15", "1e400", "-1e400",
        "1.0e-400", "9007199254740992", "9007199254740993", "-9007199254740993", "1" + "0" * 400,
        "true", "false", "null", "NaN", "Infinity", "-Infinity", '""', '"x"', '"\\u0000"',
        '"\\ud800"', '"a\\udc80b"', '"\\ud83d\\ude00"', '"\\n"', '"a\\"b"', '"a\\\\u0000"',
        '"\\/"', '"\\u00e9"', '"\u00e9"', '"\u2028"', '"a:b"', '"::1"', '"\\":"',
        '"x' + "y" * 1030 + '"', "01", "1.", '"\x01"', "[", "{",
    ]),
    st.integers(min_value=-2 ** 60, max_value=2 ** 60).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=20).map(lambda text: json.dumps(text, ensure_ascii=False)),
    st.text(max_size=20).map(json.dumps),
)
# what a field of another type looks like: a bool for an int, a float for an int, ...
CONFUSED_TEXTS = st.sampled_from(["true", "false", "0", "1", "1.0", "-1", "null", "[]", "{}",
                                  '""', "1e400", "-0", '"1"'])
KEY_NAMES = st.one_of(
    st.sampled_from(["a", "n", "source_ip", "lines", "spool", "", "x" * 65, "Bad-Name", "k\u00e9",
                     "a,b", "device", "seq", "v", "type"]),
    st.text(max_size=6),
)


def key_text(name, ascii_only=False):
    return json.dumps(name, ensure_ascii=ascii_only)


def object_text(pairs, colon=":", comma=","):
    return "{" + comma.join(key_text(k) + colon + v for k, v in pairs) + "}"


JSON_TEXTS = st.recursive(
    SCALAR_TEXTS,
    lambda children: st.one_of(
        st.lists(children, max_size=5).map(lambda items: "[" + ",".join(items) + "]"),
        # keys may repeat: duplicate keys at any depth
        st.lists(st.tuples(KEY_NAMES, children), max_size=5).map(object_text),
    ),
    max_leaves=25,
)
DEEP_TEXTS = st.integers(min_value=1, max_value=12).flatmap(
    lambda depth: st.sampled_from(["[" * depth + "1" + "]" * depth,
                                   '{"a":' * depth + "1" + "}" * depth]))


def base_fields(kind):
    """Field name -> JSON text of a valid payload of that type."""
    common = st.fixed_dictionaries({
        "device": st.sampled_from(["sim-0001", "r1", "aa:bb:cc:dd:ee:ff", "rw-0011.x"]).map(
            json.dumps),
        "run": st.just(json.dumps(RUN)),
        "seq": st.integers(min_value=0, max_value=2 ** 53).map(str),
        "time": st.floats(min_value=0, max_value=4102444800.0).map(repr),
        "type": st.just(json.dumps(kind)),
        "v": st.just("1"),
    })
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000),
                        st.floats(-1e6, 1e6), st.text(max_size=10))
    plain = st.one_of(scalars, st.lists(scalars, max_size=3),
                      st.dictionaries(st.text(min_size=1, max_size=5), scalars, max_size=3))
    counters = st.dictionaries(st.sampled_from(["lines", "flows", "files", "sent", "a.b_c"]),
                               st.integers(0, 10 ** 6), max_size=4)
    extra = {
        "anomaly": {
            "kind": st.sampled_from(["login.bruteforce", "conn.new_port", "x.y.z"]).map(json.dumps),
            "severity": st.sampled_from(contract.SEVERITIES).map(json.dumps),
            "summary": st.text(min_size=1, max_size=60).filter(
                lambda s: "\n" not in s and "\r" not in s).map(
                lambda s: json.dumps(s, ensure_ascii=False)),
            "evidence": st.dictionaries(st.text(min_size=1, max_size=8), plain, max_size=4).map(
                lambda d: json.dumps(d, ensure_ascii=False, separators=(",", ":"))),
            "count": st.integers(1, 100).map(str),
        },
        "heartbeat": {
            "interval": st.floats(0, 3600).map(repr), "uptime": st.floats(0, 1e7).map(repr),
            "rss_kb": st.integers(0, 10 ** 6).map(str), "cpu_percent": st.floats(0, 100).map(repr),
            "spool_depth": st.integers(0, 1000).map(str),
            "counters": counters.map(lambda d: json.dumps(d, separators=(",", ":"))),
            "drops": counters.map(lambda d: json.dumps(d, separators=(",", ":"))),
        },
        "status": {"state": st.sampled_from(["online", "offline"]).map(json.dumps)},
        "inventory": {
            "agent_version": st.just('"0.1.0"'),
            "firmware": st.dictionaries(st.text(min_size=1, max_size=8), plain, max_size=4).map(
                lambda d: json.dumps(d, ensure_ascii=False, separators=(",", ":"))),
            "firmware_hash": st.sampled_from(['""', '"' + "a" * 64 + '"']),
            "baseline_hash": st.sampled_from(['""', '"' + "b" * 64 + '"']),
            "package_manager": st.sampled_from(['"opkg"', '"apk"']),
        },
    }[kind]
    return st.tuples(common, st.fixed_dictionaries(extra)).map(lambda two: {**two[0], **two[1]})


@st.composite
def payload_bytes(draw):
    kind = draw(st.sampled_from(contract.MESSAGE_TYPES))
    pairs = list(draw(base_fields(kind)).items())
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["replace", "replace", "drop", "add", "repeat", "deep"]))
        if action == "replace" and pairs:
            i = draw(st.integers(0, len(pairs) - 1))
            pairs[i] = (pairs[i][0], draw(st.one_of(CONFUSED_TEXTS, SCALAR_TEXTS, JSON_TEXTS)))
        elif action == "drop" and pairs:
            pairs.pop(draw(st.integers(0, len(pairs) - 1)))
        elif action == "add":
            pairs.insert(draw(st.integers(0, len(pairs))), (draw(KEY_NAMES), draw(JSON_TEXTS)))
        elif action == "repeat" and pairs:
            pairs.append(pairs[draw(st.integers(0, len(pairs) - 1))])
        elif action == "deep" and pairs:
            i = draw(st.integers(0, len(pairs) - 1))
            pairs[i] = (pairs[i][0], draw(DEEP_TEXTS))
    colon, comma = draw(st.sampled_from([(":", ","), (": ", ", "), (" :", ","), ("\t:", ",\n")]))
    text = object_text(pairs, colon, comma)
    if draw(st.booleans()):
        text = draw(st.sampled_from(["", " ", "\n"])) + text + draw(st.sampled_from(["", " ", "x"]))
    data = text.encode("utf-8", "surrogatepass")
    corrupt = draw(st.sampled_from([None, None, None, "byte", "cut"]))
    if corrupt == "byte":
        at = draw(st.integers(0, len(data)))
        junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"]))
        data = data[:at] + junk + data[at:]
    elif corrupt == "cut":
        data = data[:draw(st.integers(0, len(data)))]
    return data


EXPECTED = st.sampled_from((None,) + contract.MESSAGE_TYPES)


@settings(FUZZ, max_examples=1000)
@given(payload_bytes(), EXPECTED)
def test_decode_matches_the_reference_on_hostile_payloads(data, expected_type):
    assert_same_outcome(data, expected_type)


@FUZZ
@given(payload_bytes(), EXPECTED)
def test_decode_matches_the_reference_on_text_and_bytearray(data, expected_type):
    assert_same_outcome(bytearray(data), expected_type)
    text = data.decode("utf-8", "replace")
    assert_same_outcome(text, expected_type)


@settings(max_examples=200, deadline=None)
@given(JSON_TEXTS)
def test_decode_matches_the_reference_on_any_json(text):
    assert_same_outcome(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.sampled_from(contract.MESSAGE_TYPES).flatmap(base_fields))
def test_what_agents_send_takes_the_shortcut_and_equals_the_reference(fields):
    data = object_text(fields.items()).encode()
    kind = json.loads(fields["type"])
    fast = contract._decode_common_case(data, kind)
    if b"\\" in data:         # an escape: the checked way (it may hide NUL or a surrogate)
        assert fast is None
        return
    assert fast is not None, data
    assert fast == reference_decode(data, kind)
    assert repr(fast) == repr(reference_decode(data, kind))
    assert dataclasses.asdict(fast) == dataclasses.asdict(reference_decode(data, kind))


def test_payloads_from_the_shortcut_stay_frozen_and_hash_alike():
    status = Status(device="r1", run=RUN, seq=0, time=1.0, state="offline")
    decoded = contract._decode_common_case(contract.encode(status), "status")
    assert decoded == status and hash(decoded) == hash(status) and repr(decoded) == repr(status)
    try:
        decoded.state = "online"
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("a decoded payload could be changed")


def test_named_hostile_cases_match_the_reference():
    good = json.loads(contract.encode(Anomaly(
        device="sim-0001", run=RUN, seq=5, time=1795883416.9, kind="login.bruteforce",
        severity="high", summary="simulated login.bruteforce from 203.0.113.5",
        evidence={"source_ip": "203.0.113.5", "n": 5})))
    text = json.dumps(good, separators=(",", ":"))
    cases = [
        text.replace('"n":5', '"n":5,"n":6'),                     # duplicate inside evidence
        text.replace('"n":5', '"n":5,"a":{"b":1,"b":2}'),           # duplicate two levels down
        '{"v":1,' + text[1:],                                      # duplicate at the top
        text.replace('"n":5', '"n" :5,"n":6'),                     # duplicate behind a space
        text.replace('"n":5', '"n":1e400'),                        # decodes to inf
        text.replace('"n":5', '"n":NaN'),
        text.replace('"n":5', '"n":9007199254740993'),
        text.replace('"seq":5', '"seq":true'),
        text.replace('"count":1', '"count":false'),
        text.replace('"v":1', '"v":true'),
        text.replace('"v":1', '"v":1.0'),                         # accepted: 1.0 == 1
        text.replace('"n":5', '"n":"\\u0000"'),
        text.replace('"n":5', '"n":"\\ud800"'),
        text.replace('"n":5', '"\\ud800":1'),
        text.replace('"n":5', '"n":"' + "x" * 1025 + '"'),
        text.replace('"n":5', '"n":[[[[1]]]]'),
        text.replace('"n":5', '"":5'),
        text.replace('"count":1,', ''),                            # a default left out
        text.replace('"count":1,', '"count":1,"extra":1,'),
        text.replace('"summary":"', '"summary":"a\\nb'),
        text + " ",
        " " + text,
    ]
    outcomes = [assert_same_outcome(case.encode("utf-8", "surrogatepass"), "anomaly")
                for case in cases]
    # accepted: "v":1.0 (it equals 1), the default count left out, whitespace around
    accepted = [i for i, result in enumerate(outcomes) if result[0] == "accepted"]
    assert accepted == [10, 17, 20, 21]
    assert_same_outcome(b"\xff" + text.encode())
    assert_same_outcome(text.encode()[:-1])


PLAIN_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2 ** 54, 2 ** 54), st.floats(),
              st.text(max_size=3), st.just("x" * 1025)),
    lambda c: st.one_of(
        st.lists(c, max_size=4), st.tuples(c),
        st.dictionaries(st.one_of(st.text(max_size=3), st.just("k" * 65), st.integers()), c,
                        max_size=4)),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(PLAIN_VALUES, st.integers(1, 6))
def test_the_quick_json_check_says_yes_only_where_the_full_check_does(value, depth):
    if contract._is_plain_json(value, depth):
        contract._check_json_value(value, "evidence", depth)   # must not raise


def test_the_quick_json_check_leaves_odd_types_to_the_full_check():
    for value in ({"a": (1, 2)}, {1: 2}, [math.inf], {"a": 2 ** 53 + 1}, "x" * 1025, [[[[1]]]]):
        assert not contract._is_plain_json(value, 1)
    assert contract._is_plain_json({"a": [1, 2.5, None, True, "x"]}, 1)


def test_validate_still_checks_objects_built_in_python():
    heartbeat = Heartbeat(device="r1", run=RUN, seq=1, time=1.0, interval=60.0, uptime=1.0,
                          rss_kb=1, cpu_percent=0.0, spool_depth=0, counters={"lines": True})
    for payload, text in [
        (dataclasses.replace(Anomaly(device="r1", run=RUN, seq=1, time=1.0, kind="a.b",
                                     severity="low", summary="s"), evidence={"a": {1, 2}}),
         "evidence.a has a value of type set, not JSON"),
        (Anomaly(device="r1", run=RUN, seq=1, time=1.0, kind="a.b", severity="low",
                 summary="s", evidence={1: 2}), "evidence has a key that is not a short string"),
        (heartbeat, "counters.lines must be a non-negative integer"),
    ]:
        try:
            contract.validate(payload)
        except ContractError as exc:
            assert str(exc) == text
        else:
            raise AssertionError("accepted %r" % (payload,))


@FUZZ
@given(st.sampled_from(contract.MESSAGE_TYPES).flatmap(base_fields), st.data())
def test_one_confused_field_is_judged_as_the_reference_judges_it(fields, data):
    """A valid payload with one field of the wrong kind (a bool for an int, ...)."""
    name = data.draw(st.sampled_from(sorted(fields)))
    fields[name] = data.draw(CONFUSED_TEXTS)
    assert_same_outcome(object_text(fields.items()).encode(), json.loads(fields["type"])
                        if name != "type" else None)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.dictionaries(st.one_of(st.text(alphabet="ab.,_9-A", max_size=5), st.just("x" * 65),
                              st.integers(0, 2)),
                    st.one_of(st.integers(-1, 2 ** 53 + 1), st.booleans(), st.floats(0, 1)),
                    max_size=5),
    st.lists(st.integers(0, 5))))
def test_the_quick_counter_check_says_yes_only_where_the_full_check_does(value):
    if contract._is_counter_map(value):
        contract._check_counter_map(value, "counters")          # must not raise


def test_a_counter_name_holding_the_join_comma_is_refused():
    for counters in ({"a,b": 1}, {"a,b": 1, "c": 2}, {",": 0}, {"a": 1, "": 2}):
        assert not contract._is_counter_map(counters)
        try:
            contract._check_counter_map(counters, "counters")
        except ContractError as exc:
            assert str(exc).startswith("counters has a counter name")
        else:
            raise AssertionError("accepted %r" % (counters,))
    assert contract._is_counter_map({"lines": 1, "a.b_9": 2 ** 53})
