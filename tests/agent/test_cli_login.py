"""The login watcher from the command line: `routerwatch-agent check-log FILE` prints one JSON
line per recognised login event and a summary; `--once --log-file ATTACK_LOG` prints the
anomalies the attack makes (and exits 1 because one is high)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / "tests" / "fixtures" / "logs"


def agent(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO / "agent"))
    return subprocess.run([sys.executable, "-m", "routerwatch.cli"] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120,
                          cwd=cwd)


@pytest.mark.parametrize("name, recognised, failures, sources", [
    ("dropbear-2022.83-busybox-syslogd.log", 11, 9, 2),
    ("dropbear-old-formats.log", 7, 6, 3),
    ("dropbear-formats-by-release.log", 21, 15, 13),
    ("openwrt-23.05-dropbear-2022.82-attack.log", 28, 26, 14),
    ("openwrt-24.10-dropbear-2024.86-ipv6.log", 13, 12, 7),
    ("openwrt-dropbear-2026.94-ipv6-bracketed.log", 11, 11, 1),
    ("openwrt-luci-attack.log", 15, 13, 3),
])
def test_check_log_prints_each_event_and_a_summary(name, recognised, failures, sources):
    proc = agent("check-log", str(LOGS / name))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    events, summary = lines[:-1], lines[-1]["summary"]
    assert len(events) == recognised == summary["recognised"]
    assert summary["outcomes"].get("failure", 0) == failures
    assert summary["distinct_sources"] == sources
    assert all(e["service"] in ("ssh", "luci") and e["outcome"] in ("failure", "success")
               for e in events)


def test_check_log_counts_the_lines_and_the_login_lines_it_could_not_parse(tmp_path):
    """Like fail2ban-regex's "Lines: N lines, M matched, K missed": a login line in a format the
    parsers do not know (here a made-up one) is counted and shown, a non-login dropbear line
    (start-up, a listening error) and other programs' lines are not."""
    stamp = "Tue Nov 25 04:11:%02d 2025"
    lines = [
        stamp % 1 + " authpriv.info dropbear[100]: Running in background",
        stamp % 2 + " authpriv.warn dropbear[101]: Wrong password given by 'admin' via "
                    "198.51.100.5:5022",
        stamp % 3 + " authpriv.warn dropbear[102]: Bad password attempt for 'root' from "
                    "198.51.100.5:5022",
        stamp % 4 + " daemon.info procd: user admin login",
        stamp % 5 + " authpriv.warn dropbear[103]: Failed listening on '22': Error listening: "
                    "Address already in use",
        stamp % 6 + " daemon.notice luci: authentication failure for 'root' (from 10.0.0.9)",
        stamp % 7 + " authpriv.warn dropbear[104]: Pubkey auth bad signature for 'root' with "
                    "key 'x' from 999.1.1.1:22",        # a forged address is not recognised
    ] + [stamp % 8 + " kern.info kernel: [ 12.3] eth0: link up"] * 50
    log = tmp_path / "messages"
    log.write_text("\n".join(lines) + "\n")
    proc = agent("check-log", str(log))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.decode().splitlines()[-1])["summary"]
    assert summary["lines"] == 57
    assert summary["recognised"] == 1
    assert summary["unparsed_login_lines"] == 3
    assert summary["unparsed_samples"] == [
        "Wrong password given by 'admin' via 198.51.100.5:5022",
        "authentication failure for 'root' (from 10.0.0.9)",
        "Pubkey auth bad signature for 'root' with key 'x' from 999.1.1.1:22"]


def test_check_log_keeps_a_few_unparsed_samples_of_a_flood(tmp_path):
    log = tmp_path / "messages"
    log.write_text("Tue Nov 25 04:11:31 2025 authpriv.warn dropbear[9]: Login refused for "
                   "'root' from 203.0.113.1:1\n" * 10000)
    summary = json.loads(agent("check-log", str(log)).stdout.decode().splitlines()[-1])["summary"]
    assert summary["lines"] == 10000 and summary["unparsed_login_lines"] == 10000
    assert len(summary["unparsed_samples"]) == 5


def test_check_log_of_a_file_without_logins_exits_1(tmp_path):
    quiet = tmp_path / "quiet.log"
    quiet.write_text("Tue Nov 25 04:11:31 2025 daemon.info procd: - init complete -\n")
    proc = agent("check-log", str(quiet))
    assert proc.returncode == 1
    assert json.loads(proc.stdout.decode().splitlines()[-1])["summary"]["recognised"] == 0


