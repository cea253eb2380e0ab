"""The loop: events reach the detectors that consume them, repeats are gated, messages numbered."""
import io
import json
import time

from routerwatch import config as cfg
from routerwatch.detectors.base import Detector, DetectorConfig, Finding, IncidentGate
from routerwatch.events import LanNetworks, LoginAttempt
from routerwatch.runtime import Agent
from routerwatch.sinks.stdout import StdoutSink


class ListSource:
    """A polled source that hands out prepared batches, one per poll."""
    interval = 10

    def __init__(self, batches):
        self.batches = list(batches)
        self.polls = 0

    def poll(self, now):
        self.polls += 1
        return self.batches.pop(0) if self.batches else []

    def counters(self):
        return {"lines": 7}

    def drops(self):
        return {}

    def close(self):
        pass


class EveryFailure(Detector):
    kind = "login.testonly"
    consumes = (LoginAttempt,)

    def observe(self, event):
        if event.outcome != "failure":
            return []
        return [Finding(kind=self.kind, severity="medium", summary="failure from %s\nmore"
                        % event.source_ip, evidence={"ip": event.source_ip},
                        incident=event.source_ip, time=event.time)]


def attempt(t, ip="203.0.113.9", outcome="failure"):
    return LoginAttempt(time=t, service="ssh", outcome=outcome, method="password", user="root",
                        source_ip=ip, source_port=4000, pid=1)


def make_agent(tmp_path, batches, cooldown=100):
    conf = cfg.load(defaults={"root": str(tmp_path)})
    out = io.StringIO()
    detector = EveryFailure(DetectorConfig(cooldown=cooldown))
    source = ListSource(batches)
    agent = Agent(conf, "r1", [source], [detector], StdoutSink(out), run_id="0123456789abcdef",
                  started=0.0)
    return agent, source, out


def test_one_incident_is_one_anomaly_then_an_aggregate(tmp_path):
    agent, source, out = make_agent(tmp_path, [
        [attempt(1000), attempt(1001), attempt(1002), attempt(1003, ip="198.51.100.7")],
    ])
    first = agent.step(1000)
    assert [(a.seq, a.evidence["ip"], a.count) for a in first] == [
        (1, "203.0.113.9", 1), (2, "198.51.100.7", 1)]
    assert first[0].summary == "failure from 203.0.113.9 more"   # one line, always
    assert agent.step(1050) == []                                # cooldown running, not due
    later = agent.step(1101)                                     # cooldown over: the repeats
    assert [(a.seq, a.count) for a in later] == [(3, 2)]
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    assert all(line["device"] == "r1" and line["run"] == "0123456789abcdef" for line in lines)


def test_polled_sources_run_on_their_interval(tmp_path):
    agent, source, _ = make_agent(tmp_path, [[], [], []])
    agent.step(0)
    agent.step(5)
    agent.step(10)
    assert source.polls == 2


def test_heartbeat_carries_counters_and_drops(tmp_path):
    agent, _, _ = make_agent(tmp_path, [])
    beat = agent.heartbeat(30)
    assert beat.counters["lines"] == 7
    assert "incidents" in beat.drops
    assert beat.uptime == 30 and beat.rss_kb > 0


def test_gate_is_bounded():
    gate = IncidentGate(cap=10)
    for i in range(50):
        gate.admit(Finding("k.x", "low", "s", {}, str(i), 0.0), 60)
    assert gate.evicted == 40


class SlowScan(ListSource):
    """A polled source whose read is spread over several polls, like a CPU-capped scan."""

    @property
    def unfinished(self):
        return bool(self.batches)


def test_complete_pass_keeps_polling_an_unfinished_read(tmp_path):
    agent, _, out = make_agent(tmp_path, [])
    scan = SlowScan([[attempt(1000)], [attempt(1001, ip="198.51.100.1")],
                     [attempt(1002, ip="198.51.100.2")]])
    agent.sources = [scan]
    produced = agent.complete_pass(1000)
    assert scan.polls == 3
    assert [a.evidence["ip"] for a in produced] == ["203.0.113.9", "198.51.100.1", "198.51.100.2"]


class BrokenSource(ListSource):
    def poll(self, now):
        self.polls += 1
        raise IndexError("psutil found no process directories")


def test_a_failing_source_is_counted_and_the_loop_goes_on(tmp_path):
    agent, source, _ = make_agent(tmp_path, [[attempt(1000)]])
    broken = BrokenSource([])
    agent.sources = [broken, source]
    produced = agent.step(1000)
    assert [a.evidence["ip"] for a in produced] == ["203.0.113.9"]
    agent.step(1010)
    assert broken.polls == 2
    assert agent.drops()["source_errors"] == 2


