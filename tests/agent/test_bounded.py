import io

from hypothesis import given, settings, strategies as st

from routerwatch.bounded import BoundedDict, BoundedLines


def test_lru_cap_evicts_oldest_and_counts():
    table = BoundedDict(3)
    for key in "abcd":
        table.set(key, key.upper())
    assert len(table) == 3 and "a" not in table and table.evicted == 1
    table.get("b")               # touch b so c is now the oldest
    table.set("e", "E")
    assert "c" not in table and "b" in table and table.evicted == 2


def test_setdefault_creates_once():
    table = BoundedDict(2)
    first = table.setdefault("k", list)
    first.append(1)
    assert table.setdefault("k", list) == [1]


def _lines(data, max_bytes, max_line, chunk):
    reader = BoundedLines(io.BytesIO(data), max_bytes, max_line)
    reader.CHUNK = chunk
    return list(reader), reader


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       st.integers(1, 24), st.integers(1, 64), st.booleans())
def test_bounded_lines_are_the_lines_with_the_overlong_ones_as_none(lines, max_line, chunk,
                                                                    final_newline):
    """Whatever the chunk size, the lines come out as split would cut them; a line over the
    cap is None (never held whole) and counted."""
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    got, reader = _lines(data, 1 << 20, max_line, chunk)
    expected = data.split(b"\n")
    if expected and expected[-1] == b"":
        expected.pop()
    assert got == [line if len(line) <= max_line else None for line in expected]
    assert reader.overlong == sum(1 for line in expected if len(line) > max_line)
    assert reader.bytes_read == len(data) and not reader.truncated


def test_bounded_lines_stop_at_max_bytes_and_say_so():
    got, reader = _lines(b"abc\ndef\nghi\n", 6, 100, 4)
    assert got == [b"abc"] and reader.truncated and reader.bytes_read == 6
    got, reader = _lines(b"abc\ndef\n", 8, 100, 4)
    assert got == [b"abc", b"def"] and not reader.truncated
