"""agent.degraded: given a source that read and then cannot, for longer than a few of its
intervals, one high finding naming the watcher and the error; when it reads again, one info
finding with how long it was blind."""
import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from fixtures.build_tree import build_tree
from routerwatch import config as cfg
from routerwatch.detectors.agent_degraded import AgentDegraded, Config
from routerwatch.events import SourceHealth
from routerwatch.runtime import Agent
from routerwatch.sinks.stdout import StdoutSink
from routerwatch.sources.conntrack import ConntrackSource
from routerwatch.sources.logread import LogSource

REPO = Path(__file__).resolve().parents[3]


def health(t, error=None, watcher="connections", source="ConntrackSource", interval=10.0):
    return SourceHealth(time=t, watcher=watcher, source=source, error=error, interval=interval)


def test_an_outage_longer_than_its_intervals_is_high_once_and_its_end_is_noted():
    detector = AgentDegraded(Config())
    assert detector.observe(health(0.0)) == []
    assert detector.observe(health(10.0, "cannot read /proc/net/nf_conntrack: gone")) == []
    assert detector.tick(50.0) == []                     # 40 s: under min_seconds (60)
    (finding,) = detector.tick(70.0)
    assert (finding.kind, finding.severity) == ("agent.degraded", "high")
    assert finding.evidence == {"watcher": "connections", "source": "ConntrackSource",
                                "error": "cannot read /proc/net/nf_conntrack: gone",
                                "since": 10.0, "seconds": 60.0, "recovered": False,
                                "interval": 10.0}
    assert "connections" in finding.summary and "nf_conntrack" in finding.summary
    assert detector.tick(500.0) == []                    # once per outage
    assert detector.observe(health(600.0, "another reason")) == []
    (recovered,) = detector.observe(health(700.0))
    assert (recovered.severity, recovered.evidence["recovered"]) == ("info", True)
    assert recovered.evidence["seconds"] == 690.0 and recovered.incident != finding.incident
    # the next outage is a new incident, reported again
    detector.observe(health(800.0, "gone again"))
    (again,) = detector.tick(900.0)
    assert again.severity == "high" and again.incident not in (finding.incident,
                                                                recovered.incident)


def test_slow_sources_wait_their_intervals_and_short_blips_are_quiet():
    detector = AgentDegraded(Config(intervals=3, min_seconds=60))
    detector.observe(health(0.0, interval=900.0, watcher="integrity", source="IntegritySource"))
    detector.observe(health(900.0, "no overlay", interval=900.0, watcher="integrity",
                            source="IntegritySource"))
    assert detector.tick(900.0 + 2699) == []
    assert len(detector.tick(900.0 + 2700)) == 1
    blip = AgentDegraded(Config())
    blip.observe(health(0.0))
    blip.observe(health(10.0, "busy"))
    assert blip.observe(health(20.0)) == [] and blip.tick(1000.0) == []


def test_a_source_that_never_read_is_not_degraded():
    """A dumb access point without conntrack, an ext4 image without overlay: nothing to watch."""
    detector = AgentDegraded(Config())
    detector.observe(health(0.0, "cannot read /proc/net/nf_conntrack: No such file"))
    assert detector.tick(10_000.0) == []


def test_each_source_has_its_own_outage():
    detector = AgentDegraded(Config())
    for source in ("ConntrackSource", "ListenerSource"):
        detector.observe(health(0.0, source=source))
    detector.observe(health(10.0, "a", source="ConntrackSource"))
    detector.observe(health(40.0, "b", source="ListenerSource"))
    assert [f.evidence["source"] for f in detector.tick(75.0)] == ["ConntrackSource"]
    assert [f.evidence["source"] for f in detector.tick(105.0)] == ["ListenerSource"]


# ---------------------------------------------------------------- real sources in the loop

def loop_agent(tmp_path, tree, sources, **options):
    conf = cfg.load(defaults={"root": str(tree), "state_dir": str(tmp_path / "state")},
                    overrides=["agent.degraded.%s=%s" % item for item in options.items()])
    out = io.StringIO()
    agent = Agent(conf, "rw-test01", sources(conf), [AgentDegraded(conf.detectors["agent.degraded"])],
                  StdoutSink(out), run_id="0123456789abcdef", started=0.0)
    return agent, out


def kinds(agent_out):
    return [json.loads(line) for line in agent_out.getvalue().splitlines()]


def test_conntrack_unloaded_makes_the_connections_watcher_degraded(tmp_path):
    tree = build_tree("router-clean", tmp_path / "tree")
    agent, out = loop_agent(tmp_path, tree, lambda c: [ConntrackSource(c)])
    agent.step(0.0)
    table = tree / "proc/net/nf_conntrack"
    saved = table.read_bytes()
    table.unlink()                                      # rmmod nf_conntrack
    for t in range(10, 80, 10):
        agent.step(float(t))
    (degraded,) = kinds(out)
    assert degraded["kind"] == "agent.degraded" and degraded["severity"] == "high"
    assert degraded["evidence"]["watcher"] == "connections"
    assert degraded["evidence"]["error"].startswith("cannot read /proc/net/nf_conntrack")
    table.write_bytes(saved)
    agent.step(90.0)
    recovered = kinds(out)[-1]
    assert (recovered["severity"], recovered["evidence"]["recovered"]) == ("info", True)


