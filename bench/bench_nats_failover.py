"""Failover on a clustered broker: three nats-server nodes (MQTT over JetStream, replicas 3), the
collector (`routerwatch-collector run`, SQLite) on one node, two agents' MQTT sinks on the other
two, N anomalies each; the node under agent A is killed after the first half is sent
(tests/nats_failover.py is the scenario, tests/collector/test_nats_cluster.py asserts it).

    python bench/bench_nats_failover.py [--quick] [--anomalies N] [--repeat R]

Cases, interleaved round by round, each on a fresh cluster:
  - no node killed: the reference for the time to store everything;
  - a follower killed: a node that leads neither the stream of QoS 1 messages ($MQTT_msgs) nor
    the sessions' ($MQTT_sess) (nor JetStream's metadata, when a node is free of all three);
  - the $MQTT_msgs leader killed;
  - the $MQTT_sess leader killed (the node holding the MQTT sessions' stream, the collector's
    included).
Per case: seconds from the kill until agent A is connected to another node, the anomalies in
agent A's spool (not yet acknowledged) at the kill, which it resends; the copies the collector
dropped as duplicates; anomalies never stored (lost) and stored twice; the time from the first
report to the whole set stored, and its ratio to the reference run. A run that loses anomalies
ends when nothing new was stored for 15 s with both spools empty.
"""
import sys

import harness

sys.path.insert(0, str(harness.REPO / "tests"))
sys.path.insert(0, str(harness.REPO / "tests" / "collector"))
from nats_failover import run_failover  # noqa: E402
from natscluster import NatsCluster, find_nats_server  # noqa: E402

CASES = ((None, "no node killed"), ("follower", "a follower node killed"),
         ("msgs-leader", "the $MQTT_msgs leader killed"),
         ("sess-leader", "the $MQTT_sess leader killed"))


def run(quick=False, workdir=None, repeat=None, anomalies=None, cases=None):
    repeat = repeat or (1 if quick else 3)
    anomalies = anomalies or (40 if quick else 200)
    if not find_nats_server():
        return harness.result("nats_failover", quick, [harness.skipped(
            "nats failover", "nats-server is not installed")])
    wanted = [(k, c) for k, c in CASES if k is None or not cases or k in cases.split(",")]
    runs = {kill: [] for kill, _ in wanted}
    with harness.Workdir(workdir) as work:
        for round_number in range(repeat):
            for kill, _ in wanted:
                place = work / ("round%d-%s" % (round_number, kill or "none"))
                cluster = NatsCluster(place / "nats", nodes=3).start()
                try:
                    result = run_failover(place, cluster, kill=kill, per_agent=anomalies)
                finally:
                    cluster.close()
                print("  " + result.summary(), flush=True)
                runs[kill].append(result)
    reference = [r.delivered_after for r in runs[None]]
    rows = []
    for kill, case in wanted:
        results = runs[kill]
        times = [r.delivered_after for r in results]
        extra = {
            "anomalies": 2 * anomalies, "runs": len(results),
            "lost": [sum(len(s) for s in r.lost.values()) for r in results],
            "lost_from": [{d: s for d, s in r.lost.items() if s} for r in results],
            "stored_twice": [sum(len(s) for s in r.twice.values()) for r in results],
            "duplicates_dropped": [int(r.duplicates) for r in results],
            "agent.silent_raised": [len(r.raised_by_collector) for r in results]}
        if kill:
            extra.update({
                "killed": [r.killed for r in results],
                "move_seconds": harness.summarize([r.moved_after for r in results]),
                "unacknowledged_at_kill": [r.unacknowledged for r in results]})
        rows.append(harness.comparison(
            "%s (%d anomalies from 2 agents)" % (case, 2 * anomalies), "no node killed",
            reference, times, [t / r for t, r in zip(times, reference)], **extra))
    return harness.result("nats_failover", quick, rows, notes=[
        "routerwatch = the case, reference = the run with no node killed; time = first report "
        "to every anomaly stored (or to giving up, when some are lost)"])


def options(parser):
    parser.add_argument("--anomalies", type=int,
                        help="anomalies per agent (default 200, 40 with --quick)")
    parser.add_argument("--cases", help="comma-separated: follower,msgs-leader,sess-leader "
                        "(default all; the reference always runs)")


if __name__ == "__main__":
    sys.exit(harness.main(run, __doc__.split("\n")[0], extra_args=options))
