"""The agent's footprint with OpenWrt's default intervals (the scenarios poll faster).

Given the same agent configuration without the test's short intervals (connections 10 s,
processes 30 s, integrity 900 s, heartbeat 60 s), when the agent is restarted with it and left
alone after its first scans, then it comes back online at the collector, and its memory and CPU
over a minute are recorded as "idle_default_intervals" in build/e2e-metrics.json.
"""
import json
import time

import pytest

pytestmark = pytest.mark.router_arches("x86_64", "mipsel")

DEFAULTS_CONFIG = "/tmp/routerwatch-defaults.json"


def test_agent_footprint_at_default_intervals(bench):
    current = bench.vm.out("cat /proc/%d/cmdline | tr '\\0' ' '" % bench.agent_pid).split()
    config_path = current[current.index("--config") + 1]
    config = json.loads(bench.vm.out("cat %s" % config_path))
    config.pop("intervals", None)
    bench.vm.write_file(DEFAULTS_CONFIG, json.dumps(config), 0o600)
    old_run = bench.collector.device().run
    bench.vm.out("kill %d; while kill -0 %d 2>/dev/null; do sleep 0.2; done"
                 % (bench.agent_pid, bench.agent_pid), timeout=60)
    command = bench.agent_command.replace(config_path, DEFAULTS_CONFIG)
    assert command != bench.agent_command
    bench.agent_pid = bench.vm.spawn(command, log="/tmp/routerwatch-agent.log")
    bench.wait_online(timeout=120, run_changed_from=old_run)
    deadline = time.monotonic() + 60
    while bench.collector.device().heartbeat_interval != 60 and time.monotonic() < deadline:
        time.sleep(0.5)      # "online" comes first, then the new run's first heartbeat
    assert bench.collector.device().heartbeat_interval == 60
    time.sleep(45)      # the first scans of every source are behind it
    usage = bench.record_usage("idle_default_intervals", seconds=60)
    assert usage["VmRSS_kB"] > 0
