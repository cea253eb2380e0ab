"""Sending notifications with Apprise in a thread of their own, so that a slow or dead receiver
never delays storing.

The collector's loop calls `Notifier.anomaly_stored(row)` for every newly stored anomaly; that
only puts the row in a bounded queue (a full queue drops it and counts the drop). A grouping
thread groups the rows (grouping.py), renders the messages (message.py) and offers each to every
target's own Delivery (delivery.py): a thread, a bounded queue and one Apprise instance per URL,
so a target that fails is retried alone (after `retry_delays` seconds), the others are not sent
the message twice, and a target that hangs delays (and, its queue full, drops) only its own
messages.
"""
import logging
import queue
import threading
import time

from .delivery import Delivery
from .grouping import Grouper, severity_rank
from .message import render

log = logging.getLogger("routerwatch_collector")

INTAKE_ROWS = 1000            # stored anomalies waiting to be grouped
RECEIVER_QUEUE = 100          # messages one receiver has waiting for a first try or a retry
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
                 intake_rows=INTAKE_ROWS, receiver_queue=RECEIVER_QUEUE, clock=time.monotonic):
        self.targets = list(targets)
        self.min_rank = severity_rank(min_severity)
        self.dashboard_url = dashboard_url
        self.grouper = Grouper(group_wait, group_threshold, max_per_hour)
        self.clock = clock
        self.deliveries = [Delivery(target, retry_delays, receiver_queue, clock)
                           for target in self.targets]
        self._intake = queue.Queue(maxsize=intake_rows)
        self._stop = threading.Event()
        self._thread = None
        self._counts = {"queued": 0, "messages": 0, "below_min_severity": 0, "intake": 0}

    @property
    def counters(self):
        """Rows queued, messages made, and tries summed over the receivers."""
        out = {key: self._counts[key] for key in ("queued", "messages", "below_min_severity")}
        for key in ("sent", "retried", "failed"):
            out[key] = sum(d.counters[key] for d in self.deliveries)
        return out

    @property
    def drops(self):
        """Rows the full intake refused, and messages the receivers' full queues refused."""
        return {"intake": self._counts["intake"],
                "deliveries": sum(d.counters["dropped"] for d in self.deliveries)}

    def receivers(self):
        """[(name, counts)] per --notify URL: sent, retried, failed, dropped and waiting. The
        names are the URLs as logs show them, made unique (a URL given twice is two)."""
        out, seen = [], {}
        for delivery in self.deliveries:
            name = delivery.target.name
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = "%s #%d" % (name, seen[name])
            out.append((name, dict(delivery.counters, waiting=delivery.waiting())))
        return out

    # ------------------------------------------------------------------ the collector's side
    def anomaly_stored(self, row):
        """Called in the collector's loop for each new row: never waits."""
        if severity_rank(row.severity) < self.min_rank:
            self._counts["below_min_severity"] += 1
            return
        try:
            self._intake.put_nowait(row)
            self._counts["queued"] += 1
        except queue.Full:
            self._counts["intake"] += 1

    def start(self):
        if self._thread is None:
            for delivery in self.deliveries:
                delivery.start()
            self._thread = threading.Thread(target=self._work, name="routerwatch-notify",
                                            daemon=True)
            self._thread.start()

    def close(self, timeout=CLOSE_TIMEOUT):
        """Send what is grouped and waiting, for at most `timeout` seconds in all (the
        receivers try theirs at the same time, so more of them take no longer), then stop.
        A receiver still busy then is left to its daemon thread."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        if self._thread is not None:
            # grouping never waits on the network: this is quick, and the last messages are
            # offered to the receivers before they are told to stop
            self._thread.join(timeout)
            self._thread = None
        for delivery in self.deliveries:
            delivery.stop()
        for delivery in self.deliveries:
            delivery.join(deadline - time.monotonic())

    def summary(self):
        items = list(self.counters.items()) + [("dropped_" + k, v) for k, v in self.drops.items()]
        items.append(("dropped_groups", self.grouper.dropped))
        text = ", ".join("%s %d" % item for item in items)
        dropped = ["%s %d" % (name, counts["dropped"]) for name, counts in self.receivers()
                   if counts["dropped"]]
        return text + ("" if not dropped else " (dropped per receiver: %s)" % ", ".join(dropped))

    # ------------------------------------------------------------------ the grouping thread
    def _work(self):
        while not self._stop.is_set():
            now = self.clock()
            due = self.grouper.next_due(now)
            try:
                row = self._intake.get(timeout=1.0 if due is None else min(1.0, due))
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
                self._offer(self.grouper.due(now))
            except Exception:   # keep notifying whatever one round tripped over
                log.exception("notifications")
        while True:
            try:
                self.grouper.add(self._intake.get_nowait(), self.clock())
            except queue.Empty:
                break
        self._offer(self.grouper.due(self.clock(), everything=True))

    def _offer(self, groups):
        """Each group's message to every receiver's own queue; never waits on a receiver."""
        for group in groups:
            message = render(group, self.dashboard_url)
            self._counts["messages"] += 1
            for delivery in self.deliveries:
                delivery.offer(message)
