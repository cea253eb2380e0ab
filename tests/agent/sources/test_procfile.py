"""ParsedFile: a /proc file's text is parsed again only when it changed; a file too big to keep
is parsed every time, an unreadable one gives an empty set."""
from routerwatch.sources.procfile import ParsedFile


def counting_parse(calls):
    def parse(lines):
        lines = list(lines)
        calls.append(len(lines))
        return {line.strip() for line in lines}
    return parse


def test_unchanged_text_is_not_parsed_again(tmp_path):
    path = tmp_path / "route"
    path.write_text("a\nb\n")
    calls = []
    parsed = ParsedFile(str(path), counting_parse(calls))
    assert parsed.read() == ({"a", "b"}, True)
    assert parsed.read() == ({"a", "b"}, False)
    assert calls == [2]
    path.write_text("a\nc\n")
    assert parsed.read() == ({"a", "c"}, True)
    assert calls == [2, 2]


def test_a_file_too_big_to_keep_is_parsed_streaming_every_time(tmp_path):
    path = tmp_path / "fib_trie"
    path.write_text("x\n" * 100)
    calls = []
    parsed = ParsedFile(str(path), counting_parse(calls), max_bytes=50)
    assert parsed.read() == ({"x"}, True)
    assert parsed.read() == ({"x"}, True)
    assert calls == [100, 100]          # the whole file, not the first 50 bytes


def test_an_unreadable_file_is_empty_and_a_change_once(tmp_path):
    path = tmp_path / "if_inet6"
    calls = []
    parsed = ParsedFile(str(path), counting_parse(calls))
    assert parsed.read() == (set(), True)
    assert parsed.read() == (set(), False)
    path.write_text("a\n")
    assert parsed.read() == ({"a"}, True)
    path.unlink()
    assert parsed.read() == (set(), True)
    assert calls == [1]
