"""The loop: drain the log stream, poll sources on their intervals, feed detectors, gate the
findings into numbered Anomalies and hand them to the sink. The sink never blocks (it queues).

Sources come in two shapes (see sources/__init__.py):
  stream sources  .drain(now, limit) -> events already waiting (a thread follows logread)
  polled sources  .interval seconds, .poll(now) -> events of one read
Both have .counters() and .drops() (name -> int) for the heartbeat, and .close().
"""
import logging
import os
import secrets
import threading
import time
from dataclasses import replace

from . import __version__
from .contract import (Anomaly, ContractError, Heartbeat, Inventory, MAX_SUMMARY_CHARS, clip,
                       validate, wire_text, wire_value)
from .detectors.base import IncidentGate
from .program_hash import ProgramHasher
from .events import FirmwareIdentity, LanNetworks, SourceHealth
from .inside import Inside
from .sources import watcher_of

log = logging.getLogger("routerwatch")

STREAM_DRAIN_LIMIT = 5000     # events taken from a stream per loop pass, so polls are never starved
# the longest wait between passes: the loop sleeps until the next poll, heartbeat or inventory
# is due (a login line or a signal wakes it sooner); detectors' ticks and the gate's cool-downs
# need no more precision than this
MAX_IDLE_WAIT = 5.0


