"""The agent's footprint with OpenWrt's default intervals (the scenarios poll faster).

Given the same agent configuration without the test's short intervals (connections 10 s,
processes 30 s, integrity 900 s, heartbeat 60 s), when the agent is restarted with it and left
alone after its first scans, then it comes back online at the collector, and its memory and CPU
over a minute are recorded as "idle_default_intervals" in build/e2e-metrics.json, beside two
references measured in the same router over the same minute: the import floor (a bare python3
that imports paho-mqtt, psutil and ujson and sleeps) and a busybox shell loop that `cat`s the
/proc files the agent's idle polls read, at the agent's connections interval (10 s); and what
each polled source costs per poll in that router (guest_poll_costs.py) and which of the agent's
threads uses the CPU over the next minute, so the idle share can be traced to its parts.
"""
import json
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.router_arches("x86_64", "mipsel")

DEFAULTS_CONFIG = "/tmp/routerwatch-defaults.json"
POLL_COSTS = Path(__file__).resolve().parent / "guest_poll_costs.py"
FLOOR = ("exec python3 -c 'import paho.mqtt.client, psutil, ujson, time; print(\"ready\", "
         "flush=True); time.sleep(3600)'")
# what the idle agent reads each connections poll: sockets, conntrack, every process' stat
CAT_REFERENCE = ("exec sh -c 'while :; do cat /proc/net/tcp /proc/net/tcp6 /proc/net/udp "
                 "/proc/net/udp6 /proc/net/raw /proc/net/raw6 /proc/net/nf_conntrack "
                 "/proc/[0-9]*/stat > /dev/null 2>&1; sleep 10; done'")


def thread_usage(bench, pid, seconds):
    """[{tid, main, syscall, cpu_percent}] of each thread of pid over `seconds`."""
    snap = ("for t in /proc/%d/task/*; do echo \"${t##*/} $(cut -d' ' -f14,15 $t/stat) "
            "$(cut -d' ' -f1 $t/syscall)\"; done; echo up $(cat /proc/uptime)" % pid)
    lines = bench.vm.out("%s; sleep %d; %s" % (snap, seconds, snap),
                         timeout=seconds + 60).splitlines()
    ups = [i for i, line in enumerate(lines) if line.startswith("up ")]
    first, second = lines[:ups[0]], lines[ups[0] + 1:ups[1]]
    elapsed = float(lines[ups[1]].split()[1]) - float(lines[ups[0]].split()[1])
    before = {line.split()[0]: int(line.split()[1]) + int(line.split()[2]) for line in first}
    threads = []
    for line in second:
        tid, utime, stime, syscall = (line.split() + ["?"])[:4]
        if tid in before:
            threads.append({"tid": int(tid), "main": int(tid) == pid, "syscall": syscall,
                            "cpu_percent": round((int(utime) + int(stime) - before[tid])
                                                 / max(elapsed, 0.001), 2)})
    return threads


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
    floor = bench.vm.spawn(FLOOR, log="/tmp/e2e-floor.log")
    reference = bench.vm.spawn(CAT_REFERENCE)
    try:
        bench.vm.wait_for("grep -q ready /tmp/e2e-floor.log", timeout=300)
        time.sleep(45)      # the first scans of every source are behind it
        usage = bench.usage({"agent": bench.agent_pid, "import_floor": floor,
                             "cat_reference": reference}, seconds=60)
    finally:
        bench.vm.sh("kill %d %d; rm -f /tmp/e2e-floor.log" % (floor, reference))
    bench.metrics["agent"]["idle_default_intervals"] = usage["agent"]
    bench.metrics["agent"]["import_floor"] = usage["import_floor"]
    bench.metrics["agent"]["cat_reference_default_intervals"] = usage["cat_reference"]
    for name, row in usage.items():
        print("\n[e2e] %-14s VmRSS %s kB (RssAnon %s, RssFile %s), CPU %.2f %% of one emulated "
              "core over %d s" % (name, row["VmRSS_kB"], row["RssAnon_kB"], row["RssFile_kB"],
                                   row["cpu_percent"], row["sampled_seconds"]))
    assert usage["agent"]["VmRSS_kB"] > 0
    # the agent holds the floor's modules and its own on top of them
    assert usage["agent"]["RssAnon_kB"] > usage["import_floor"]["RssAnon_kB"] > 0
    # which of the agent's threads uses it: the loop (polls, integrity scan) is the main thread;
    # the log follower waits in read(), paho's network thread in select(), the publisher on a
    # futex (the system call each one is in tells them apart)
    threads = thread_usage(bench, bench.agent_pid, seconds=60)
    bench.metrics["agent"]["idle_default_intervals_threads"] = threads
    print("\n[e2e] agent threads over 60 s: %s" % ", ".join(
        "%s%s (syscall %s) %.2f %%" % (t["tid"], " main" if t["main"] else "", t["syscall"],
                                       t["cpu_percent"]) for t in threads))
    # the parts: each source's poll on this CPU (the agent's own code, run beside it)
    bench.vm.write_file("/tmp/e2e-poll-costs.py", POLL_COSTS.read_text())
    costs = json.loads(bench.vm.out("PYTHONPATH=/usr/lib/routerwatch python3 "
                                    "/tmp/e2e-poll-costs.py 3; rm -f /tmp/e2e-poll-costs.py",
                                    timeout=300))
    bench.metrics["agent"]["poll_costs"] = costs
    print("\n[e2e] CPU seconds per poll: %s; waiting: %.4f s/s"
          % (costs["poll_seconds"], costs["wait_cpu_per_second"]))
    assert set(costs["poll_seconds"]) >= {"ConntrackSource", "ListenerSource", "ProcessSource"}
