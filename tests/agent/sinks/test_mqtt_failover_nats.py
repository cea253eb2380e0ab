"""Failover on a real clustered broker: three nats-server nodes (Debian's nats-server, MQTT
3.1.1 over JetStream, streams replicated on all three). The agent lists two nodes, the collector
side subscribes through the third with a persistent session; the node the agent is on (one
leading neither the QoS 1 messages' nor the sessions' JetStream stream) is killed while it
reports. Every anomaly reaches the subscriber; copies (QoS 1 resends) are
counted and printed, since the collector drops them by (device, run, seq)."""
import time

from broker import BrokerError, Recorder
from nats_failover import choose_roles, wait_for_jetstream

from test_mqtt import RUN, anomaly, anomaly_seqs, wait_until
from test_mqtt_failover import ANOMALY_TOPIC, address, make_sink


def subscribe(node, timeout=60.0):
    """A persistent-session subscriber; JetStream elects its leaders a few seconds after the
    nodes listen, and MQTT subscriptions fail until then."""
    deadline = time.monotonic() + timeout
    while True:
        recorder = Recorder(node, [ANOMALY_TOPIC], client_id="collector", clean=False)
        try:
            return recorder.start()
        except BrokerError:
            if time.monotonic() > deadline:
                raise


def test_killing_the_nats_node_the_agent_is_on_loses_no_anomaly(tmp_path, nats_cluster):
    # n1 dies: a node that leads neither the QoS 1 messages' nor the sessions' stream (when the
    # sessions' leader dies, NATS may lose acknowledged messages: BENCHMARKS.md, section 11)
    wait_for_jetstream(nats_cluster.nodes[0])
    n1, n3, n2 = choose_roles(nats_cluster, "follower")[:3]
    collector = subscribe(n3)
    try:
        sink = make_sink(tmp_path, "%s,%s" % (address(n1), address(n2)))
        assert wait_until(lambda: sink.connected() and sink.broker() == (n1.host, n1.port), 60)
        for seq in range(1, 51):
            sink.send_anomaly(anomaly(seq))
        assert wait_until(lambda: len(set(anomaly_seqs(collector.snapshot()))) == 50, 60)

        for seq in range(51, 101):          # some of these are in flight when n1 dies
            sink.send_anomaly(anomaly(seq))
        n1.kill()
        for seq in range(101, 151):          # while the agent has no node
            sink.send_anomaly(anomaly(seq))
        assert wait_until(lambda: sink.connected() and sink.broker() == (n2.host, n2.port), 60)
        for seq in range(151, 201):          # after it landed on n2
            sink.send_anomaly(anomaly(seq))

        messages = collector.wait_for(lambda m: len(set(anomaly_seqs(m))) >= 200, timeout=90)
        got = anomaly_seqs(messages)
        missing = sorted({(RUN, s) for s in range(1, 201)} - set(got))
        print("NATS failover: %d anomalies, %d received, %d copies, missing %s, failovers %d"
              % (200, len(set(got)), len(got) - len(set(got)), missing,
                 sink.counters()["mqtt.failovers"]))
        assert missing == []
        assert wait_until(lambda: sink.spool_depth() == 0)
        assert sink.drops()["spool"] == 0
        sink.close()
    finally:
        collector.stop()
