"""The one JSON helper: ujson to encode where the router has it, the standard library to decode.

Decoding always uses the standard library with NaN/Infinity refused, because payloads arriving at
the collector may come from a compromised router and ujson accepts more than strict JSON.
"""
import json

try:  # ujson is optional on the router (python3-ujson); same output shape, less CPU
    import ujson as _fast
except ImportError:  # pragma: no cover - depends on the machine
    _fast = None


def _refuse_constant(name):
    raise ValueError("non-standard JSON constant %s" % name)


def dumps(obj, ascii_only=False):
    """Compact one-line JSON text (never contains a raw newline). ascii_only: every non-ASCII
    character as a \\u escape, for output whose reader's encoding is unknown (a terminal)."""
    if _fast is not None:
        try:
            return _fast.dumps(obj, ensure_ascii=ascii_only, escape_forward_slashes=False)
        except (TypeError, OverflowError):
            pass  # fall through to the standard encoder for its clearer error or wider ints
    return json.dumps(obj, ensure_ascii=ascii_only, separators=(",", ":"), allow_nan=False)


class DuplicateKeyError(ValueError):
    """An object names one key twice: parsers disagree on which value counts (first, last, both),
    so such a document means different things to different readers."""


def _unique_object(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError("duplicate key %s" % ascii(key[:64]))
            seen.add(key)
    return obj


# made once: json.loads() with options builds a new decoder on every call
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_UNIQUE_KEYS_DECODER = json.JSONDecoder(parse_constant=_refuse_constant,
                                        object_pairs_hook=_unique_object)


def loads(text, unique_keys=False):
    """Strict decode of str or bytes; raises ValueError on anything that is not plain JSON.
    unique_keys (what a peer sends): DuplicateKeyError, a ValueError, on an object that repeats
    a key at any depth; otherwise the last value wins, as in the standard library."""
    if type(text) is bytes:             # what a peer sends: one test instead of three
        text = text.decode("utf-8")     # UnicodeDecodeError is a ValueError
    elif isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    elif not isinstance(text, str):
        raise TypeError("JSON text must be str or bytes, not %s" % type(text).__name__)
    return (_UNIQUE_KEYS_DECODER if unique_keys else _DECODER).decode(text)


def loads_compact(data, unique_keys=False):
    """loads() of UTF-8 bytes holding one JSON value and nothing around it, no whitespace
    either (what an encoder writes): it skips the two whitespace scans loads() makes.
    ValueError for anything else, where loads() may still accept it."""
    text = data.decode("utf-8")
    obj, end = (_UNIQUE_KEYS_DECODER if unique_keys else _DECODER).raw_decode(text)
    if end != len(text):
        raise ValueError("more after the JSON value at %d" % end)
    return obj
