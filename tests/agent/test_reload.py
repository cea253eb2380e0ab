"""A config reload (SIGHUP, sent by every `uci commit` through procd) applies the new options and
keeps what the detectors learned and the incident gate: a port opened just before a reload is
still new after it, a known port is not learned again, a half-done brute force still counts."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from connfixtures import listeners, listening

from fixtures.build_tree import build_tree
from routerwatch import config as cfg
from routerwatch.bounded import BoundedDict
from routerwatch.detectors import detector_classes
from routerwatch.detectors.base import Detector, DetectorConfig, Finding, same_state
from routerwatch.detectors.conn_new_listener import Config as ListenerConfig
from routerwatch.detectors.conn_new_listener import ConnNewListener
from routerwatch.detectors.login_bruteforce import Config as BruteConfig
from routerwatch.detectors.login_bruteforce import LoginBruteforce
from routerwatch.events import LoginAttempt
from routerwatch.runtime import Agent
from routerwatch.sinks.stdout import StdoutSink

REPO = Path(__file__).resolve().parents[2]
HEALTHY = (listening(22, process="dropbear", exe="/usr/sbin/dropbear"),
           listening(80, process="uhttpd", exe="/usr/sbin/uhttpd"))


def reloaded(old, **options):
    """The detector a reload builds from the new options, after it adopted the old one."""
    new = type(old)(type(old.config)(**options))
    new.adopt(old)
    return new


def test_a_port_opened_before_a_reload_is_still_reported_after_it():
    old = ConnNewListener(ListenerConfig())
    assert old.observe(listeners(1.0, *HEALTHY)) == []
    new = reloaded(old, baseline_seconds=60)
    backdoor = listening(4444, process="nc", exe="/usr/bin/nc")
    (finding,) = new.observe(listeners(1000.0, *HEALTHY, backdoor))
    assert finding.evidence["port"] == 4444 and finding.evidence["reasons"] == ["new port"]
    # a fresh detector (what a reload used to build) would have taken it into its baseline
    assert ConnNewListener(ListenerConfig()).observe(listeners(1000.0, *HEALTHY, backdoor)) == []


def test_a_reload_applies_the_new_options_to_what_was_learned():
    old = ConnNewListener(ListenerConfig())
    old.observe(listeners(1.0, *HEALTHY))
    new = reloaded(old, backdoor_ports="7777,4444")
    assert 4444 in new.backdoor_ports and 4444 not in old.backdoor_ports
    (finding,) = new.observe(listeners(1000.0, *HEALTHY, listening(4444)))
    assert finding.severity == "high" and "known backdoor port" in finding.evidence["reasons"]
    assert new.observe(listeners(1010.0, *HEALTHY)) == []     # 22 and 80 stay known


def failure(t, ip="203.0.113.7"):
    return LoginAttempt(time=t, service="ssh", outcome="failure", method="password", user="root",
                        source_ip=ip, source_port=40000)


def test_failures_before_a_reload_count_after_it_with_the_new_threshold():
    old = LoginBruteforce(BruteConfig(threshold=10))
    for i in range(6):
        assert old.observe(failure(1000.0 + i)) == []
    new = reloaded(old, threshold=8)
    assert new.observe(failure(1010.0)) == []
    (finding,) = new.observe(failure(1011.0))
    assert finding.evidence["failures"] == 8


def test_a_smaller_cap_after_a_reload_keeps_the_newest_and_counts_the_rest():
    old = LoginBruteforce(BruteConfig())
    for i in range(20):
        old.observe(failure(1000.0 + i, "198.51.100.%d" % i))
    new = reloaded(old, max_sources=16)
    table = new._sources
    assert isinstance(table, BoundedDict) and table.cap == 16 and len(table) == 16
    assert table.evicted == 4 and "198.51.100.19" in table and "198.51.100.0" not in table


@pytest.mark.parametrize("kind", sorted(detector_classes()))
def test_every_detector_built_twice_is_the_same_so_untouched_values_take_new_options(kind):
    """adopt() keeps what differs from a fresh instance; a value that cannot be compared with a
    fresh one's would be carried over and the new options would never reach it."""
    cls = detector_classes()[kind]
    config = cfg.load().detectors[kind]
    a, b = vars(cls(config)), vars(cls(config))
    assert a.keys() == b.keys()
    different = [name for name in a if name != "config" and not same_state(a[name], b[name])]
    assert different == []
    fresh = cls(config)
    fresh.adopt(cls(config))
    assert all(same_state(vars(fresh)[n], a[n]) for n in a if n != "config")


