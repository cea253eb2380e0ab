"""The message contract between the agent and the collector (see shared DESIGN.md).

Both sides import this module, so one piece of code decides what a valid message is.

Topics: ``<prefix>/<device>/{anomaly,heartbeat,status,inventory}``.
Every payload is a JSON object carrying:

    v       schema version (int, SCHEMA_VERSION)
    type    "anomaly" | "heartbeat" | "status" | "inventory"
    device  the stable device id (also the topic's second-to-last level)
    run     agent-run id, random per agent start (16 lowercase hex digits)
    seq     sequence number, counted per (run, type) from 1; the Last Will status uses 0
    time    seconds since the epoch (float) when the agent made the message

Decoding is strict: unknown versions, unknown, missing or repeated keys, wrong types (a bool is not
an int), oversized fields and strings that no store can hold (NUL, unpaired surrogates) are all
rejected with ContractError, whose text says which field and why.
"""
import math
import re
from dataclasses import MISSING, asdict, dataclass, field

from . import jsonio
from .text import MAX_STRING_CHARS, clip  # noqa: F401 - re-exported: the contract's limits

SCHEMA_VERSION = 1
DEFAULT_PREFIX = "routerwatch"

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_SUMMARY_CHARS = 240
MAX_KEY_CHARS = 64
MAX_LIST_ITEMS = 256
MAX_OBJECT_KEYS = 64
MAX_NESTING = 4
MAX_EVIDENCE_BYTES = 16 * 1024

SEVERITIES = ("info", "low", "medium", "high", "critical")
MESSAGE_TYPES = ("anomaly", "heartbeat", "status", "inventory")
STATUS_STATES = ("online", "offline")

# A device id becomes an MQTT topic level and a file name: no '/', '+', '#', no spaces.
DEVICE_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
RUN_ID_RE = re.compile(r"\A[0-9a-f]{16}\Z")
_COUNTER_NAME = r"[a-z0-9_.]{1,64}"
COUNTER_NAME_RE = re.compile(r"\A%s\Z" % _COUNTER_NAME)
SHA256_HEX_RE = re.compile(r"\A[0-9a-f]{64}\Z")
KIND_RE = re.compile(r"\A[a-z]+(?:\.[a-z][a-z0-9_]*){1,3}\Z")
PREFIX_RE = re.compile(r"\A[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+){0,3}\Z")
# 2001-01-01 .. 2100-01-01: a router without NTP may start in 1970; the agent then sends 0-based
# times that we still want to see, so the lower bound is 0, not the year 2001.
TIME_MIN, TIME_MAX = 0.0, 4102444800.0
SEQ_MAX = 2 ** 53


class ContractError(ValueError):
    """A message does not follow the contract; the text names the field and the reason."""




# --------------------------------------------------------------------------- router text
# Router strings (file names, exe paths, command lines, log text, user names) are bytes an
# attacker may choose. Sources keep undecodable bytes as surrogateescape'd str (what os.fsdecode
# and bytes.decode("utf-8", "surrogateescape") make); wire_text turns any str into printable
# text that is valid UTF-8 and shows what was there without ambiguity:
#     \\          a backslash (always doubled, so a literal "\xff" cannot pass for a byte)
#     \xNN        the byte NN: an undecodable byte (0x80-0xff), a control byte or DEL
#     \uNNNN      any other character that is not printable: C1 controls, lone surrogates,
#     \UNNNNNNNN  invisible format and direction characters, separators, unassigned ones
# Every printable character and the space stay as they are. wire_unescape undoes it exactly.
_ESCAPE_RE = re.compile(r"\\(?:\\|x([0-9a-f]{2})|u([0-9a-f]{4})|U([0-9a-f]{8}))")
_ELLIPSIS = "\u2026"


def _escape(char):
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x20 or code == 0x7f:
        return "\\x%02x" % code
    if 0xdc80 <= code <= 0xdcff:          # surrogateescape's stand-in for the byte code - 0xdc00
        return "\\x%02x" % (code - 0xdc00)
    return "\\u%04x" % code if code <= 0xffff else "\\U%08x" % code