def test_once_on_an_attack_log_prints_the_login_anomalies(tmp_path):
    proc = agent("--once", "--log-file", str(LOGS / "openwrt-23.05-dropbear-2022.82-attack.log"),
                 "--set", "watchers.connections=false", "--set", "watchers.processes=false",
                 "--set", "watchers.integrity=false", "--set", "state_dir=%s" % tmp_path)
    anomalies = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    kinds = {a["kind"]: a for a in anomalies}
    assert proc.returncode == 1, proc.stderr       # success_after_failures is high
    brute = kinds["login.bruteforce"]
    assert (brute["severity"], brute["evidence"]["source_ip"]) == ("medium", "203.0.113.7")
    assert brute["evidence"]["users"] == ["root"]
    assert kinds["login.success_after_failures"]["severity"] == "high"
    assert kinds["login.spray"]["evidence"]["distinct_sources"] >= 10
    assert [a["severity"] for a in anomalies if a["kind"] == "login.new_source"] == [
        "info", "medium"]
    assert (tmp_path / "login_new_source.json").is_file()


def test_once_on_the_luci_attack_log(tmp_path):
    proc = agent("--once", "--log-file", str(LOGS / "openwrt-luci-attack.log"),
                 "--set", "watchers.connections=false", "--set", "watchers.processes=false",
                 "--set", "watchers.integrity=false", "--set", "state_dir=%s" % tmp_path)
    anomalies = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    brute = [a for a in anomalies if a["kind"] == "login.bruteforce"]
    assert [(a["evidence"]["source_ip"], a["evidence"]["service"]) for a in brute] == [
        ("203.0.113.50", "luci")]
    assert "login.success_after_failures" in {a["kind"] for a in anomalies}


def _events_of_every_fixture():
    from routerwatch.sources.logread import iter_login_attempts
    events = []
    for path in sorted(LOGS.glob("*.log")):
        with open(path, "rb") as handle:
            events.extend(iter_login_attempts(handle))
    return events


def test_check_log_lines_are_the_wire_form_of_each_event():
    """check-log spells its JSON line out (it runs once per event); it must be exactly what
    the general encoder makes of the event, hostile user names and addresses included."""
    from routerwatch import jsonio
    from routerwatch.cli import wire_login_attempt
    from routerwatch.contract import wire_value
    events = _events_of_every_fixture()
    assert len(events) > 100
    assert any(e.user and not e.user.isprintable() for e in events)   # the hostile corpus
    for event in events:
        assert wire_login_attempt(event) == jsonio.dumps(wire_value(event._asdict()))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.just(0.0), st.integers(0, 10 ** 12).map(lambda ms: ms / 1000.0),
                 st.floats(-1e11, 1e13, allow_nan=False)),
       st.one_of(st.none(), st.text(max_size=70)), st.one_of(st.none(), st.text(max_size=40)),
       st.one_of(st.none(), st.integers(0, 65535)), st.one_of(st.none(), st.integers(0, 10 ** 10)),
       st.integers(1, 1000))
def test_check_log_line_of_any_field_values(when, user, ip, port, pid, attempts):
    from routerwatch import jsonio
    from routerwatch.cli import wire_login_attempt
    from routerwatch.contract import wire_value
    from routerwatch.events import LoginAttempt
    for service, outcome, method in (("ssh", "failure", "exit_summary"),
                                     ("luci", "success", "password")):
        event = LoginAttempt(when, service, outcome, method, user, ip, port, pid, attempts)
        assert json.loads(wire_login_attempt(event)) == json.loads(
            jsonio.dumps(wire_value(event._asdict())))
        if abs(when) >= 1e-4 or when == 0:
            assert wire_login_attempt(event) == jsonio.dumps(wire_value(event._asdict()))


# ------------------------------------------------------------------ blocks vs lines
# check-log reads blocks and cuts out only the lines that may be about logins; whatever the
# lines and wherever the blocks end, it must print what feeding the lines one at a time prints.

def _fixture_lines():
    lines = []
    for path in sorted(LOGS.glob("*.log")):
        lines.extend(path.read_bytes().splitlines())
    return lines