class Agent:
    def __init__(self, config, device_id, sources, detectors, sink, run_id=None, started=None,
                 previous=None):
        """previous: the Agent this one replaces after a config reload; its detectors' learned
        state and its incident gate carry over, so a reload only applies the new options."""
        self.config = config
        self.device_id = device_id
        self.run_id = run_id or secrets.token_hex(8)
        self.sources = list(sources)
        self.detectors = list(detectors)
        self.sink = sink
        self.started = time.time() if started is None else started
        self.gate = IncidentGate()
        # the sha256 of the program an anomaly names (fleet.implant compares it across routers)
        self.program_hasher = ProgramHasher(os.path.join(config.root, "proc"), config.root)
        self._seq = {"anomaly": 0, "heartbeat": 0, "inventory": 0}
        self._next_poll = {}
        self._next_heartbeat = 0.0
        self._next_inventory = 0.0
        self._identity = None
        self._routes = {}
        for detector in self.detectors:
            for event_type in detector.consumes:
                self._routes.setdefault(event_type, []).append(detector)
        self._cooldowns = {d.kind: d.config.cooldown for d in self.detectors}
        if previous is not None:
            self._adopt(previous)
        # stream sources set this when something arrives, so the loop need not sleep it out
        self.wake = threading.Event()
        for source in self.sources:
            if hasattr(source, "waker"):
                source.waker = self.wake
        for detector in self.detectors:
            if hasattr(detector, "use_state_dir"):   # detectors that remember across restarts
                detector.use_state_dir(os.path.dirname(config.state_file("-")))
        self._health = {}             # id(source) -> the error last sent in a SourceHealth
        self.anomalies_made = 0
        self.events_seen = 0
        self.source_errors = 0
        self._source_problem = {}        # id(source) -> why its last poll failed (health)
        self.detector_errors = 0      # a detector raised: its event is skipped, the loop goes on
        self.send_errors = 0          # a sink raised on one message: that message is lost, counted
        self.evidence_cut = 0         # evidence too large for the contract, sent in a short form
        self._cpu_mark = (time.time(), _cpu_seconds())

    def _adopt(self, previous):
        self.gate = previous.gate
        self.program_hasher = previous.program_hasher
        before = {d.kind: d for d in previous.detectors}
        for detector in self.detectors:
            old = before.get(detector.kind)
            if old is None or type(old) is not type(detector):
                continue
            try:
                detector.adopt(old)
            except Exception:  # noqa: BLE001 - worst case the detector learns again
                log.exception("detector %s: learned state not carried over the reload",
                              detector.kind)

    # ------------------------------------------------------------------ one pass
    def step(self, now, force_poll=False):
        """One pass of the loop at time `now`; returns the Anomalies it produced."""
        produced = []
        for source in self.sources:
            if hasattr(source, "drain"):
                events = source.drain(now, STREAM_DRAIN_LIMIT)
                produced.extend(self._report_health(source, now))
            else:
                due = self._next_poll.get(id(source), 0.0)
                if not force_poll and now < due:
                    continue
                self._next_poll[id(source)] = now + source.interval
                try:
                    events = source.poll(now)
                except OSError as exc:  # a /proc file vanished or is unreadable this time
                    self.source_errors += 1
                    self._source_problem[id(source)] = "reading failed: %s" % exc
                    log.warning("source %s: %s", type(source).__name__, exc)
                    produced.extend(self._report_health(source, now))
                    continue
                except Exception as exc:  # noqa: BLE001 - one source's bug must not stop the watching
                    self.source_errors += 1
                    self._source_problem[id(source)] = "failed: %s" % type(exc).__name__
                    log.exception("source %s failed; it is tried again next interval",
                                  type(source).__name__)
                    produced.extend(self._report_health(source, now))
                    continue
                self._source_problem.pop(id(source), None)
                produced.extend(self._report_health(source, now))
            for event in events:
                produced.extend(self._feed(event, now))
        for detector in self.detectors:
            produced.extend(self._admit_all(self._call(detector, detector.tick, now), now))
        for finding, count in self.gate.expire(now, lambda kind: self._cooldowns.get(kind, 0)):
            produced.append(self._stamp(finding, count, now))
        for anomaly in produced:
            self._send(self.sink.send_anomaly, anomaly)
        if now >= self._next_inventory and self._identity is not None:
            self._next_inventory = now + self.config.intervals.inventory
            self._send(self.sink.send_inventory, self._inventory(now))
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.config.intervals.heartbeat
            self._send(self.sink.send_heartbeat, self.heartbeat(now))
            if hasattr(self.sink, "send_health"):   # sinks that show the watchers' health
                try:
                    self.sink.send_health(self.watcher_health(), now)
                except Exception:  # noqa: BLE001 - as in _send: counted, never fatal
                    self.send_errors += 1
                    log.exception("watcher health not sent")
        return produced

    def _send(self, send, message):
        """Hand one message to the sink. Whatever goes wrong with one message (a bug, a string
        no encoder takes) is logged and counted; it never ends the watching."""
        try:
            send(message)
        except Exception:  # noqa: BLE001
            self.send_errors += 1
            log.exception("%s %s not sent", message.type, getattr(message, "kind", ""))

    def _call(self, detector, method, arg):
        try:
            return method(arg)
        except Exception:  # noqa: BLE001 - one detector's bug must not blind the others
            self.detector_errors += 1
            log.exception("detector %s failed on %s", detector.kind, type(arg).__name__)
            return ()

    def complete_pass(self, now):
        """One whole pass over every source, for --once: poll everything, then keep going while
        a source says its read is unfinished (a log read to its end, a scan cut by its CPU
        budget). Returns all the Anomalies produced.

        A pass reads a whole log at once, so the gate holds what the detectors find and gives
        each incident once at the end, with its final count and time span."""
        self.gate.hold = True
        produced = self.step(now, force_poll=True)
        while True:
            pending = [s for s in self.sources if getattr(s, "unfinished", False)]
            if not pending:
                break
            for source in pending:
                self._next_poll[id(source)] = 0.0
            produced.extend(self.step(now))
        held = [self._stamp(self._final(finding), count, now)
                for finding, count in self.gate.flush()]
        for anomaly in held:
            self._send(self.sink.send_anomaly, anomaly)
        return produced + held

    def _final(self, finding):
        """A held finding brought up to date by its detector (the incident's final count and
        time span: detectors send findings only as an incident doubles)."""
        for detector in self.detectors:
            if detector.kind == finding.kind and hasattr(detector, "final"):
                return detector.final(finding)
        return finding

    def _failure_of(self, source):
        """Why this source could not read its source on its last read, or None: its poll raised,
        or the source says so itself (`failure`: a log stream that keeps ending, an unreadable
        /proc file, a missing overlay)."""
        return self._source_problem.get(id(source)) or getattr(source, "failure", None)

    def _report_health(self, source, now):
        """A SourceHealth event (for agent.degraded) when whether this source can read its
        source changed, and once for its first read."""
        error = self._failure_of(source)
        if error is not None:
            error = wire_text(error, 200)
        if self._health.get(id(source), "?") == error:
            return ()
        self._health[id(source)] = error
        event = SourceHealth(time=now, watcher=watcher_of(source) or type(source).__name__,
                             source=type(source).__name__, error=error,
                             interval=float(getattr(source, "interval", 0) or 0))
        return self._feed(event, now)

    def _feed(self, event, now):
        self.events_seen += 1
        if isinstance(event, FirmwareIdentity):
            if self._identity is None or event.identity_hash != self._identity.identity_hash \
                    or event.baseline_hash != self._identity.baseline_hash:
                self._next_inventory = 0.0   # send the new identity now
            self._identity = event
        elif isinstance(event, LanNetworks):
            # one rule for every detector that tells the owner's side from the world's
            inside = Inside(event.networks)
            for detector in self.detectors:
                detector.inside = inside
        out = []
        for detector in self._routes.get(type(event), ()):
            out.extend(self._admit_all(self._call(detector, detector.observe, event), now))
        return out

    def _admit_all(self, findings, now):
        out = []
        for finding in findings or ():
            for admitted, count in self.gate.admit(finding, self._cooldowns.get(finding.kind, 0),
                                                   now):
                out.append(self._stamp(admitted, count, admitted.time))
        return out

    def _next(self, message_type):
        self._seq[message_type] += 1
        return self._seq[message_type]

    def _stamp(self, finding, count, now):
        """Finding -> numbered Anomaly. This is where router text becomes wire text: summary and
        evidence go through wire_text/wire_value here, once, for every detector and sink."""
        self.anomalies_made += 1
        evidence = self.program_hasher.add_to(finding.kind, finding.evidence)
        summary = wire_text(" ".join(str(finding.summary).split()), MAX_SUMMARY_CHARS)
        anomaly = Anomaly(device=self.device_id, run=self.run_id, seq=self._next("anomaly"),
                          time=float(max(finding.time, 0.0)), kind=finding.kind,
                          severity=finding.severity, summary=summary or finding.kind,
                          evidence=wire_value(evidence if isinstance(evidence, dict)
                                              else {"value": evidence}),
                          count=max(1, count))
        try:
            validate(anomaly)
        except ContractError as exc:   # evidence over the size cap: keep the finding, shorten it
            self.evidence_cut += 1
            log.warning("%s: evidence shortened: %s", finding.kind, exc)
            anomaly = replace(anomaly, evidence=short_evidence(anomaly.evidence, exc))
        return anomaly

    # ------------------------------------------------------------------ health
    def counters(self):
        counters = {"events": self.events_seen, "anomalies": self.anomalies_made}
        for part in self.sources + [self.sink]:
            for name, value in part.counters().items():
                counters[name] = counters.get(name, 0) + value
        return counters

    def drops(self):
        drops = {"incidents": self.gate.evicted, "source_errors": self.source_errors,
                 "detector_errors": self.detector_errors, "send_errors": self.send_errors,
                 "evidence_cut": self.evidence_cut}
        drops.update(self.program_hasher.drops())
        for part in self.sources + self.detectors + [self.sink]:
            for name, value in part.drops().items():
                drops[name] = drops.get(name, 0) + value
        return drops

    def watcher_health(self):
        """{watcher: why it is not watching properly, or ""} for every watcher switched on: its
        source's last poll failed, or its log stream ended, stopped or went quiet."""
        problems = {name: "" for name in ("logins", "connections", "processes", "integrity")
                    if getattr(self.config.watchers, name)}
        quiet = self.config.homeassistant.quiet_log_seconds
        for source in self.sources:
            watcher = watcher_of(source)
            problem = self._failure_of(source) or ""
            if not problem and hasattr(source, "health_problem"):
                problem = source.health_problem(quiet)
            if problem and not problems.get(watcher, "x"):
                problems[watcher] = problem
        if "logins" in problems and not any(watcher_of(s) == "logins" for s in self.sources):
            problems["logins"] = "no log is followed (log.source is none)"
        return problems

    def heartbeat(self, now):
        wall, cpu = time.time(), _cpu_seconds()
        mark_wall, mark_cpu = self._cpu_mark
        self._cpu_mark = (wall, cpu)
        cpu_percent = 100.0 * (cpu - mark_cpu) / (wall - mark_wall) if wall > mark_wall else 0.0
        return Heartbeat(device=self.device_id, run=self.run_id, seq=self._next("heartbeat"),
                         time=float(max(now, 0.0)), interval=float(self.config.intervals.heartbeat),
                         uptime=max(0.0, now - self.started), rss_kb=_rss_kb(),
                         cpu_percent=round(max(cpu_percent, 0.0), 2),
                         spool_depth=self.sink.spool_depth(),
                         counters=self.counters(), drops=self.drops())

    def _inventory(self, now):
        ident = self._identity
        firmware = dict(ident.release)
        firmware.update(board=ident.board, model=ident.model, kernel=ident.kernel)
        return Inventory(device=self.device_id, run=self.run_id, seq=self._next("inventory"),
                         time=float(max(now, 0.0)), agent_version=__version__,
                         firmware={wire_text(k, 64): wire_text(v, 256)
                                   for k, v in firmware.items()},
                         firmware_hash=ident.identity_hash, baseline_hash=ident.baseline_hash,
                         package_manager=ident.package_manager)

    # ------------------------------------------------------------------ run
    def run(self, stop, reload_requested=None, clock=time.time):
        """Loop until stop.is_set(); `stop` is a threading.Event set by the signal handlers."""
        self.sink.start(self)
        try:
            while not stop.is_set():
                if reload_requested is not None and reload_requested.is_set():
                    return "reload"
                self.step(clock())
                self.wake.wait(self.idle_wait(clock()))
                self.wake.clear()
        finally:
            for source in self.sources:
                source.close()
            for detector in self.detectors:
                if hasattr(detector, "close"):   # detectors with state to save before exiting
                    detector.close()
        return "stop"

    def idle_wait(self, now):
        """Seconds until the next poll, heartbeat or inventory is due (at most MAX_IDLE_WAIT):
        every wake-up costs a router CPU, so the loop does not tick while nothing is due."""
        due = [self._next_heartbeat]
        if self._identity is not None:
            due.append(self._next_inventory)
        for source in self.sources:
            if not hasattr(source, "drain"):
                due.append(self._next_poll.get(id(source), 0.0))
        return min(max(min(due) - now, 0.0), MAX_IDLE_WAIT)

    def close(self, final=True, clean=True):
        """final=False: a config reload follows and the sink hands what it holds on.
        clean=False: the agent ends on an error, so the sink must not announce a clean stop."""
        if not clean:
            self.sink.close(clean=False)
        elif final:
            self.sink.close()
        else:
            self.sink.close(final=False)


def short_evidence(evidence, error):
    """Evidence cut to what surely fits: its first scalar fields, short, and why it was cut."""
    out = {"evidence_cut": clip(str(error), 200)}
    for key, value in evidence.items():
        if len(out) >= 16:
            break
        if isinstance(value, str):
            out[key] = clip(value, 200)
        elif value is None or isinstance(value, (bool, int, float)):
            out[key] = value
    return out


def _cpu_seconds():
    t = os.times()
    return t.user + t.system


def _rss_kb():
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0