def wire_text(value, limit=MAX_STRING_CHARS):
    """Any text from the router -> printable, valid UTF-8 text of at most `limit` characters,
    undecodable bytes and non-printable characters escaped (see above); cut with a trailing
    ellipsis, never in the middle of an escape. bytes are read as UTF-8, undecodable ones kept."""
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", "surrogateescape")
    else:
        text = value if isinstance(value, str) else str(value)
    if text.isprintable() and "\\" not in text:
        return clip(text, limit)
    # 6 output characters at most per input one: never escape more than the limit can show
    pieces = [_escape(char) for char in text[:limit]]
    if sum(map(len, pieces)) <= limit and len(text) <= limit:
        return "".join(pieces)
    out = []
    room = limit - 1                       # one character for the ellipsis
    for piece in pieces:
        if len(piece) > room:
            break
        out.append(piece)
        room -= len(piece)
    out.append(_ELLIPSIS)
    return "".join(out)


def wire_unescape(text):
    """The inverse of wire_text (before any cut): the str it was made from. Encoded with
    "surrogateescape" it gives back the router's original bytes."""
    def one(match):
        if match.group(1) is not None:
            code = int(match.group(1), 16)
            return chr(code if code < 0x80 else 0xdc00 + code)
        if match.group(2) is not None or match.group(3) is not None:
            return chr(int(match.group(2) or match.group(3), 16))
        return "\\"
    return _ESCAPE_RE.sub(one, text)


def wire_value(value, depth=1):
    """Evidence/inventory data from the router -> a JSON value the contract accepts: every
    string through wire_text (keys too), lists and objects cut to the contract's sizes, numbers
    the contract refuses shown as text. Apply it once, where router data becomes a payload."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) <= SEQ_MAX else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (str, bytes, bytearray)):
        return wire_text(value)
    if depth >= MAX_NESTING and isinstance(value, (dict, list, tuple, set, frozenset)):
        return wire_text(repr(value))
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if len(out) >= MAX_OBJECT_KEYS:
                break
            name = wire_text(key, MAX_KEY_CHARS) or "_"
            out[name] = wire_value(item, depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [wire_value(item, depth + 1) for item in list(items)[:MAX_LIST_ITEMS]]
    return wire_text(value)


# --------------------------------------------------------------------------- topics

def topic(prefix, device, message_type):
    if message_type not in MESSAGE_TYPES:
        raise ContractError("unknown message type %r" % (message_type,))
    return "%s/%s/%s" % (prefix, device, message_type)


def subscription(prefix, message_type, share_group=None):
    """The collector's subscription; with share_group an MQTT v5 shared subscription."""
    base = "%s/+/%s" % (prefix, message_type)
    return "$share/%s/%s" % (share_group, base) if share_group else base


def parse_topic(prefix, text):
    """Split '<prefix>/<device>/<type>' into (device, type); ContractError if it is not one."""
    head = prefix + "/"
    if not text.startswith(head):
        raise ContractError("topic %r is not under prefix %r" % (clip(text, 200), prefix))
    rest = text[len(head):].split("/")
    if len(rest) != 2 or rest[1] not in MESSAGE_TYPES:
        raise ContractError("topic %r is not <prefix>/<device>/<type>" % clip(text, 200))
    if not DEVICE_ID_RE.match(rest[0]):
        raise ContractError("topic device id %r is not a valid device id" % clip(rest[0], 80))
    return rest[0], rest[1]


# --------------------------------------------------------------------------- payload types

@dataclass(frozen=True)
class Anomaly:
    device: str
    run: str
    seq: int
    time: float
    kind: str
    severity: str
    summary: str
    evidence: dict = field(default_factory=dict)
    count: int = 1          # occurrences aggregated into this one message (cool-down)
    type: str = "anomaly"
    v: int = SCHEMA_VERSION


@dataclass(frozen=True)
class Heartbeat:
    device: str
    run: str
    seq: int
    time: float
    interval: float         # seconds until the next heartbeat is due
    uptime: float           # seconds since the agent started
    rss_kb: int
    cpu_percent: float
    spool_depth: int
    counters: dict = field(default_factory=dict)   # name -> int: lines, flows, files, sent ...
    drops: dict = field(default_factory=dict)      # name -> int: what a bound threw away
    type: str = "heartbeat"
    v: int = SCHEMA_VERSION


@dataclass(frozen=True)
class Status:
    device: str
    run: str
    seq: int
    time: float
    state: str              # online | offline
    type: str = "status"
    v: int = SCHEMA_VERSION


