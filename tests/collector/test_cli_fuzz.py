"""Whatever the decoder accepts, the collector stores, and then every query over it works: a
router that chooses its fields (seq near 2^53, odd text, deep evidence, any times) must not be
able to break `devices`, `anomalies`, `gaps` or `rejected` for the fleet."""
import io
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routerwatch.contract import (KIND_RE, MAX_SUMMARY_CHARS, SEQ_MAX, SEVERITIES, TIME_MAX,
                                  Anomaly, ContractError, Heartbeat, Inventory, Status, decode,
                                  encode)
from routerwatch_collector.cli import main
from routerwatch_collector.ingest import Ingest
from routerwatch_collector.store import SqliteStore

FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DEVICES = st.sampled_from(["rw-a", "rw-b", "rw-0a1b2c3d4e5f", "R.9:x_y-z" * 7])
RUNS = st.sampled_from(["0123456789abcdef", "ffffffffffffffff", "0000000000000000"])
SEQS = st.one_of(st.integers(0, 5), st.integers(SEQ_MAX - 5, SEQ_MAX), st.integers(0, SEQ_MAX))
TIMES = st.one_of(st.floats(0, TIME_MAX), st.integers(0, int(TIME_MAX)))
# any text, control characters, bidi overrides and astral characters included
TEXT = st.text(max_size=60)
NUMBERS = st.one_of(st.integers(-SEQ_MAX, SEQ_MAX), st.floats(allow_nan=False,
                                                               allow_infinity=False))
EVIDENCE = st.dictionaries(TEXT, st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12),
    max_size=8)
COUNTERS = st.dictionaries(st.from_regex(r"\A[a-z0-9_.]{1,64}\Z"), st.integers(0, SEQ_MAX),
                           max_size=6)


def messages():
    common = dict(device=DEVICES, run=RUNS, seq=SEQS, time=TIMES)
    return st.one_of(
        st.builds(Anomaly, kind=st.from_regex(KIND_RE), severity=st.sampled_from(SEVERITIES),
                  summary=st.text(min_size=1, max_size=MAX_SUMMARY_CHARS),
                  evidence=EVIDENCE, count=st.integers(1, SEQ_MAX), **common),
        st.builds(Heartbeat, interval=NUMBERS.map(abs), uptime=NUMBERS.map(abs),
                  rss_kb=st.integers(0, SEQ_MAX), cpu_percent=NUMBERS.map(abs),
                  spool_depth=st.integers(0, SEQ_MAX), counters=COUNTERS, drops=COUNTERS,
                  **common),
        st.builds(Status, state=st.sampled_from(["online", "offline"]), **common),
        st.builds(Inventory, agent_version=st.text(max_size=128), firmware=EVIDENCE,
                  firmware_hash=st.sampled_from(["", "a" * 64]), baseline_hash=st.just(""),
                  package_manager=st.sampled_from(["opkg", "apk", "none", "\u202e"]),
                  **common))


def accepted(message):
    """The wire bytes if the decoder takes the message as the agent would send it, else None."""
    try:
        data = encode(message)
        decode(data, message.type)
    except (ContractError, UnicodeEncodeError):
        return None
    return data


QUERIES = (["devices"], ["devices", "--json"], ["anomalies", "--limit", "1000"],
           ["anomalies", "--json", "--kind", "login.*"], ["gaps"], ["gaps", "--json"],
           ["rejected"], ["rejected", "--json"])


def run_query(argv):
    """main() with stdout a strict ASCII pipe, the least forgiving terminal there is."""
    saved = sys.stdout
    sys.stdout = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="strict")
    try:
        code = main(argv)
        sys.stdout.flush()
        return code, sys.stdout.buffer.getvalue().decode("ascii")
    finally:
        sys.stdout = saved


@FUZZ
@given(st.lists(st.tuples(messages(), st.booleans(), st.floats(1.0e9, 2.0e9)), min_size=1,
                max_size=12),
       st.lists(st.binary(max_size=64), max_size=3))
def test_every_query_works_over_anything_the_decoder_accepted(items, garbage):
    with tempfile.TemporaryDirectory() as workdir:
        db = str(Path(workdir) / "collector.sqlite")
        store = SqliteStore(db)
        ingest = Ingest(store)
        now = 1.5e9
        for message, retained, now in items:
            data = accepted(message)
            if data is None:
                continue
            topic = "routerwatch/%s/%s" % (message.device, message.type)
            assert ingest.handle(topic, data, now, retained=retained) in ("accepted",
                                                                           "duplicate")
        for payload in garbage:
            ingest.handle("routerwatch/rw-a/anomaly", payload, now)
        ingest.tick(now + 86400 * 30)
        assert "unstorable" not in ingest.rejects
        store.close()
        for argv in QUERIES:
            code, out = run_query(argv + ["--db", db])
            assert code == 0, argv
            if "--json" in argv:
                for line in out.splitlines():
                    json.loads(line)


def test_a_summary_the_terminal_cannot_encode_is_escaped_not_a_traceback(tmp_path):
    from collector_messages import anomaly
    db = str(tmp_path / "collector.sqlite")
    store = SqliteStore(db)
    ingest = Ingest(store)
    message = replace(anomaly(1), summary="caf\u00e9 \U0001f600 \u202e")
    ingest.handle("routerwatch/%s/anomaly" % message.device, encode(message), 1.5e9)
    ingest.flush(1.5e9)
    store.close()
    code, out = run_query(["anomalies", "--db", db])
    assert code == 0 and "caf\\xe9 \\U0001f600 \\u202e" in out
