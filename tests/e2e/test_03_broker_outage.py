"""Scenario 8: the broker is down while an attack happens, then comes back.

Given the agent connected to the broker, when the broker is killed, hydra attacks from another
WAN address, and the broker is restarted only after the agent has had time to see the attack,
then the collector gets that login.bruteforce anomaly once (the agent's spool held it), the
agent reconnects on its own, no anomaly sequence number went missing, and the collector did not
call the agent silent for heartbeats it could not have heard.
"""
import time

from router_harness import netns
from test_02_bruteforce import PASSWORDS

ATTACKER = netns.WAN_ATTACKERS[1]


def test_anomalies_survive_a_broker_outage_exactly_once(bench):
    started = time.time()
    bench.broker.stop()
    try:
        done = bench.hydra(["root"], PASSWORDS, source=ATTACKER, tasks=4)
        assert "0 valid password" in done.stdout, done.stdout + done.stderr
        # the agent reads the log continuously; give it a few loop passes, then the broker returns
        time.sleep(10)
        down_for = time.time() - started
        assert not [a for a in bench.collector.anomalies(kind="login.bruteforce", since=started)
                    if a.evidence.get("source_ip") == ATTACKER], "stored while the broker was down"
    finally:
        bench.broker.start()
    restarted = time.time()
    anomaly = bench.wait_anomaly("login.bruteforce", since=started,
                                 match=lambda a: a.evidence.get("source_ip") == ATTACKER,
                                 timeout=120, what="from %s after the broker came back" % ATTACKER)
    # a few more heartbeats: any redelivery would have arrived by then
    bench.wait_online(timeout=60)
    time.sleep(12)
    copies = [a for a in bench.collector.anomalies(kind="login.bruteforce", since=started)
              if a.evidence.get("source_ip") == ATTACKER]
    assert len(copies) == 1, [(a.run, a.seq, a.evidence.get("failures")) for a in copies]
    # the collector could not hear anybody while the broker was away: that is no silence
    silent = bench.collector.anomalies(kind="agent.silent", since=started)
    assert silent == [], [a.summary for a in silent]
    missing = [g for g in bench.collector.gaps() if g["type"] == "anomaly" and g["missing"] > 0]
    assert missing == [], "anomaly sequence numbers never arrived: %r" % (missing,)
    bench.metrics["scenarios"]["broker_outage"] = {
        "broker_down_seconds": round(down_for, 1),
        "seconds_from_broker_restart_to_stored": round(anomaly.received_at - restarted, 2),
        "copies_stored": len(copies)}
    print("\n[e2e] broker_outage: broker down %.0f s; anomaly stored %.1f s after the restart, "
          "%d copy" % (down_for, anomaly.received_at - restarted, len(copies)))