@dataclass(frozen=True)
class Inventory:
    device: str
    run: str
    seq: int
    time: float
    agent_version: str
    firmware: dict          # /etc/openwrt_release keys, board name, model, kernel
    firmware_hash: str      # sha256 over the firmware identity (hex) or ""
    baseline_hash: str      # sha256 of the integrity baseline manifest (hex) or ""
    package_manager: str    # apk | opkg | none
    type: str = "inventory"
    v: int = SCHEMA_VERSION


PAYLOAD_TYPES = {"anomaly": Anomaly, "heartbeat": Heartbeat, "status": Status, "inventory": Inventory}


# --------------------------------------------------------------------------- validation

def _is_plain_json(value, depth):
    """True only if _check_json_value(value, ..., depth) would accept value; False when it would
    not or when value holds anything but the exact types json.loads makes (a tuple, a str
    subclass): the caller then runs _check_json_value, which decides and words the error. Same
    limits, in the same terms, but no path text is made for every value that passes."""
    if depth > MAX_NESTING:
        return False
    kind = type(value)
    if kind is str:
        return len(value) <= MAX_STRING_CHARS
    if kind is int:
        return -SEQ_MAX <= value <= SEQ_MAX
    if kind is float:
        return math.isfinite(value)
    if value is None or kind is bool:
        return True
    if kind is dict:
        if len(value) > MAX_OBJECT_KEYS:
            return False
        for key, item in value.items():
            if type(key) is not str or not 0 < len(key) <= MAX_KEY_CHARS \
                    or not _is_plain_json(item, depth + 1):
                return False
        return True
    if kind is list:
        if len(value) > MAX_LIST_ITEMS:
            return False
        for item in value:
            if not _is_plain_json(item, depth + 1):
                return False
        return True
    return False


def _check_plain_json(value, where):
    """A top-level evidence/firmware object: the quick yes, else the full check and its error."""
    if not _is_plain_json(value, 1):
        _check_json_value(value, where, 1)


def _check_json_value(value, where, depth):
    """Bounded, plain JSON value: str/int/float/bool/None, lists and objects of them."""
    if depth > MAX_NESTING:
        raise ContractError("%s nests deeper than %d levels" % (where, MAX_NESTING))
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > SEQ_MAX:
            raise ContractError("%s integer out of range" % where)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ContractError("%s is not a finite number" % where)
        return
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise ContractError("%s is longer than %d characters" % (where, MAX_STRING_CHARS))
        return
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_LIST_ITEMS:
            raise ContractError("%s has more than %d items" % (where, MAX_LIST_ITEMS))
        for i, item in enumerate(value):
            _check_json_value(item, "%s[%d]" % (where, i), depth + 1)
        return
    if isinstance(value, dict):
        if len(value) > MAX_OBJECT_KEYS:
            raise ContractError("%s has more than %d keys" % (where, MAX_OBJECT_KEYS))
        for key, item in value.items():
            if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
                raise ContractError("%s has a key that is not a short string" % where)
            _check_json_value(item, "%s.%s" % (where, key), depth + 1)
        return
    raise ContractError("%s has a value of type %s, not JSON" % (where, type(value).__name__))


# What no store can hold: NUL (PostgreSQL refuses it in text and jsonb) and UTF-16 surrogate code
# points, which JSON's \uD800 escapes can produce unpaired and which have no UTF-8 encoding.
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


def _path_text(path):
    """A chain of (parent, key or list index) -> 'payload.evidence.paths[2]', cut short, the
    keys escaped."""
    parts = []
    while path is not None:
        path, part = path
        parts.append("[%d]" % part if isinstance(part, int)
                     else "." + clip(ascii(part)[1:-1], 40))
    return clip("payload" + "".join(reversed(parts)), 160)


