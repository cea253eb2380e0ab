"""jsonio: strict decoding (no NaN, no repeated key when asked), the compact variant alike."""
import pytest

from routerwatch import jsonio


def test_compact_bytes_decode_as_loads_decodes_them():
    data = b'{"a":[1,2.5,"\xc3\xa9",null,true],"b":{"c":"d"}}'
    assert jsonio.loads_compact(data) == jsonio.loads(data)
    assert jsonio.loads_compact(data, unique_keys=True) == jsonio.loads(data, unique_keys=True)


@pytest.mark.parametrize("data", [b' {"a":1}', b'{"a":1} ', b'{"a":1}x', b'{"a":NaN}',
                                  b'{"a":Infinity}', b"\xff", b"", b"[1,"])
def test_compact_refuses_what_is_not_one_bare_json_value(data):
    with pytest.raises(ValueError):
        jsonio.loads_compact(data)


def test_compact_finds_a_repeated_key_when_asked():
    with pytest.raises(jsonio.DuplicateKeyError):
        jsonio.loads_compact(b'{"a":{"b":1,"b":2}}', unique_keys=True)
    assert jsonio.loads_compact(b'{"a":{"b":1,"b":2}}') == {"a": {"b": 2}}
