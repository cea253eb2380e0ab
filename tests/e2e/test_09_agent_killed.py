"""Scenario 9, run last: the agent is killed inside the router.

Given the agent online at the collector, when it is killed with SIGKILL (no clean goodbye), then
the collector raises agent.silent for the device (from the Last Will the broker publishes, or
from the missing heartbeats).
"""
import time

from router_harness import DEVICE_ID


def test_killed_agent_is_reported_silent(bench):
    row = bench.wait_online(timeout=60)
    assert row.silent_since is None or row.status == "online"
    started = time.time()
    bench.vm.out("kill -9 %d" % bench.agent_pid)
    silent = bench.wait_anomaly("agent.silent", since=started,
                                match=lambda a: a.device == DEVICE_ID, timeout=90)
    assert silent.origin == "collector"
    assert silent.evidence["reason"] in ("last_will", "heartbeats")
    bench.record("agent_killed", "agent.silent", started, silent,
                 reason=silent.evidence["reason"])