class Collect(StdoutSink):
    def __init__(self):
        super().__init__(stream=open(os.devnull, "w"))
        self.anomalies = []

    def send_anomaly(self, anomaly):
        self.anomalies.append(anomaly)


class EveryFailure(Detector):
    """A finding per failure, one incident per source: only the gate keeps repeats quiet."""
    kind = "login.testonly"
    consumes = (LoginAttempt,)

    def observe(self, event):
        return [Finding(kind=self.kind, severity="medium", summary="failure", evidence={},
                        incident=event.source_ip, time=event.time)]


def test_the_incident_gate_survives_a_reload(tmp_path):
    conf = cfg.load(defaults={"root": str(tmp_path), "state_dir": str(tmp_path / "state")})

    def agent(previous=None):
        return Agent(conf, "rw-test01", [], [EveryFailure(DetectorConfig(cooldown=900))],
                     Collect(), run_id="0123456789abcdef", started=0.0, previous=previous)

    first = agent()
    assert len(first._feed(failure(1.0), 1.0)) == 1
    second = agent(previous=first)
    # within the cool-down the same incident is a counted repeat, not a new message
    assert second._feed(failure(20.0), 20.0) == []
    assert agent()._feed(failure(20.0), 20.0) != []      # what a reload without the gate would send


# ---------------------------------------------------------------- the real process and SIGHUP

def write_config(path, tree, **listener_options):
    path.write_text(json.dumps({
        "device_id": "rw-reload01", "root": str(tree), "state_dir": str(path.parent / "state"),
        "run_dir": str(path.parent / "run"),
        "log": {"source": "file", "path": str(tree / "var/log/messages")},
        "intervals": {"connections": 3600, "processes": 3600, "integrity": 86400},
        "detectors": {"conn.new_listener": dict(baseline_seconds=0, **listener_options)}}))


def test_sighup_after_opening_a_port_reports_the_port(tmp_path):
    tree = build_tree("router-clean", tmp_path / "tree")
    config = tmp_path / "agent.json"
    write_config(config, tree)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO / "agent"), os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "routerwatch.cli", "--config", str(config)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        start_new_session=True)
    lines, log = [], []
    readers = [threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, b"")),
                                daemon=True),
               threading.Thread(target=lambda: log.extend(iter(process.stderr.readline, b"")),
                                daemon=True)]
    for reader in readers:
        reader.start()

    def wait_for(condition, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.05)
        return condition()

    try:
        assert wait_for(lambda: any(b"started" in line for line in log)), log
        time.sleep(1.0)     # the first listener scan (the baseline) runs at start
        tcp = tree / "proc/net/tcp"
        # port 4444 (0x115C) starts listening, then a `uci commit` sends SIGHUP; with a
        # connections interval of an hour, the first scan that can see it is the reloaded one's
        tcp.write_text(tcp.read_text() + "   9: 00000000:115C 00000000:0000 0A 00000000:00000000 "
                       "00:00000000 00000000     0        0 29999 1 0000000000000000 100 0 0 10 0\n")
        write_config(config, tree, backdoor_ports="7777,11288,4444")
        os.kill(process.pid, signal.SIGHUP)
        assert wait_for(lambda: any(b"configuration reloaded" in line for line in log)), log

        def reported():
            return [a for a in map(json.loads, lines) if a["kind"] == "conn.new_listener"]
        assert wait_for(lambda: reported()), (lines, log)
        time.sleep(0.5)
        (finding,) = reported()
        assert finding["evidence"]["port"] == 4444
        # the new option is in force (4444 is now a backdoor port) and the old baseline kept
        assert finding["severity"] == "high"
        assert "known backdoor port" in finding["evidence"]["reasons"]
        assert finding["evidence"]["first_scan"] is False
        assert process.poll() is None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
