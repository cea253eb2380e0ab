"""A node of a NATS cluster dies under a reporting agent, with the real collector behind it: the
scenario that tests/collector/test_nats_cluster.py asserts and bench/bench_nats_failover.py
measures.

Three nats-server nodes (tests/natscluster.py). The collector (`routerwatch-collector run`, a
subprocess with its SQLite store and --metrics-port) subscribes through one node; agent A
(hosts: the doomed node, then the third) and agent B (the third node, then the doomed one)
report PER_AGENT anomalies each, in four quarters: before the kill, just before it (in flight),
while A has no node, after A landed on the third node.

    result = run_failover(workdir, cluster, kill="follower")   # or "msgs-leader", or None
    result.lost, result.twice, result.duplicates, result.moved_after ...

kill="follower" kills a node that leads neither the stream of QoS 1 messages ($MQTT_msgs) nor
the sessions' ($MQTT_sess), nor JetStream's metadata when another node is free of all three;
"msgs-leader" kills the one that leads $MQTT_msgs, "sess-leader" the one that leads $MQTT_sess;
None kills nothing (the reference).
"""
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

from broker import BrokerError, Recorder
from serverproc import free_port

RUN = "0123456789abcdef"
AGENT_A, AGENT_B = "rw-aaaaaaaaaa01", "rw-aaaaaaaaaa02"
PER_AGENT = 200


def wait_until(condition, timeout=60.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(interval)
    return condition()


def address(node):
    return "%s:%d" % (node.host, node.port)


def wait_for_jetstream(node, timeout=60.0):
    """MQTT connections fail until JetStream has elected its leaders and made the MQTT streams,
    a few seconds after the nodes listen; a throw-away subscriber tells when they work."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            Recorder(node, ["routerwatch/ready"], client_id="ready-probe").start().stop()
            return
        except BrokerError:
            if time.monotonic() > deadline:
                raise


def make_agent(workdir, device, nodes):
    """The agent's MQTT sink (its spool, back-off and broker list) for `device` on `nodes`."""
    from routerwatch.config import load
    from routerwatch.sinks.mqtt import MqttSink
    config = load(defaults={"device_id": device, "run_dir": str(workdir / device / "run"),
                            "state_dir": str(workdir / device / "state"),
                            "mqtt": {"host": ",".join(address(n) for n in nodes),
                                     "keepalive": 5}})
    sink = MqttSink(config, device, RUN)
    sink.reconnect_min, sink.reconnect_max = 0.1, 0.5
    sink.start()
    return sink


class CollectorProcess:
    """`routerwatch-collector run` on one node, its store and metrics read from outside."""

    def __init__(self, workdir, node):
        self.db = workdir / "collector.sqlite"
        self.metrics_port = free_port()
        self.log_path = workdir / "collector.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "routerwatch_collector.cli", "run", "--host", node.host,
             "--port", str(node.port), "--db", str(self.db),
             "--metrics-port", str(self.metrics_port)],
            stdout=subprocess.DEVNULL, stderr=self._log, stdin=subprocess.DEVNULL)

    def log(self):
        return self.log_path.read_text(errors="replace")[-3000:]

    def _store(self):
        from routerwatch_collector.stores import open_store
        return open_store(str(self.db), create=False, read_only=True)

    def stored(self):
        """{device: [seq, ...]} of the agents' anomalies in the store (a copy would show twice)."""
        if not self.db.exists():
            return {AGENT_A: [], AGENT_B: []}
        store = self._store()
        try:
            return {device: sorted(row.seq for row in
                                   store.query_anomalies(device=device, limit=10 * PER_AGENT)
                                   if row.run == RUN)
                    for device in (AGENT_A, AGENT_B)}
        finally:
            store.close()

    def raised_by_itself(self):
        """(device, kind, summary) of what the collector raised on its own (agent.silent)."""
        store = self._store()
        try:
            return [(row.device, row.kind, row.summary)
                    for row in store.query_anomalies(limit=100) if row.run != RUN]
        finally:
            store.close()

    def gaps(self):
        store = self._store()
        try:
            return store.gaps()
        finally:
            store.close()

    def counters(self):
        from prometheus_client.parser import text_string_to_metric_families
        url = "http://127.0.0.1:%d/metrics" % self.metrics_port
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return {sample.name: sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples if not sample.labels}

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


