"""Delivery and collection: anomalies/s from the agent's MqttSink through mosquitto into the
collector's SQLite store, against the broker's own rate measured with mosquitto_pub/mosquitto_sub
on the same broker in the same run; then heartbeats of a simulated fleet (many device ids, one
heartbeat each) into the collector, to show how many devices one collector process can follow.

    python bench/bench_delivery.py [--quick] [--anomalies N] [--devices N] [--repeat R]

Reference (anomalies): `mosquitto_sub -q 1 -C N` subscribed, `mosquitto_pub -q 1 -l` sends the
same N payloads (real contract JSON) one per line: time from the first publish to the N-th
delivery. routerwatch: MqttSink.send_anomaly() N times (the agent's publisher thread, its spool
and its window of messages in flight), the collector validates, de-duplicates and commits each
batch before it acknowledges: time from the first send to N rows in the anomalies table.

Fleet: N heartbeat payloads, one per device id on its own topic <prefix>/<device>/heartbeat, from
one paho connection at QoS 1 (one connection stands in for N routers: the broker's per-connection
cost is not what is measured; the collector's per-message cost is), until the collector has
recorded N heartbeats. Reference: the same N payloads through mosquitto_pub -l/mosquitto_sub.
"""
import secrets
import time

import harness
import services


def sink_run(collector, count, broker):
    """One round of routerwatch delivery; returns (seconds, info)."""
    from routerwatch.config import load
    from routerwatch.sinks.mqtt import MqttSink
    config = load(overrides=["mqtt.host=%s" % broker.host, "mqtt.port=%d" % broker.port,
                             "spool.max_items=%d" % max(count + 100, 10),
                             "spool.max_bytes=%d" % (256 * 1024 * 1024),
                             "device_id=bench-router-1"])
    run_id = secrets.token_hex(8)
    anomalies = services.anomaly_objects(count, device="bench-router-1", run=run_id)
    sink = MqttSink(config, "bench-router-1", run_id)
    before = collector.anomalies()
    sink.start(None)
    try:
        _wait(lambda: sink.connected(), 10.0, "the sink did not connect to the broker")
        start = time.perf_counter()
        for anomaly in anomalies:
            sink.send_anomaly(anomaly)
        waited, stored = collector.wait_for(collector.anomalies, before + count, timeout=300)
        seconds = time.perf_counter() - start
    finally:
        sink.close()
    return seconds, {"stored": stored - before, "sink_drops": sink.drops(),
                     "sink_counters": sink.counters()}


def sink_alone_run(broker, count, work):
    """The publisher alone: MqttSink -> broker -> mosquitto_sub -C N (no collector)."""
    import subprocess
    from routerwatch.config import load
    from routerwatch.sinks.mqtt import MqttSink
    prefix = "benchsplit%s" % secrets.token_hex(2)     # not the collector's prefix
    config = load(overrides=["mqtt.host=%s" % broker.host, "mqtt.port=%d" % broker.port,
                             "spool.max_items=%d" % max(count + 100, 10),
                             "spool.max_bytes=%d" % (256 * 1024 * 1024),
                             "device_id=bench-router-1", "prefix=%s" % prefix])
    run_id = secrets.token_hex(8)
    anomalies = services.anomaly_objects(count, device="bench-router-1", run=run_id)
    topic = "%s/bench-router-1/anomaly" % prefix
    sub = subprocess.Popen(["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t",
                            topic, "-q", "1", "-C", str(count + 1)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
    sink = MqttSink(config, "bench-router-1", run_id)
    try:
        services._await_subscriber(broker, topic, sub)
        sink.start(None)
        _wait(lambda: sink.connected(), 10.0, "the sink did not connect to the broker")
        start = time.perf_counter()
        for anomaly in anomalies:
            sink.send_anomaly(anomaly)
        delivered = sum(1 for line in sub.stdout if line.strip() != b"probe")
        sub.wait(timeout=300)
        seconds = time.perf_counter() - start
    finally:
        sink.close()
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    return seconds, {"delivered": delivered}


def collector_alone_run(collector, broker, count):
    """The collector alone: mosquitto_pub -l -> broker -> collector -> N rows."""
    import subprocess
    device = "bench-ref-%s" % secrets.token_hex(3)
    payloads = services.anomaly_payloads(count, device=device)
    before = collector.anomalies()
    start = time.perf_counter()
    subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t",
                    "routerwatch/%s/anomaly" % device, "-q", "1", "-l"],
                   input=b"\n".join(payloads) + b"\n", check=True, stdout=subprocess.DEVNULL)
    waited, stored = collector.wait_for(collector.anomalies, before + count, timeout=300)
    return time.perf_counter() - start, {"stored": stored - before}


def fleet_run(collector, broker, devices):
    """N devices x 1 heartbeat through one paho connection; (seconds, info)."""
    from routerwatch.sinks.mqtt import new_client
    run_id = secrets.token_hex(8)
    prefix = "fleet%s" % secrets.token_hex(2)
    names = ["%s-%06d" % (prefix, i) for i in range(devices)]
    payloads = [services.heartbeat_payload(name, run_id) for name in names]
    client = new_client("bench-fleet-" + secrets.token_hex(4))
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    before = collector.heartbeats()
    try:
        start = time.perf_counter()
        for name, payload in zip(names, payloads):
            client.publish("routerwatch/%s/heartbeat" % name, payload, qos=1)
        waited, seen = collector.wait_for(collector.heartbeats, before + devices, timeout=300)
        seconds = time.perf_counter() - start
    finally:
        client.loop_stop()
        client.disconnect()
    return seconds, {"recorded": seen - before}


