"""Sending notifications with Apprise in a thread of their own, so that a slow or dead receiver
never delays storing.

The collector's loop calls `Notifier.anomaly_stored(row)` for every newly stored anomaly; that
only puts the row in a bounded queue (a full queue drops it and counts the drop). The worker
thread groups the rows (grouping.py), renders the messages (message.py) and hands each to every
target, one Apprise instance per URL, so a target that fails is retried alone (after
`retry_delays` seconds) and the others are not sent the message twice. Messages waiting for a
retry are capped too.
"""
import logging
import queue
import threading
import time
from collections import deque

from .grouping import Grouper, severity_rank
from .message import render

log = logging.getLogger("routerwatch_collector")

INTAKE_ROWS = 1000            # stored anomalies waiting for the worker
PENDING_DELIVERIES = 200      # (message, target) pairs waiting for their first try or a retry
RETRY_DELAYS = (5.0, 30.0, 120.0)
CLOSE_TIMEOUT = 5.0           # seconds a stopping collector gives the last messages
SEND_TIMEOUT = 10             # Apprise's connect and read timeouts per target, seconds


class InvalidTarget(ValueError):
    """A --notify URL Apprise does not understand; str() says which one."""


def describe_url(url, service=None):
    """A URL as logs may show it, never with a secret in it. Which part of a URL is secret
    depends on the service (Telegram's bot token stands where a host would), so only Apprise,
    which parsed it, can mask it; a URL it could not parse is shown by its scheme alone."""
    if service is not None:
        try:
            return service.url(privacy=True)
        except Exception:   # a plugin's bug must not stop the collector from starting
            pass
    return url.partition("://")[0] + "://…"


class Target:
    """One --notify URL."""

    def __init__(self, url, timeout=SEND_TIMEOUT):
        import apprise
        self.name = describe_url(url)
        self._apprise = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
        separator = "&" if "?" in url else "?"
        # cto/rto: Apprise's own timeouts; without them a black-holed receiver holds the
        # worker for a minute per try
        if not self._apprise.add("%s%scto=%d&rto=%d" % (url, separator, timeout, timeout)) \
                and not self._apprise.add(url):
            raise InvalidTarget("--notify: Apprise does not understand the URL %s" % self.name)
        self.name = describe_url(url, self._apprise[0])

    def send(self, message):
        import apprise
        try:
            return bool(self._apprise.notify(title=message.title, body=message.body,
                                             body_format=apprise.NotifyFormat.TEXT,
                                             notify_type=_notify_type(message.severity)))
        except Exception as exc:   # a plugin's bug must not end the worker
            log.warning("notification to %s failed: %s", self.name, exc)
            return False


def _notify_type(severity):
    import apprise
    if severity in ("high", "critical"):
        return apprise.NotifyType.FAILURE
    if severity == "medium":
        return apprise.NotifyType.WARNING
    return apprise.NotifyType.INFO


class Notifier:
    def __init__(self, targets, min_severity="high", dashboard_url="", group_wait=30.0,
                 group_threshold=10, max_per_hour=6, retry_delays=RETRY_DELAYS,
                 intake_rows=INTAKE_ROWS, clock=time.monotonic):
        self.targets = list(targets)
        self.min_rank = severity_rank(min_severity)
        self.dashboard_url = dashboard_url
        self.grouper = Grouper(group_wait, group_threshold, max_per_hour)
        self.retry_delays = tuple(retry_delays)
        self.clock = clock
        self._intake = queue.Queue(maxsize=intake_rows)
        self._deliveries = deque()          # [due_at, attempt, message, target]
        self._stop = threading.Event()
        self._thread = None
        self.counters = {"queued": 0, "messages": 0, "sent": 0, "retried": 0, "failed": 0,
                         "below_min_severity": 0}
        self.drops = {"intake": 0, "deliveries": 0}

    # ------------------------------------------------------------------ the collector's side
    def anomaly_stored(self, row):
        """Called in the collector's loop for each new row: never waits."""
        if severity_rank(row.severity) < self.min_rank:
            self.counters["below_min_severity"] += 1
            return
        try:
            self._intake.put_nowait(row)
            self.counters["queued"] += 1
        except queue.Full:
            self.drops["intake"] += 1

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="routerwatch-notify",
                                            daemon=True)
            self._thread.start()

    def close(self, timeout=CLOSE_TIMEOUT):
        """Send what is grouped and waiting, for at most `timeout` seconds, then stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def summary(self):
        return ", ".join("%s %d" % item for item in list(self.counters.items())
                         + [("dropped_" + k, v) for k, v in self.drops.items()]
                         + [("dropped_groups", self.grouper.dropped)])

    # ------------------------------------------------------------------ the worker thread
    def _work(self):
        while not self._stop.is_set():
            now = self.clock()
            waits = [1.0]
            due = self.grouper.next_due(now)
            if due is not None:
                waits.append(due)
            if self._deliveries:
                waits.append(max(0.0, min(d[0] for d in self._deliveries) - now))
            try:
                row = self._intake.get(timeout=max(0.0, min(waits)))
            except queue.Empty:
                row = None
            now = self.clock()
            while row is not None:
                self.grouper.add(row, now)
                try:
                    row = self._intake.get_nowait()
                except queue.Empty:
                    row = None
            try:
                self._queue_messages(self.grouper.due(now))
                self._deliver_due(now)
            except Exception:   # keep notifying whatever one round tripped over
                log.exception("notifications")
        self._drain_on_stop()

    def _queue_messages(self, groups):
        now = self.clock()
        for group in groups:
            message = render(group, self.dashboard_url)
            self.counters["messages"] += 1
            for target in self.targets:
                if len(self._deliveries) >= PENDING_DELIVERIES:
                    self.drops["deliveries"] += 1
                    continue
                self._deliveries.append([now, 0, message, target])

    def _deliver_due(self, now, final=False):
        for _ in range(len(self._deliveries)):
            entry = self._deliveries.popleft()
            due_at, attempt, message, target = entry
            if due_at > now and not final:
                self._deliveries.append(entry)
                continue
            if target.send(message):
                self.counters["sent"] += 1
            elif attempt < len(self.retry_delays) and not final:
                self.counters["retried"] += 1
                entry[0] = self.clock() + self.retry_delays[attempt]
                entry[1] = attempt + 1
                self._deliveries.append(entry)
            else:
                self.counters["failed"] += 1
                log.warning("gave up notifying %s about %s after %d tries", target.name,
                            message.device, attempt + 1)

    def _drain_on_stop(self):
        while True:
            try:
                self.grouper.add(self._intake.get_nowait(), self.clock())
            except queue.Empty:
                break
        self._queue_messages(self.grouper.due(self.clock(), everything=True))
        self._deliver_due(self.clock(), final=True)
