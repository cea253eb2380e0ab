"""Router strings are untrusted bytes: whatever a file name, exe path, command line, user name or
log line holds, the anomaly still goes out, as valid UTF-8 JSON whose text gives back the exact
bytes (contract.wire_text / wire_unescape, applied once where a Finding becomes an Anomaly)."""
import io
import json
import os
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.build_tree import build_tree
from routerwatch import config as cfg
from routerwatch.contract import (MAX_STRING_CHARS, SEQ_MAX, decode, encode, validate, wire_text,
                                  wire_unescape, wire_value)
from routerwatch.detectors.base import Detector, DetectorConfig, Finding
from routerwatch.runtime import Agent
from routerwatch.sinks.stdout import StdoutSink

RUN = "0123456789abcdef"
any_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10ffff), max_size=80)


# ---------------------------------------------------------------- wire_text itself

@given(st.binary(max_size=300))
def test_any_bytes_become_printable_utf8_that_gives_the_bytes_back(raw):
    text = os.fsdecode(raw)            # what os.listdir, readlink and psutil hand the agent
    shown = wire_text(text, limit=10 ** 6)
    shown.encode("utf-8")              # never raises: no surrogate survives
    assert shown.isprintable()
    assert os.fsencode(wire_unescape(shown)) == raw


@given(any_text)
def test_any_str_round_trips_lone_surrogates_and_controls_included(text):
    shown = wire_text(text, limit=10 ** 6)
    shown.encode("utf-8")
    assert shown.isprintable() and wire_unescape(shown) == text


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_two_different_names_never_look_the_same(a, b):
    if a != b:
        assert wire_text(os.fsdecode(a)) != wire_text(os.fsdecode(b))


def test_a_literal_backslash_x_is_not_taken_for_a_byte():
    assert wire_text(os.fsdecode(b"/etc/init.d/\xff")) == "/etc/init.d/\\xff"
    assert wire_text("/etc/init.d/\\xff") == "/etc/init.d/\\\\xff"
    assert wire_text("a\x1b[2Jb\u202ec") == "a\\x1b[2Jb\\u202ec"


@given(any_text, st.integers(min_value=1, max_value=60))
def test_a_cut_keeps_the_limit_and_never_splits_an_escape(text, limit):
    shown = wire_text(text, limit)
    assert len(shown) <= limit
    if shown != wire_text(text, 10 ** 6):
        assert shown.endswith("\u2026")
        # what is left before the ellipsis is whole escapes: it unescapes to a prefix
        assert text.startswith(wire_unescape(shown[:-1]))


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(any_text, inner, max_size=5),
    max_leaves=30))
def test_any_evidence_becomes_evidence_the_contract_accepts(value):
    evidence = wire_value({"value": value})
    json.dumps(evidence, ensure_ascii=False).encode("utf-8")
    anomaly = validate(make_anomaly(evidence))
    assert decode(encode(anomaly)) == anomaly


def test_numbers_the_contract_refuses_are_shown_as_text():
    assert wire_value({"big": SEQ_MAX * 4, "nan": float("nan")}) == {
        "big": str(SEQ_MAX * 4), "nan": "nan"}


def make_anomaly(evidence, summary="x"):
    from routerwatch.contract import Anomaly
    return Anomaly(device="rw-test01", run=RUN, seq=1, time=1.0, kind="integrity.test",
                   severity="high", summary=summary, evidence=evidence)


# ---------------------------------------------------------------- through the runtime

class Echo(Detector):
    """Turns each prepared Finding payload into a finding: (summary, evidence)."""
    kind = "integrity.echo"
    Config = DetectorConfig

    def __init__(self, config):
        super().__init__(config)
        self.todo = []

    def tick(self, now):
        out = [Finding(kind=self.kind, severity="high", summary=summary, evidence=evidence,
                       incident=str(i) + repr(now), time=now)
               for i, (summary, evidence) in enumerate(self.todo)]
        self.todo = []
        return out


def echo_agent(tmp_path, stream):
    conf = cfg.load(defaults={"root": str(tmp_path), "state_dir": str(tmp_path / "state")})
    detector = Echo(DetectorConfig())
    agent = Agent(conf, "rw-test01", [], [detector], StdoutSink(stream), run_id=RUN, started=0.0)
    return agent, detector


