"""run --metrics-port: a Prometheus scrape of a running collector (real mosquitto, a real
subprocess) says what it received, stored, rejected and dropped, and the fleet's state, on each
backend; the text is read with prometheus_client's own parser."""
import subprocess
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from broker import free_port
from collector_messages import anomaly, heartbeat, status, wire
from routerwatch.sinks.mqtt import new_client


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def test_a_scrape_counts_messages_rejects_duplicates_batches_devices_and_kinds(
        mosquitto_broker, store_url, tmp_path):
    port = free_port()
    log = open(tmp_path / "collector.log", "wb")
    collector = subprocess.Popen(
        [sys.executable, "-m", "routerwatch_collector.cli", "run", "--port",
         str(mosquitto_broker.port), "--db", store_url, "--metrics-port", str(port)],
        stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while "subscribed to" not in (tmp_path / "collector.log").read_text():
            assert time.monotonic() < deadline and collector.poll() is None
            time.sleep(0.1)
        client = new_client("metrics-test-router")
        client.connect(mosquitto_broker.host, mosquitto_broker.port)
        client.loop_start()
        messages = [wire(status("online", 1)), wire(heartbeat(1)),
                    wire(anomaly(1)), wire(anomaly(1)),        # the same one twice: a duplicate
                    wire(anomaly(2, kind="conn.new_listener", severity="medium")),
                    wire(anomaly(3, kind="made.up_kind", severity="low")),
                    ("routerwatch/rw-0a1b2c3d4e5f/anomaly", b"not json"),
                    ("routerwatch/rw-0a1b2c3d4e5f/anomaly", b"[]")]
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        deadline = time.monotonic() + 30
        while True:
            samples = scrape(port)
            # received is counted as a message arrives, the rest once the writer thread has
            # stored its batch: wait for both
            if value(samples, "routerwatch_collector_messages_received_total") >= 8 and \
                    value(samples, "routerwatch_collector_devices", state="online") == 1 and \
                    value(samples, "routerwatch_collector_anomalies_stored_all_total") >= 3 and \
                    value(samples, "routerwatch_collector_duplicates_total") >= 1 and \
                    sum(value(samples, "routerwatch_collector_messages_rejected_total",
                              reason=r) for r in ("not_json", "not_object")) >= 2:
                break
            assert time.monotonic() < deadline, samples
            time.sleep(0.2)
    finally:
        collector.terminate()
        collector.wait(20)
        log.close()

    assert value(samples, "routerwatch_collector_messages_received_total") == 8
    assert value(samples, "routerwatch_collector_duplicates_total") == 1
    assert value(samples, "routerwatch_collector_messages_rejected_total",
                 reason="not_json") == 1
    assert value(samples, "routerwatch_collector_messages_rejected_total",
                 reason="not_object") == 1
    assert value(samples, "routerwatch_collector_anomalies_stored_total",
                 kind="login.bruteforce", severity="high") == 1
    assert value(samples, "routerwatch_collector_anomalies_stored_total",
                 kind="conn.new_listener", severity="medium") == 1
    # a kind no catalogue knows is one label value, whatever a router invents
    assert value(samples, "routerwatch_collector_anomalies_stored_total",
                 kind="other", severity="low") == 1
    assert value(samples, "routerwatch_collector_devices", state="online") == 1
    assert value(samples, "routerwatch_collector_devices", state="silent") == 0
    assert value(samples, "routerwatch_collector_batch_seconds_count") >= 1
    assert value(samples, "routerwatch_collector_batch_seconds_sum") > 0
