"""Log lines carry attacker-chosen text (user names, client versions, request paths). Given the
hostile corpus tests/fixtures/logs/hostile.log, each line either blames the address dropbear or
LuCI really wrote, gives an event without an address, or gives nothing - as annotated. And for
any text at all, parsing never raises and never blames an address that is not at the end of the
line (or in dropbear's own "from <...>" slot, which precedes all client text)."""
import io
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routerwatch.contract import wire_text, wire_unescape
from routerwatch.parsers import dropbear, luci
from routerwatch.parsers.login_address import normalise_ip, split_host_port
from routerwatch.sources.logread import iter_login_attempts

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "logs" / "hostile.log"


def corpus_cases():
    lines = CORPUS.read_bytes().split(b"\n")
    cases = []
    for i, line in enumerate(lines):
        if line.startswith(b"# expect: "):
            expect, _, why = line[len(b"# expect: "):].decode().partition("  -- ")
            cases.append(pytest.param(expect, lines[i + 1], id=why))
    return cases


def events_of(raw_line):
    return list(iter_login_attempts(io.BytesIO(raw_line + b"\n")))


@pytest.mark.parametrize("expect, raw", corpus_cases())
def test_hostile_corpus(expect, raw):
    events = events_of(raw)
    if expect == "nothing":
        assert events == []
    elif expect == "unattributed":
        assert events and all(e.source_ip is None for e in events)
    else:
        assert [e.source_ip for e in events] == [expect[len("ip="):]]


def test_corpus_is_not_empty():
    assert len(corpus_cases()) >= 15


def test_user_names_stay_as_logged_short_and_become_printable_wire_text():
    for raw in CORPUS.read_bytes().split(b"\n"):
        for event in events_of(raw):
            if event.user is not None:
                assert len(event.user) <= 64
                # the event keeps the name as logged; the runtime escapes it for the wire
                shown = wire_text(event.user)
                assert shown.isprintable() and wire_unescape(shown) == event.user
                shown.encode("utf-8")


def test_a_10_kB_user_name_does_not_grow_memory():
    name = b"A" * 10000
    line = (b"Tue Nov 25 04:11:31 2025 daemon.err uhttpd[1]: [info] luci: failed login on / for "
            + name + b" from 192.0.2.1\n")
    handle = io.BytesIO(line * 200)
    tracemalloc.start()
    try:
        events = list(iter_login_attempts(handle))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(events) == 200
    assert all(e.source_ip is None and e.outcome == "failure" for e in events)
    # the handle holds 2 MB; reading it must stay near one capped line, not a whole name
    assert peak < 512 * 1024


# ------------------------------------------------------------------ properties

HEADER = "Tue Nov 25 04:11:31 2025 authpriv.warn dropbear[7]: "
PREFIXES = ["Bad password attempt for '", "Password auth succeeded for '",
            "Exit before auth from <",
            "Child connection from ", "Login attempt for nonexistent user from ",
            "Exit before auth (user '", "[info] luci: failed login on / for ",
            "luci: accepted login on /", "Pubkey auth succeeded for '"]
ADDRESSES = ["192.0.2.1:22", "2001:db8::5:40022", "[2001:db8::5]:400", "[2001:db8::5]:",
             "::ffff:192.0.2.9:1", "999.1.1.1:22", "203.0.113.9", "?", "<192.0.2.3:4>"]
pieces = st.one_of(st.text(max_size=60), st.sampled_from(ADDRESSES),
                   st.sampled_from(["' from ", " from ", "', 3 fails): ", ">: ", " for ", "'"]))
messages = st.one_of(
    st.text(max_size=200),
    st.builds(lambda p, parts: p + "".join(parts), st.sampled_from(PREFIXES),
              st.lists(pieces, max_size=8)))


def _allowed_addresses(message):
    """Addresses a parser may blame: the last word, or dropbear's "from <...>" slot."""
    allowed = set()
    last = message.rsplit(" ", 1)[-1]
    for candidate in (last, last.rstrip(",")):
        parsed = split_host_port(candidate)
        if parsed:
            allowed.add(parsed[0])
        if normalise_ip(candidate):
            allowed.add(normalise_ip(candidate))
    for head in ("Exit before auth from <", "exit before auth from <", "Exit (",
                 "Early exit from <"):
        if message.startswith(head):
            start = message.find("<")
            end = message.find(">", start)
            if start >= 0 and end > start:
                parsed = split_host_port(message[start + 1:end])
                if parsed:
                    allowed.add(parsed[0])
    if message.startswith("Password auth succeeded") and message.endswith(", extra auth required"):
        inner = message[: -len(", extra auth required")].rsplit(" ", 1)[-1]
        parsed = split_host_port(inner)
        if parsed:
            allowed.add(parsed[0])
    return allowed


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_parsers_only_blame_the_address_at_the_end(message):
    for parse in (dropbear.parse_message, luci.parse_message):
        record = parse(message)
        if record is not None and record.ip is not None:
            assert record.ip in _allowed_addresses(message), (message, record)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from([b"", HEADER.encode(),
                                                  b"Nov 25 04:11:31 vm daemon.err uhttpd[2]: "]))
def test_any_bytes_never_raise(data, header):
    for event in iter_login_attempts(io.BytesIO(header + data)):
        assert event.outcome in ("failure", "success")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_user_name_keeps_the_real_address(user):
    user = user.replace("\n", " ").replace("\r", " ")  # logd turns newlines into spaces
    line = (HEADER + "Bad password attempt for '" + user + "' from 192.0.2.200:4444").encode()
    events = events_of(line)
    if len(line) >= 1000:
        assert all(e.source_ip is None for e in events)
    else:
        assert [e.source_ip for e in events] == ["192.0.2.200"]