@settings(max_examples=60, deadline=None)
@given(name=st.binary(min_size=1, max_size=200), user=st.binary(max_size=80))
def test_a_finding_on_any_file_name_or_user_is_sent_and_unambiguous(tmp_path_factory, name, user):
    tmp_path = tmp_path_factory.mktemp("echo")
    # a C locale stdout passes undecodable bytes through: what a router's --once writes to
    raw_out = io.BytesIO()
    stream = io.TextIOWrapper(raw_out, encoding="utf-8", errors="surrogateescape")
    agent, detector = echo_agent(tmp_path, stream)
    path, who = os.fsdecode(b"/etc/init.d/" + name), os.fsdecode(user)
    detector.todo = [("executable %s for %s" % (path, who),
                      {"path": path, "user": who, "cmdline": [path, who], path[:60]: 1})]
    produced = agent.step(100.0)
    assert len(produced) == 1
    line = raw_out.getvalue().decode("utf-8")       # valid UTF-8, or this raises
    sent = decode(line.strip().encode("utf-8"), "anomaly")
    assert sent.evidence["path"].startswith("/etc/init.d/")
    if len(sent.evidence["path"]) < MAX_STRING_CHARS:
        assert os.fsencode(wire_unescape(sent.evidence["path"])) == b"/etc/init.d/" + name
        assert os.fsencode(wire_unescape(sent.evidence["user"])) == user
    assert agent.drops()["send_errors"] == 0


def test_evidence_too_large_for_the_contract_is_shortened_not_lost(tmp_path):
    out = io.StringIO()
    agent, detector = echo_agent(tmp_path, out)
    detector.todo = [("huge", {"path": "/x", "files": ["a" * 1000] * 200})]
    agent.step(100.0)
    sent = json.loads(out.getvalue())
    assert sent["evidence"]["path"] == "/x" and "evidence_cut" in sent["evidence"]
    assert agent.drops()["evidence_cut"] == 1


class Exploding:
    """A sink whose send_anomaly fails on the first message only."""

    def __init__(self):
        self.sent = []
        self.calls = 0

    def send_anomaly(self, anomaly):
        self.calls += 1
        if self.calls == 1:
            raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")
        self.sent.append(anomaly)

    def send_heartbeat(self, heartbeat):
        raise RuntimeError("heartbeat bug")

    def send_inventory(self, inventory):
        pass

    def spool_depth(self):
        return 0

    def counters(self):
        return {}

    def drops(self):
        return {}


def test_an_exception_while_sending_one_anomaly_is_counted_and_the_next_goes_out(tmp_path):
    conf = cfg.load(defaults={"root": str(tmp_path), "state_dir": str(tmp_path / "state")})
    detector = Echo(DetectorConfig())
    sink = Exploding()
    agent = Agent(conf, "rw-test01", [], [detector], sink, run_id=RUN, started=0.0)
    detector.todo = [("first", {}), ("second", {})]
    agent.step(100.0)
    detector.todo = [("third", {})]
    agent.step(101.0)
    assert [a.summary for a in sink.sent] == ["second", "third"]
    assert agent.drops()["send_errors"] >= 2       # the first anomaly and the heartbeat


class Buggy(Detector):
    kind = "integrity.buggy"
    Config = DetectorConfig

    def tick(self, now):
        raise KeyError("a bug")


def test_a_detector_that_raises_is_counted_and_the_others_go_on(tmp_path):
    conf = cfg.load(defaults={"root": str(tmp_path), "state_dir": str(tmp_path / "state")})
    echo = Echo(DetectorConfig())
    out = io.StringIO()
    agent = Agent(conf, "rw-test01", [], [Buggy(DetectorConfig()), echo], StdoutSink(out),
                  run_id=RUN, started=0.0)
    echo.todo = [("still here", {})]
    agent.step(100.0)
    assert json.loads(out.getvalue())["summary"] == "still here"
    assert agent.drops()["detector_errors"] == 1


# ---------------------------------------------------------------- --once, as a router runs it

def test_once_reports_a_0xff_file_name_as_valid_utf8_in_a_c_locale(tmp_path):
    tree = build_tree("router-clean", tmp_path / "tree")
    init_d = os.path.join(os.fsencode(str(tree)), b"overlay/upper/etc/init.d")
    os.makedirs(init_d, exist_ok=True)
    name = b"S99\xff\\x41\x1b"
    with open(os.path.join(init_d, name), "wb") as handle:
        handle.write(b"#!/bin/sh\nexec /tmp/x\n")
    os.chmod(os.path.join(init_d, name), 0o755)
    env = dict(os.environ, LC_ALL="C", LANG="C", PYTHONUTF8="0", PYTHONIOENCODING="")
    result = subprocess.run(
        [sys.executable, "-m", "routerwatch.cli", "--root", str(tree), "--once",
         "--log-file", str(tree / "var/log/messages")], capture_output=True, env=env, timeout=120)
    assert result.returncode in (0, 1), result.stderr
    text = result.stdout.decode("utf-8")            # raises on any invalid byte
    anomalies = [json.loads(line) for line in text.splitlines()]
    paths = {a["evidence"].get("path") for a in anomalies}
    shown = "/etc/init.d/S99\\xff\\\\x41\\x1b"
    assert shown in paths, sorted(p for p in paths if p)
    assert os.fsencode(wire_unescape(shown)) == b"/etc/init.d/" + name