def test_proc_unmounted_makes_the_processes_and_listeners_watchers_degraded(tmp_path):
    from routerwatch.sources.processes import ProcessSource
    from routerwatch.sources.sockets import ListenerSource
    tree = build_tree("router-attacked", tmp_path / "tree")
    agent, out = loop_agent(tmp_path, tree, lambda c: [ListenerSource(c), ProcessSource(c)])
    agent.step(0.0)
    os.rename(tree / "proc", tree / "proc.away")        # umount /proc
    os.mkdir(tree / "proc")
    for t in range(30, 200, 30):
        agent.step(float(t))
    errors = {a["evidence"]["watcher"]: a["evidence"]["error"] for a in kinds(out)}
    assert errors == {"connections": "cannot read /proc/net/tcp, tcp6, udp, udp6",
                      "processes": "no processes in /proc (not mounted?)"}, kinds(out)


def test_logread_that_keeps_exiting_is_degraded_and_noted_when_it_follows_again(tmp_path):
    """`/etc/init.d/log stop`: logread -f cannot reach logd and exits at once, again and again."""
    logd = tmp_path / "logd-running"
    fake = tmp_path / "logread"
    fake.write_text("#!/bin/sh\n[ -e %s ] || exit 1\necho 'Mon Jan  1 00:00:00 2024 "
                    "daemon.info logd: started'\nexec sleep 600\n" % logd)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    logd.touch()
    conf_overrides = {"log": {"source": "logread", "command": "%s -f" % fake,
                              "restart_max_seconds": 1}}
    tree = build_tree("router-clean", tmp_path / "tree")
    conf = cfg.load(defaults=dict(conf_overrides, root=str(tree),
                                  state_dir=str(tmp_path / "state")))
    source = LogSource(conf)
    out = io.StringIO()
    agent = Agent(conf, "rw-test01", [source], [AgentDegraded(conf.detectors["agent.degraded"])],
                  StdoutSink(out), run_id="0123456789abcdef", started=0.0)
    try:
        assert wait_for(lambda: source.lines_read >= 1)   # following the log
        agent.step(0.0)
        logd.unlink()                                   # logd stopped ...
        source._proc.kill()                             # ... and the running logread ends
        assert wait_for(lambda: source.restarts >= 2)
        for t in (10.0, 40.0, 70.0):
            agent.step(t)
        (degraded,) = kinds(out)
        assert degraded["evidence"]["watcher"] == "logins"
        assert "ended (exit status 1)" in degraded["evidence"]["error"]
        logd.touch()                                    # /etc/init.d/log start
        assert wait_for(lambda: source.failure is None)
        agent.step(100.0)
        assert kinds(out)[-1]["evidence"]["recovered"] is True
    finally:
        source.close()


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_the_running_agent_reports_conntrack_gone(tmp_path):
    tree = build_tree("router-clean", tmp_path / "tree")
    config = tmp_path / "agent.json"
    config.write_text(json.dumps({
        "device_id": "rw-degraded01", "root": str(tree), "state_dir": str(tmp_path / "state"),
        "run_dir": str(tmp_path / "run"),
        "log": {"source": "file", "path": str(tree / "var/log/messages")},
        "intervals": {"connections": 1, "processes": 3600, "integrity": 86400},
        "detectors": {"agent.degraded": {"min_seconds": 2}}}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO / "agent"), os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen([sys.executable, "-m", "routerwatch.cli", "--config", str(config)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    lines = []
    threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, b"")),
                     daemon=True).start()
    try:
        time.sleep(2.0)
        (tree / "proc/net/nf_conntrack").unlink()

        def degraded():
            return [a for a in map(json.loads, lines) if a["kind"] == "agent.degraded"]
        assert wait_for(degraded, 30.0), lines
        assert degraded()[0]["evidence"]["watcher"] == "connections"
        assert process.poll() is None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def test_the_overlay_no_longer_mounted_makes_the_integrity_watcher_degraded(tmp_path):
    from routerwatch.sources.overlay import IntegritySource
    tree = build_tree("router-clean", tmp_path / "tree")
    agent, out = loop_agent(tmp_path, tree, lambda c: [IntegritySource(c)])
    agent.step(0.0)                                     # the first scan reads the overlay
    while agent.sources[0].scanning:
        agent.step(1.0, force_poll=True)
    os.rename(tree / "overlay/upper", tree / "overlay/upper.away")   # umount /overlay
    for t in range(1000, 4000, 300):
        agent.step(float(t))
    degraded = [a for a in kinds(out) if a["kind"] == "agent.degraded"]
    assert [(a["severity"], a["evidence"]["watcher"]) for a in degraded] == [
        ("high", "integrity")]
    assert degraded[0]["evidence"]["error"] == "no overlay at /overlay/upper with /rom beside it"
    os.rename(tree / "overlay/upper.away", tree / "overlay/upper")
    agent.step(5000.0)
    assert [a for a in kinds(out) if a["kind"] == "agent.degraded"][-1]["evidence"][
        "recovered"] is True