def test_lan_networks_reach_every_detector(tmp_path):
    agent, _, _ = make_agent(tmp_path, [[LanNetworks(time=1, networks=("2001:db8:1::/64",))]])
    assert "2001:db8:1::5" not in agent.detectors[0].inside
    agent.step(1)
    assert "2001:db8:1::5" in agent.detectors[0].inside
    assert "2001:db8:2::5" not in agent.detectors[0].inside


def test_a_replayed_log_is_gated_by_event_time(tmp_path):
    # read in one pass at loop time 1000.5: the repeats of .9 are due once the log's own time
    # is a cool-down past the first, not when the loop's clock says so
    agent, _, _ = make_agent(tmp_path, [[attempt(1000), attempt(1050),
                                         attempt(1120, ip="198.51.100.7")]])
    produced = agent.step(1000.5)
    assert [(a.evidence["ip"], a.count, a.time) for a in produced] == [
        ("203.0.113.9", 1, 1000), ("198.51.100.7", 1, 1120), ("203.0.113.9", 1, 1050)]


def test_once_gives_each_incident_once_with_its_final_count(tmp_path):
    batch = [attempt(1000 + 60 * i) for i in range(200)] + [attempt(5000, ip="198.51.100.7")]
    agent, _, out = make_agent(tmp_path, [batch])
    produced = agent.complete_pass(time.time())
    assert [(a.evidence["ip"], a.count, a.time) for a in produced] == [
        ("203.0.113.9", 200, 1000 + 60 * 199), ("198.51.100.7", 1, 5000)]
    assert len(out.getvalue().splitlines()) == 2


def test_a_held_incident_is_never_lost_when_the_gate_is_full():
    gate = IncidentGate(cap=10, hold=True)
    sent = []
    for i in range(50):
        sent.extend(gate.admit(Finding("k.x", "low", "s", {}, str(i), float(i)), 60))
    sent.extend(gate.flush())
    assert sorted(int(f.incident) for f, _ in sent) == list(range(50))
    assert gate.evicted == 0


class FlakySource(ListSource):
    watcher = "connections"
    fail = True

    def poll(self, now):
        if self.fail:
            raise OSError("[Errno 2] No such file or directory: '/proc/net/nf_conntrack'")
        return []


def test_watcher_health_names_the_watcher_whose_source_fails_until_it_reads_again(tmp_path):
    agent, _, _ = make_agent(tmp_path, [])
    flaky = FlakySource([])
    agent.sources = [flaky]
    agent.step(1000)
    health = agent.watcher_health()
    assert health["connections"] == ("reading failed: [Errno 2] No such file or directory: "
                                     "'/proc/net/nf_conntrack'")
    assert health["processes"] == "" and health["integrity"] == ""
    assert health["logins"] == "no log is followed (log.source is none)"
    flaky.fail = False
    agent.step(1010)
    assert agent.watcher_health()["connections"] == ""


def test_the_loop_sleeps_until_the_next_poll_is_due(tmp_path):
    import threading
    from routerwatch import runtime
    agent, source, _ = make_agent(tmp_path, [])
    agent.step(100.0)
    # polled at 100 with a 10 s interval: due at 110; the wait is capped so ticks still run
    assert agent.idle_wait(100.0) == runtime.MAX_IDLE_WAIT
    assert agent.idle_wait(107.5) == 2.5
    assert agent.idle_wait(111.0) == 0.0

    # a stream source wakes the waiting loop at once (a login line is not held until a poll)
    stop = threading.Event()
    clock = iter([200.0, 200.0] + [200.0 + i for i in range(1, 1000)]).__next__
    passes = []
    real_step = agent.step

    def step(now, force_poll=False):
        passes.append(now)
        if len(passes) == 2:
            stop.set()
            agent.wake.set()        # as the SIGTERM handler does
        return real_step(now, force_poll)

    agent.step = step
    agent.sink.start = lambda _agent: None
    thread = threading.Thread(target=agent.run, args=(stop,), kwargs={"clock": clock})
    started = time.monotonic()
    thread.start()
    time.sleep(0.2)
    agent.wake.set()
    thread.join(10)
    assert not thread.is_alive() and len(passes) == 2
    assert time.monotonic() - started < runtime.MAX_IDLE_WAIT
