"""The collector's /metrics scraped by a real Prometheus server (Debian's prometheus, unpacked by
ci/install-system-packages.sh): a running collector (a subprocess on a real mosquitto) stores what
two routers send, and Prometheus's HTTP API then reports the same counts the store holds, by kind
and severity, with the duplicate and the refused message counted apart."""
import collections
import subprocess
import sys
import time

import pytest

from broker import find_mosquitto, free_port, missing_tool
from collector_messages import anomaly, heartbeat, status, wire
from prometheus_server import JOB, PrometheusServer, find_prometheus
from routerwatch.sinks.mqtt import new_client
from routerwatch_collector.stores import open_store

ROUTERS = ("rw-0a1b2c3d4e5f", "rw-112233445566")
# (router, seq, kind, severity): what the routers report
SENT = [(ROUTERS[0], 1, "login.bruteforce", "high"),
        (ROUTERS[0], 2, "login.bruteforce", "high"),
        (ROUTERS[0], 3, "conn.new_listener", "medium"),
        (ROUTERS[1], 1, "login.bruteforce", "high"),
        (ROUTERS[1], 2, "made.up_kind", "low")]


@pytest.fixture
def prometheus_binary():
    binary = find_prometheus()
    if not binary:
        missing_tool("prometheus is not unpacked (ci/install-system-packages.sh fetches it)")
    if not find_mosquitto():
        missing_tool("mosquitto is not installed (ci/install-system-packages.sh installs it)")
    return binary


def wait_for(predicate, timeout, describe):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, describe()
        time.sleep(0.25)


def by_labels(result, *names):
    """{(label values...): value} of a query result, for the named labels."""
    return {tuple(dict(labels).get(n) for n in names): value for labels, value in result.items()}


def test_prometheus_scrapes_what_the_collector_stored(tmp_path, mosquitto_broker,
                                                      prometheus_binary):
    db = tmp_path / "collector.sqlite"
    metrics_port = free_port()
    log_path = tmp_path / "collector.log"
    log = open(log_path, "wb")
    collector = subprocess.Popen(
        [sys.executable, "-m", "routerwatch_collector.cli", "run", "--host", "127.0.0.1",
         "--port", str(mosquitto_broker.port), "--db", str(db), "--metrics-port",
         str(metrics_port)],
        stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
    prometheus = PrometheusServer(tmp_path / "prometheus", ["127.0.0.1:%d" % metrics_port],
                                  binary=prometheus_binary)
    try:
        wait_for(lambda: "subscribed to" in log_path.read_text() or collector.poll() is not None,
                 30, log_path.read_text)
        assert collector.poll() is None, log_path.read_text()
        prometheus.start()
        wait_for(lambda: set(prometheus.targets_health().values()) == {"up"}, 30,
                 lambda: "targets: %s" % prometheus.targets_health())

        messages = []
        for router in ROUTERS:
            messages += [wire(status("online", 1, device=router)),
                         wire(heartbeat(1, device=router))]
        messages += [wire(anomaly(seq, device=router, kind=kind, severity=severity))
                     for router, seq, kind, severity in SENT]
        messages.append(wire(anomaly(1, device=ROUTERS[0])))      # a QoS 1 resend: a duplicate
        messages.append(("routerwatch/%s/anomaly" % ROUTERS[1], b"not json"))
        client = new_client("prometheus-test-router")
        client.connect(mosquitto_broker.host, mosquitto_broker.port)
        client.loop_start()
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()

        received = 'routerwatch_collector_messages_received_total{job="%s"}' % JOB
        wait_for(lambda: prometheus.query(received) and
                 max(prometheus.query(received).values()) == len(messages), 60,
                 lambda: "%s = %s; collector log:\n%s"
                 % (received, prometheus.query(received), log_path.read_text()[-2000:]))
        online = 'routerwatch_collector_devices{state="online"}'
        wait_for(lambda: by_labels(prometheus.query(online), "state") == {("online",): 2.0}, 30,
                 lambda: "%s = %s" % (online, prometheus.query(online)))
        # received counts arrivals; what the writer thread stored shows up a batch later
        stored = "routerwatch_collector_anomalies_stored_all_total"
        wait_for(lambda: prometheus.query(stored) and
                 max(prometheus.query(stored).values()) >= len(SENT) and
                 sum(prometheus.query("routerwatch_collector_duplicates_total").values()) >= 1
                 and prometheus.query("routerwatch_collector_messages_rejected_total"), 30,
                 lambda: "%s = %s" % (stored, prometheus.query(stored)))
        scraped_kinds = by_labels(
            prometheus.query("sum by (kind, severity) "
                             "(routerwatch_collector_anomalies_stored_total)"),
            "kind", "severity")
        duplicates = prometheus.query("routerwatch_collector_duplicates_total")
        rejected = by_labels(prometheus.query("routerwatch_collector_messages_rejected_total"),
                             "reason")
        stored_all = prometheus.query("routerwatch_collector_anomalies_stored_all_total")
    finally:
        prometheus.close()
        collector.terminate()
        collector.wait(20)
        log.close()

    store = open_store(str(db), create=False)
    try:
        rows = store.query_anomalies(limit=1000)
    finally:
        store.close()
    in_store = collections.Counter((r.kind, r.severity) for r in rows)
    assert sorted((r.device, r.seq) for r in rows) == sorted((d, s) for d, s, _, _ in SENT)

    # the store's counts, as Prometheus scraped them (an unknown kind is labelled "other")
    expected = collections.Counter(
        (kind if kind != "made.up_kind" else "other", severity) for _, _, kind, severity in SENT)
    assert scraped_kinds == {key: float(n) for key, n in expected.items()}
    assert sum(scraped_kinds.values()) == len(rows) == sum(in_store.values())
    assert list(stored_all.values()) == [float(len(SENT))]
    assert list(duplicates.values()) == [1.0]
    assert rejected == {("not_json",): 1.0}