def _wait(predicate, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise RuntimeError(message)


def run(quick=False, workdir=None, anomalies=None, devices=None, repeat=None):
    anomalies = anomalies or (2000 if quick else 20000)
    devices = devices or (2000 if quick else 10000)
    repeat = repeat or (3 if quick else 5)
    rows, notes = [], []
    missing = services.mosquitto_missing()
    if missing:
        return harness.result("delivery", quick, [harness.skipped("delivery", missing)], notes)
    sink_cls, why_sink = harness.optional_import("routerwatch.sinks.mqtt", "MqttSink")
    sub_cls, why_collector = harness.optional_import("routerwatch_collector.subscriber",
                                                     "Subscriber")
    with harness.Workdir(workdir) as work:
        broker = services.start_broker(work)
        collector = None
        try:
            payloads = services.anomaly_payloads(anomalies)
            if sink_cls is None or sub_cls is None:
                times, _ = harness.interleaved(
                    {"mosquitto": lambda: services.mosquitto_rate(broker, payloads, work)}, repeat)
                summary = harness.summarize(times["mosquitto"])
                rows.append(harness.skipped(
                    "anomalies: sink -> broker -> collector", why_sink or why_collector,
                    reference=summary,
                    reference_rate=harness.rate(anomalies, summary, "msg/s")))
                return harness.result("delivery", quick, rows, notes)
            collector = services.Collector(work / "collector", broker).start()

            def reference():
                seconds, delivered = services.mosquitto_rate(broker, payloads, work)
                return seconds, {"delivered": delivered}

            times, extras = harness.interleaved({
                "mosquitto": reference,
                "routerwatch": lambda: sink_run(collector, anomalies, broker),
            }, repeat)
            rows.append(harness.comparison(
                "anomalies: sink -> broker -> collector", "mosquitto_pub/sub",
                times["mosquitto"], times["routerwatch"],
                harness.ratios(times, "routerwatch", "mosquitto"),
                amount=anomalies, amount_unit="msg/s",
                reference_delivered=extras.get("mosquitto"), routerwatch_info=extras.get(
                    "routerwatch")))

            # where the time goes: each half of the pipeline alone against the same reference
            times, extras = harness.interleaved({
                "mosquitto": reference,
                "sink": lambda: sink_alone_run(broker, anomalies, work),
                "collector": lambda: collector_alone_run(collector, broker, anomalies),
            }, repeat)
            rows.append(harness.comparison(
                "anomalies: sink alone (-> mosquitto_sub)", "mosquitto_pub/sub",
                times["mosquitto"], times["sink"], harness.ratios(times, "sink", "mosquitto"),
                amount=anomalies, amount_unit="msg/s", routerwatch_info=extras.get("sink")))
            rows.append(harness.comparison(
                "anomalies: collector alone (mosquitto_pub ->)", "mosquitto_pub/sub",
                times["mosquitto"], times["collector"],
                harness.ratios(times, "collector", "mosquitto"),
                amount=anomalies, amount_unit="msg/s", routerwatch_info=extras.get("collector")))

            heartbeat_payloads = [services.heartbeat_payload("ref-%06d" % i, "0" * 16)
                                  for i in range(devices)]

            def fleet_reference():
                seconds, delivered = services.mosquitto_rate(broker, heartbeat_payloads, work)
                return seconds, {"delivered": delivered}

            times, extras = harness.interleaved({
                "mosquitto": fleet_reference,
                "routerwatch": lambda: fleet_run(collector, broker, devices),
            }, repeat)
            row = harness.comparison(
                "fleet: %d devices x 1 heartbeat" % devices, "mosquitto_pub/sub",
                times["mosquitto"], times["routerwatch"],
                harness.ratios(times, "routerwatch", "mosquitto"),
                amount=devices, amount_unit="heartbeats/s",
                routerwatch_info=extras.get("routerwatch"))
            per_second = row["routerwatch_rate"]["median"]
            row["devices_followed_at_interval"] = {
                "60s": int(per_second * 60), "300s": int(per_second * 300),
                "note": "heartbeats/s the collector stored x interval: an upper bound for one "
                        "process on this machine, with nothing else to do"}
            rows.append(row)
            notes.append("one machine runs the broker, the publisher and the collector (nproc=%s)"
                         "; bench/mosquitto.conf raises max_queued_messages so nothing is dropped"
                         % harness.machine_info()["nproc"])
        finally:
            if collector is not None:
                collector.stop()
            broker.close()
    return harness.result("delivery", quick, rows, notes)


if __name__ == "__main__":
    raise SystemExit(harness.main(run, __doc__.split("\n\n")[0], lambda p: (
        p.add_argument("--anomalies", type=int), p.add_argument("--devices", type=int))))