@dataclass
class FailoverResult:
    kill: object
    killed: str = ""                 # the node's name
    leaders: dict = field(default_factory=dict)
    unacknowledged: int = 0          # in agent A's spool when its node died
    moved_after: float = 0.0         # seconds from the kill to agent A connected elsewhere
    delivered_after: float = 0.0     # seconds from the first report to all stored (or given up)
    stored: dict = field(default_factory=dict)
    lost: dict = field(default_factory=dict)      # {device: [seq, ...]} never stored
    twice: dict = field(default_factory=dict)     # {device: [seq, ...]} stored more than once
    received: float = 0.0            # messages the collector took off the wire
    duplicates: float = 0.0          # of them, resends it dropped
    gaps: list = field(default_factory=list)
    raised_by_collector: list = field(default_factory=list)
    agent_counters: dict = field(default_factory=dict)
    spool_drops: int = 0

    def summary(self):
        return ("kill %s (%s; leaders %s): %d unacknowledged at the kill, agent moved after "
                "%.1f s, all stored after %.1f s, collector received %d and dropped %d "
                "duplicates; lost %s, stored twice %s, gaps %d, collector raised %s"
                % (self.kill, self.killed or "-", self.leaders, self.unacknowledged,
                   self.moved_after, self.delivered_after, self.received, self.duplicates,
                   {d: len(s) for d, s in self.lost.items()},
                   {d: len(s) for d, s in self.twice.items()}, len(self.gaps),
                   self.raised_by_collector))


def choose_roles(cluster, kill):
    """(doomed, collector's, other) nodes for the kind of kill asked for."""
    leaders = cluster.leaders()
    if kill == "msgs-leader":
        doomed = cluster.node(leaders["$MQTT_msgs"])
    elif kill == "sess-leader":
        doomed = cluster.node(leaders["$MQTT_sess"])
    else:   # never a leader of the messages' or the sessions' stream; the metadata's if need be
        candidates = [n for n in cluster.nodes
                      if n.name not in (leaders.get("$MQTT_msgs"), leaders.get("$MQTT_sess"))]
        doomed = min(candidates, key=lambda n: leaders.get("meta") == n.name)
    rest = [n for n in cluster.nodes if n is not doomed]
    return doomed, rest[0], rest[1], leaders


def run_failover(workdir, cluster, kill="follower", per_agent=PER_AGENT, settle=15.0):
    """Run the scenario once; the collector and agents are closed when it returns."""
    from collector_messages import anomaly   # tests/collector: on the path of its tests
    wait_for_jetstream(cluster.nodes[0])
    doomed, collector_node, other, leaders = choose_roles(cluster, kill)
    result = FailoverResult(kill=kill, killed=doomed.name if kill else "", leaders=leaders)
    collector = CollectorProcess(workdir, collector_node)
    agents = []
    everything = list(range(1, per_agent + 1))
    try:
        if not wait_until(lambda: "subscribed to" in collector.log(), 30):
            raise RuntimeError("the collector did not subscribe:\n" + collector.log())
        agent_a = make_agent(workdir, AGENT_A, [doomed, other])
        agent_b = make_agent(workdir, AGENT_B, [other, doomed])
        agents = [agent_a, agent_b]
        if not wait_until(lambda: agent_a.connected() and agent_b.connected()):
            raise RuntimeError("the agents did not connect")

        def report(seqs):
            for seq in seqs:
                for sink, device in ((agent_a, AGENT_A), (agent_b, AGENT_B)):
                    sink.send_anomaly(anomaly(seq, device=device, run=RUN))

        quarter = per_agent // 4
        started = time.monotonic()
        report(range(1, quarter + 1))
        wait_until(lambda: all(len(s) >= quarter for s in collector.stored().values()), 60,
                   interval=0.2)
        report(range(quarter + 1, 2 * quarter + 1))       # some in flight at the kill
        if kill:
            doomed.kill()
            killed_at = time.monotonic()
            result.unacknowledged = agent_a.spool_depth()
        report(range(2 * quarter + 1, 3 * quarter + 1))   # while agent A has no node
        if kill:
            wait_until(lambda: agent_a.connected() and agent_a.broker() == (other.host, other.port),
                       60)
            result.moved_after = time.monotonic() - killed_at
        report(range(3 * quarter + 1, per_agent + 1))     # after it landed

        complete = {AGENT_A: everything, AGENT_B: everything}
        last, still_since = None, time.monotonic()
        while True:   # until all is stored, or nothing changed for `settle` s with spools empty
            stored = collector.stored()
            if stored == complete:
                break
            if stored != last:
                last, still_since = stored, time.monotonic()
            elif time.monotonic() - still_since > settle and \
                    agent_a.spool_depth() == 0 and agent_b.spool_depth() == 0:
                break
            time.sleep(0.2)
        result.delivered_after = time.monotonic() - started
        result.stored = stored
        counters = collector.counters()
        result.received = counters["routerwatch_collector_messages_received_total"]
        result.duplicates = counters["routerwatch_collector_duplicates_total"]
        result.gaps = collector.gaps()
        result.raised_by_collector = collector.raised_by_itself()
        result.agent_counters = agent_a.counters()
        result.spool_drops = agent_a.drops()["spool"] + agent_b.drops()["spool"]
    finally:
        for sink in agents:
            sink.close()
        collector.close()
    for device, seqs in result.stored.items():
        result.lost[device] = sorted(set(everything) - set(seqs))
        result.twice[device] = sorted(s for s in set(seqs) if seqs.count(s) > 1)
    return result
