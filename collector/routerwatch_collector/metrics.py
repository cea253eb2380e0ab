"""Prometheus metrics of a running collector (run --metrics-port): messages received, stored,
rejected by reason and dropped as duplicates, how long a batch takes to write, devices by state,
the anomalies stored by kind and severity, and the notifications sent, failed and dropped per
--notify URL.

Counters of the ingest are read when scraped (no second bookkeeping); devices by state come from
the store through a read-only connection of the metrics server's own, so a scrape never touches
the connection the MQTT loop writes with. Label values are bounded: a kind the catalogue does not
know (a router may send any well-formed name) is counted as "other".
"""
import logging
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from routerwatch.contract import SEVERITIES

from .catalogue import WHAT_TO_DO

log = logging.getLogger("routerwatch_collector")

NAMESPACE = "routerwatch_collector"
# a batch is one transaction: milliseconds when idle, up to seconds on a loaded database
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DEVICE_STATES = ("online", "silent", "stopped", "offline", "unknown")


class _IngestCounters:
    """The Ingest's own counters, as Prometheus counters, read at scrape time."""

    def __init__(self, ingest):
        self.ingest = ingest

    def collect(self):
        counters = dict(self.ingest.counters)
        for name, key, text in (
                ("messages_received", "received", "messages taken off the wire"),
                ("messages_accepted", "accepted", "messages that passed the contract"),
                ("duplicates", "duplicates", "redelivered messages dropped (QoS 1)"),
                ("anomalies_stored_all", "stored", "anomalies newly stored, agent.silent "
                                                   "included"),
                ("gaps", "gaps", "sequence gaps noted"),
                ("dropped", "dropped", "accepted messages dropped while the store kept failing")):
            yield CounterMetricFamily("%s_%s" % (NAMESPACE, name), text,
                                      value=counters.get(key, 0))
        rejected = CounterMetricFamily("%s_messages_rejected" % NAMESPACE,
                                       "messages refused, by reason", labels=["reason"])
        for reason, count in sorted(dict(self.ingest.rejects).items()):
            rejected.add_metric([reason], count)
        yield rejected


class _NotificationCounters:
    """What --notify did, per URL (the URL as the log shows it, secrets masked), read from the
    Notifier when scraped."""

    def __init__(self, notifier):
        self.notifier = notifier

    def collect(self):
        receivers = self.notifier.receivers()
        for key, text in (("sent", "notifications a receiver accepted"),
                          ("retried", "failed tries of a notification that is tried again"),
                          ("failed", "notifications given up after their last try"),
                          ("dropped", "notifications dropped because the receiver's queue was "
                                      "full (it is slow or does not answer)")):
            family = CounterMetricFamily("%s_notifications_%s" % (NAMESPACE, key), text,
                                         labels=["receiver"])
            for name, counts in receivers:
                family.add_metric([name], counts[key])
            yield family
        waiting = GaugeMetricFamily("%s_notifications_waiting" % NAMESPACE,
                                    "notifications in a receiver's queue, the one being sent "
                                    "included", labels=["receiver"])
        for name, counts in receivers:
            waiting.add_metric([name], counts["waiting"])
        yield waiting
        yield CounterMetricFamily("%s_notification_rows_dropped" % NAMESPACE,
                                  "stored anomalies not notified because the notifications' "
                                  "intake was full", value=self.notifier.drops["intake"])


class _DeviceStates:
    """Devices by state (store.fleet_counts()), read through a connection of its own."""

    def __init__(self, open_store):
        self.open_store = open_store
        self._store = None
        self._lock = threading.Lock()

    def collect(self):
        gauge = GaugeMetricFamily("%s_devices" % NAMESPACE,
                                  "devices by state: online, silent (agent.silent raised and not "
                                  "ended), stopped (clean stop), offline (Last Will), unknown",
                                  labels=["state"])
        with self._lock:
            try:
                if self._store is None:
                    self._store = self.open_store()
                counts = self._store.fleet_counts()
            except Exception as exc:     # the store away: the other metrics still answer
                log.debug("metrics: cannot read the devices: %s", exc)
                if self._store is not None:
                    try:
                        self._store.close()
                    except Exception:
                        pass
                self._store = None
                return
        for state in DEVICE_STATES:
            gauge.add_metric([state], counts.get(state, 0))
        yield gauge


class CollectorMetrics:
    def __init__(self, ingest, open_store=None, notifier=None):
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_IngestCounters(ingest))
        if notifier is not None:
            self.registry.register(_NotificationCounters(notifier))
        if open_store is not None:
            self.registry.register(_DeviceStates(open_store))
        self.batch_seconds = Histogram(
            "%s_batch_seconds" % NAMESPACE, "time to write one batch (a transaction) and the "
            "silence check", buckets=BATCH_BUCKETS, registry=self.registry)
        self.anomalies = Counter(
            "%s_anomalies_stored" % NAMESPACE, "anomalies newly stored, by kind (other: a kind "
            "this collector does not know) and severity", ["kind", "severity"],
            registry=self.registry)
        self._known_kinds = frozenset(WHAT_TO_DO)
        self._server = None

    def anomaly_stored(self, row):
        kind = row.kind if row.kind in self._known_kinds else "other"
        severity = row.severity if row.severity in SEVERITIES else "other"
        self.anomalies.labels(kind, severity).inc()

    def batch_written(self, seconds):
        self.batch_seconds.observe(seconds)

    def serve(self, host, port):
        """Start the /metrics endpoint in a thread; raises OSError if the port is taken."""
        self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
