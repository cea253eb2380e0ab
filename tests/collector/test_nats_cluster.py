"""The collector behind a real clustered broker: three nats-server nodes (Debian's nats-server 2.9,
MQTT 3.1.1 kept in JetStream streams replicated on all three), the collector (`routerwatch-collector
run`, a subprocess with its SQLite store) subscribed through one node, two agents reporting
through the other two. The node under agent A is killed while it reports: A moves to the third
node and resends what was not acknowledged; the store ends with every anomaly of both agents
once, no gap, no agent.silent, the resends dropped as duplicates (tests/nats_failover.py).

The node killed leads neither the stream NATS keeps QoS 1 messages in ($MQTT_msgs) nor the one
it keeps MQTT sessions in ($MQTT_sess). When the $MQTT_sess leader dies, NATS 2.9 sometimes
acknowledges QoS 1 publishes of an agent on a surviving node that never reach the collector's
session (a contiguous run of its sequence numbers, seen by the collector as a gap);
bench/bench_nats_failover.py measures it, BENCHMARKS.md has the figures."""
import time

from nats_failover import AGENT_A, AGENT_B, PER_AGENT, run_failover


def test_the_collector_stores_each_anomaly_once_when_an_agents_nats_node_dies(tmp_path,
                                                                             nats_cluster):
    # settle: how long delivery may stand still before what is missing counts as lost. The
    # collector's QoS 1 subscription is a JetStream consumer with a leader of its own, which may
    # have been on the killed node: until the survivors elect another, nothing reaches the
    # collector (once, on a loaded machine, nothing for the whole 15 s it used to be)
    result = run_failover(tmp_path, nats_cluster, kill="follower", settle=45.0)
    print("NATS failover: " + result.summary())
    assert result.killed not in (result.leaders["$MQTT_msgs"], result.leaders["$MQTT_sess"])
    assert result.lost == {AGENT_A: [], AGENT_B: []}
    assert result.twice == {AGENT_A: [], AGENT_B: []}
    assert result.stored == {AGENT_A: list(range(1, PER_AGENT + 1)),
                             AGENT_B: list(range(1, PER_AGENT + 1))}
    assert result.gaps == []
    assert result.raised_by_collector == []
    assert result.spool_drops == 0
    assert result.agent_counters["mqtt.failovers"] >= 1
    # every message the collector took off the wire is stored, refused or a dropped resend
    assert result.received - result.duplicates >= 2 * PER_AGENT


def test_nats_grants_a_shared_subscription_and_delivers_nothing_to_it(nats_cluster):
    """What the README says of NATS and --share-group: MQTT 3.1.1 `$share/...` subscriptions
    are granted QoS 1 but get no message, so collectors cannot share a NATS account's load."""
    from broker import Recorder
    from nats_failover import wait_for_jetstream
    from routerwatch.sinks.mqtt import new_client

    n1, n2, n3 = nats_cluster.nodes
    wait_for_jetstream(n1)
    members = [Recorder(node, ["$share/collectors/routerwatch/+/anomaly"],
                        client_id="member-%d" % i, clean=False).start()
               for i, node in enumerate((n1, n2))]
    plain = Recorder(n1, ["routerwatch/+/anomaly"], client_id="plain").start()
    try:
        assert [m.granted for m in members] == [[1], [1]]
        publisher = new_client("publisher")
        publisher.connect(n3.host, n3.port)
        publisher.loop_start()
        for seq in range(20):
            publisher.publish("routerwatch/rw-aaaaaaaaaa01/anomaly", b"%d" % seq,
                              qos=1).wait_for_publish(10)
        publisher.disconnect()
        publisher.loop_stop()
        assert len(plain.wait_for(lambda m: len(m) >= 20)) == 20   # the messages went out
        time.sleep(1.0)                    # and none of them reached a member of the group
        assert [len(m.snapshot()) for m in members] == [0, 0]
    finally:
        for recorder in members + [plain]:
            recorder.stop()