FIXTURE_LINES = _fixture_lines()
STAMP = b"Tue Nov 25 04:11:31 2025 "
CAP = 2048           # check-log's line cap (max_line_bytes)
LOGIN_LINE = st.one_of(
    st.sampled_from(FIXTURE_LINES),
    st.builds(lambda pid, user, port: STAMP + b"authpriv.warn dropbear[%d]: Bad password attempt "
              b"for '%s' from 203.0.113.%d:%d" % (pid, user, pid % 250, port),
              st.integers(1, 6), st.binary(max_size=12), st.integers(1, 65535)),
    st.builds(lambda pid, port: STAMP + b"authpriv.info dropbear[%d]: Child connection from "
              b"198.51.100.9:%d" % (pid, port), st.integers(1, 6), st.integers(1, 65535)),
    st.builds(lambda pid, fails: STAMP + b"authpriv.info dropbear[%d]: Exit before auth from "
              b"<198.51.100.9:22>: (user 'root', %d fails): Exited normally" % (pid, fails),
              st.integers(1, 6), st.integers(0, 12)),
    st.builds(lambda user: STAMP + b"daemon.err uhttpd[2]: luci: failed login on / for %s from "
              b"192.0.2.4" % user, st.binary(max_size=12)),
)
OTHER_LINE = st.one_of(
    st.just(b""),
    st.just(STAMP + b"daemon.info dnsmasq[1]: query[A] time.openwrt.org from 192.168.1.108"),
    st.binary(max_size=60),
    st.builds(lambda a, b: a + b"dropbear" + b, st.binary(max_size=20), st.binary(max_size=20)),
    st.builds(lambda a: a + b"luci: ", st.binary(max_size=20)),
)


def _overlong(line, length, word, word_at):
    """`line` padded to `length` bytes, with a login word placed at byte `word_at` (around the
    cap: whole before it, cut by it, or beyond it)."""
    padded = bytearray((line + b" " + b"x" * length)[:length])
    padded[word_at:word_at + len(word)] = word
    return bytes(padded[:length])


OVERLONG_LINE = st.builds(_overlong, st.one_of(LOGIN_LINE, st.just(STAMP + b"user.notice x: a")),
                          st.sampled_from([CAP - 1, CAP, CAP + 1, CAP + 7, 3 * CAP, 70000]),
                          st.sampled_from([b"dropbear", b"luci: "]),
                          st.sampled_from([0, 40, CAP - 8, CAP - 6, CAP - 5, CAP - 1, CAP + 2,
                                           2 * CAP]))
LINE = st.one_of(LOGIN_LINE, LOGIN_LINE.map(lambda line: line + b"\r"), OTHER_LINE, OVERLONG_LINE)


class _Blocks:
    """A file whose read() gives the data in blocks of the given sizes (like a pipe)."""

    def __init__(self, data, sizes):
        self.data, self.sizes, self.pos = data, list(sizes), 0

    def read(self, size):
        step = min(size, self.sizes.pop(0) if self.sizes else size)
        chunk = self.data[self.pos:self.pos + step]
        self.pos += len(chunk)
        return chunk


def _line_by_line(data):
    """The plainest reading: split on newlines, cut each line at the cap, feed it alone."""
    from routerwatch.cli import wire_login_attempt
    from routerwatch.sources.logread import LineTally, LoginLines, reference_of
    import time
    lines, tally, reference = LoginLines(), LineTally(), reference_of(time.time())
    out, events = [], []
    pieces = data.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()
    for raw in pieces:
        raw = raw[:CAP]
        before = lines.recognised
        events.extend(lines.feed(raw, reference))
        if lines.recognised == before and (b"dropbear" in raw or b"luci: " in raw):
            tally.not_recognised(raw, reference)
    events.extend(lines.flush())
    for event in events:
        out.append(wire_login_attempt(event) + "\n")
    outcomes = {}
    for event in events:
        outcomes[event.outcome] = outcomes.get(event.outcome, 0) + 1
    summary = {"lines": len(pieces), "recognised": len(events), "outcomes": outcomes,
               "distinct_sources": len({e.source_ip for e in events if e.source_ip}),
               "unparsed_login_lines": tally.unparsed, "unparsed_samples": tally.unparsed_samples}
    return "".join(out), summary


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(st.lists(LINE, max_size=40), st.booleans(),
       st.lists(st.integers(1, 70000) | st.integers(1, 64), max_size=30))
def test_check_log_reads_blocks_as_it_reads_lines(lines, newline_at_end, sizes):
    from routerwatch.cli import write_login_events
    data = b"\n".join(lines) + (b"\n" if newline_at_end and lines else b"")
    written = []
    summary = write_login_events(_Blocks(data, sizes), written.append)
    assert ("".join(written), summary) == _line_by_line(data)