def _check_storable(obj):
    """Every string of a decoded payload, keys included and at any depth, must be text that
    encodes to UTF-8 and that SQLite and PostgreSQL TEXT accept; ContractError names the first
    that is not. Iterative (the parser already bounds the depth, this walk adds no recursion),
    and a path is a chain of (parent, step) pairs, spelled out only for the error text: a deep
    payload with many siblings must not cost a string per value."""
    stack = [(obj, None)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            found = _UNSTORABLE_RE.search(value)
            if found:
                raise ContractError("string at %s cannot be stored: it holds U+%04X"
                                    % (_path_text(path), ord(found.group())))
        elif isinstance(value, dict):
            for key, item in value.items():
                found = _UNSTORABLE_RE.search(key)
                if found:
                    raise ContractError("key at %s cannot be stored: it holds U+%04X"
                                        % (_path_text(path), ord(found.group())))
                stack.append((item, (path, key)))
        elif isinstance(value, list):
            stack.extend((item, (path, i)) for i, item in enumerate(value))


def _is_int(value):
    # type() is int: the common case in one test (a bool's type is bool)
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _is_number(value):
    if type(value) is float:            # the common case first; same answer as below
        return math.isfinite(value)
    if _is_int(value):
        # math.isfinite() raises OverflowError on an int beyond the float range (10**400)
        return abs(value) <= SEQ_MAX
    return isinstance(value, float) and math.isfinite(value)


# all names of a counter map joined with ",", which no name may hold: one match for the map
_COUNTER_NAMES_RE = re.compile(r"\A%s(?:,%s)*\Z" % (_COUNTER_NAME, _COUNTER_NAME))


def _is_counter_map(value):
    """True only if _check_counter_map would accept value, in one regex match for all the names:
    the joined text matches when it is valid names between commas, and it holds exactly one
    comma fewer than there are names only if no name holds one, so then each name is one of
    those valid pieces. False leaves the verdict and its words to the full check."""
    if type(value) is not dict or len(value) > MAX_OBJECT_KEYS:
        return False
    for item in value.values():
        if type(item) is not int or not 0 <= item <= SEQ_MAX:
            return False
    if not value:
        return True
    try:
        names = ",".join(value)
    except TypeError:           # a name that is not a str
        return False
    return names.count(",") == len(value) - 1 and _COUNTER_NAMES_RE.match(names) is not None


def _check_counter_map(value, where):
    if _is_counter_map(value):
        return
    if not isinstance(value, dict) or len(value) > MAX_OBJECT_KEYS:
        raise ContractError("%s must be an object of at most %d counters" % (where, MAX_OBJECT_KEYS))
    for key, item in value.items():
        if not isinstance(key, str) or not COUNTER_NAME_RE.match(key):
            raise ContractError("%s has a counter name that is not [a-z0-9_.]{1,64}" % where)
        if not _is_int(item) or not 0 <= item <= SEQ_MAX:
            raise ContractError("%s.%s must be a non-negative integer" % (where, key))


def _check_common(p):
    if not isinstance(p.device, str) or not DEVICE_ID_RE.match(p.device):
        raise ContractError("device must match %s" % DEVICE_ID_RE.pattern)
    if not isinstance(p.run, str) or not RUN_ID_RE.match(p.run):
        raise ContractError("run must be 16 lowercase hex digits")
    if not _is_int(p.seq) or not 0 <= p.seq <= SEQ_MAX:
        raise ContractError("seq must be an integer 0..2^53")
    if not _is_number(p.time) or not TIME_MIN <= p.time <= TIME_MAX:
        raise ContractError("time must be seconds since the epoch")


def validate(p):
    """Raise ContractError unless the payload object follows the contract; returns it."""
    return _validate(p, evidence_fits=False)


def _validate(p, evidence_fits):
    """validate(); evidence_fits: the caller has proved the evidence encodes to at most
    MAX_EVIDENCE_BYTES and without error, so it need not be encoded to measure it."""
    if p.v != SCHEMA_VERSION:
        raise ContractError("unknown schema version %r (this side speaks %d)" % (p.v, SCHEMA_VERSION))
    _check_common(p)
    if isinstance(p, Anomaly):
        if not isinstance(p.kind, str) or len(p.kind) > MAX_KEY_CHARS or not KIND_RE.match(p.kind):
            raise ContractError("kind must be a dotted lowercase name such as login.bruteforce")
        if p.severity not in SEVERITIES:
            raise ContractError("severity must be one of %s" % ", ".join(SEVERITIES))
        if not isinstance(p.summary, str) or not p.summary or len(p.summary) > MAX_SUMMARY_CHARS:
            raise ContractError("summary must be 1-%d characters" % MAX_SUMMARY_CHARS)
        if "\n" in p.summary or "\r" in p.summary:
            raise ContractError("summary must be one line")
        if not isinstance(p.evidence, dict):
            raise ContractError("evidence must be an object")
        _check_plain_json(p.evidence, "evidence")
        if not evidence_fits:
            text = jsonio.dumps(p.evidence)
            # a character is at most 4 bytes of UTF-8: most evidence needs no encoding to be sure
            if len(text) > MAX_EVIDENCE_BYTES // 4 \
                    and len(text.encode("utf-8")) > MAX_EVIDENCE_BYTES:
                raise ContractError("evidence is larger than %d bytes" % MAX_EVIDENCE_BYTES)
        if not _is_int(p.count) or not 1 <= p.count <= SEQ_MAX:
            raise ContractError("count must be a positive integer")
    elif isinstance(p, Heartbeat):
        for name in ("interval", "uptime", "cpu_percent"):
            value = getattr(p, name)
            if not _is_number(value) or value < 0:
                raise ContractError("%s must be a non-negative number" % name)
        for name in ("rss_kb", "spool_depth"):
            value = getattr(p, name)
            if not _is_int(value) or not 0 <= value <= SEQ_MAX:
                raise ContractError("%s must be a non-negative integer" % name)
        _check_counter_map(p.counters, "counters")
        _check_counter_map(p.drops, "drops")
    elif isinstance(p, Status):
        if p.state not in STATUS_STATES:
            raise ContractError("state must be online or offline")
    elif isinstance(p, Inventory):
        for name in ("agent_version", "firmware_hash", "baseline_hash", "package_manager"):
            value = getattr(p, name)
            if not isinstance(value, str) or len(value) > 128:
                raise ContractError("%s must be a string of at most 128 characters" % name)
        for name in ("firmware_hash", "baseline_hash"):
            if getattr(p, name) and not SHA256_HEX_RE.match(getattr(p, name)):
                raise ContractError("%s must be 64 lowercase hex digits or empty" % name)
        if not isinstance(p.firmware, dict):
            raise ContractError("firmware must be an object")
        _check_plain_json(p.firmware, "firmware")
    else:
        raise ContractError("not a contract payload: %r" % type(p).__name__)
    return p


# --------------------------------------------------------------------------- (de)serialisation

def encode(payload):
    """Validated payload object -> compact UTF-8 JSON bytes."""
    validate(payload)
    data = jsonio.dumps(asdict(payload)).encode("utf-8")
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ContractError("payload is larger than %d bytes" % MAX_PAYLOAD_BYTES)
    return data


def decode(data, expected_type=None):
    """Bytes from the wire -> payload object, or ContractError. Never raises anything else."""
    payload = _decode_common_case(data, expected_type)
    if payload is not None:
        return payload
    return _decode_checked(data, expected_type)


def _decode_common_case(data, expected_type):
    """What a well-behaved agent sends (compact bytes, every field present, no backslash) at
    about 60 % of the cost of _decode_checked: the payload _decode_checked would return, the
    error of validate() it would raise too, or None for anything else; _decode_checked then
    decides and words the error, so outcomes and texts cannot differ."""
    if type(data) is not bytes or len(data) > MAX_PAYLOAD_BYTES:
        return None
    # From UTF-8 bytes, strict JSON can only produce NUL or a surrogate through a \u escape
    # (see _decode_checked): without a backslash the storable walk has nothing to find.
    if b"\\" in data:
        return None
    # Each key of an object is followed by one colon outside any string, so the text holds at
    # least as many colons as the objects hold keys, exactly as many when no string holds one.
    # When every colon comes right after a quote (no colon inside a string, most likely) the
    # plain decoder, without the duplicate-key hook (a Python call and a list of pairs per
    # object), is tried: decoded objects keep one key per distinct key, so counting as many
    # keys decoded as colons proves no key was repeated (see below); any other count goes the
    # checked way. Otherwise the hook finds repeated keys itself.
    colons = data.count(b":")
    unique_keys = colons != data.count(b'":')
    try:
        obj = jsonio.loads_compact(data, unique_keys=unique_keys)
    except (ValueError, RecursionError):
        return None     # not JSON, or whitespace around it: the checked way decides
    if type(obj) is not dict:
        return None
    version = obj.get("v")
    kind = obj.get("type")
    if type(version) is not int or version != SCHEMA_VERSION or type(kind) is not str:
        return None
    cls = PAYLOAD_TYPES.get(kind)
    if cls is None or (expected_type is not None and kind != expected_type):
        return None
    # one set comparison instead of two set differences: no unknown and no missing field
    if obj.keys() != _FIELD_SETS[cls]:
        return None      # unknown or missing fields, or a default left out
    # Every field is in obj and nothing else is: the frozen __init__ would only set each one
    # through object.__setattr__ (there is no __post_init__ and no default to fill in), which is
    # what filling the instance's __dict__ does at once. Equality, hash and repr read the
    # fields, so they are the same.
    payload = object.__new__(cls)
    payload.__dict__.update(obj)
    # The evidence needs no encoding to be measured when the whole message is small: with no
    # backslash in the bytes its strings hold no escape (and no surrogate, which an encoder
    # would refuse) and encode to the same characters (the encoders escape only '"', '\\' and
    # control characters, which the source then had to escape too); integers encode as short
    # or shorter ("-0" -> "0"); whitespace goes; only a float can grow, from 3 characters at
    # least ("1e9") to 24 at most ("-2.2250738585072014e-308"): fewer than 9 times the bytes.
    evidence_fits = len(data) <= _EVIDENCE_FITS_BYTES
    if unique_keys:
        # every check of _decode_checked before validate() holds: its error would be this one
        return _validate(payload, evidence_fits)
    try:
        _validate(payload, evidence_fits)
    except ContractError:
        return None         # a repeated key may come first: the checked way says which
    # validate() let only the dict fields hold objects or lists: with the top level's keys
    # they are every key decoded
    keys = len(obj)
    for name in _CONTAINER_FIELDS[cls]:
        value = obj[name]
        keys += len(value)              # validate() made it a dict
        for item in value.values():     # most hold no object or list: no walk then
            if type(item) is dict or type(item) is list:
                keys += _object_keys(item)
    return payload if keys == colons else None


def _object_keys(value):
    """How many keys all the objects in a decoded JSON value hold together, at any depth."""
    count = 0
    stack = [value]
    while stack:
        value = stack.pop()
        if type(value) is dict:
            count += len(value)
            value = value.values()
        for item in value:
            if type(item) is dict or type(item) is list:
                stack.append(item)
    return count


# payload class -> the names of all its fields, and of those without a default
_FIELD_SETS = {cls: frozenset(cls.__dataclass_fields__) for cls in PAYLOAD_TYPES.values()}
_REQUIRED_FIELDS = {cls: frozenset(name for name, f in cls.__dataclass_fields__.items()
                                   if f.default is MISSING and f.default_factory is MISSING)
                    for cls in PAYLOAD_TYPES.values()}
# name of each payload field that holds an object (evidence, counters, firmware)
_CONTAINER_FIELDS = {cls: tuple(name for name, f in cls.__dataclass_fields__.items()
                                if f.type is dict)
                     for cls in PAYLOAD_TYPES.values()}


# payloads up to this size hold evidence that fits (see _decode_common_case)
_EVIDENCE_FITS_BYTES = MAX_EVIDENCE_BYTES // 9


def _decode_checked(data, expected_type):
    """decode() of any input, each check in turn: the error names the first one that fails."""
    if not isinstance(data, (bytes, bytearray, str)):
        raise ContractError("payload must be bytes")
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ContractError("payload is larger than %d bytes" % MAX_PAYLOAD_BYTES)
    try:
        obj = jsonio.loads(data, unique_keys=True)
    except jsonio.DuplicateKeyError as exc:
        raise ContractError("payload has a duplicate key: %s" % clip(exc, 120)) from None
    except (ValueError, RecursionError) as exc:
        raise ContractError("payload is not JSON: %s" % clip(exc, 120)) from None
    if not isinstance(obj, dict):
        raise ContractError("payload must be a JSON object")
    if not isinstance(data, (bytes, bytearray)) or b"\\u" in data:
        # From UTF-8 bytes, strict JSON can only produce NUL or a surrogate through a \u
        # escape (the UTF-8 decoder refuses encoded surrogates, the parser raw control
        # characters), so bytes without one need no walk; text may hold anything.
        _check_storable(obj)
    version = obj.get("v")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ContractError("unknown schema version %r" % (clip(repr(version), 40),))
    kind = obj.get("type")
    cls = PAYLOAD_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ContractError("unknown message type %r" % (clip(repr(kind), 40),))
    if expected_type is not None and kind != expected_type:
        raise ContractError("message type %r arrived on the %s topic" % (kind, expected_type))
    names, required = _FIELD_SETS[cls], _REQUIRED_FIELDS[cls]
    unknown = obj.keys() - names
    if unknown:
        raise ContractError("unknown field(s): %s" % clip(", ".join(sorted(map(str, unknown))), 120))
    missing = required - obj.keys()
    if missing:
        raise ContractError("missing field(s): %s" % ", ".join(sorted(missing)))
    try:
        payload = cls(**obj)
    except TypeError as exc:  # pragma: no cover - guarded by the key checks above
        raise ContractError(str(exc)) from None
    return validate(payload)
