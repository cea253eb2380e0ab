"""What Home Assistant discovery costs on the router: two agents side by side in the same run, one
with homeassistant.discovery off (the reference) and one with it on, each watching its own copy
of the attacked fixture router, following its own log that gets the same brute force at the same
rate, publishing to one local mosquitto.

    python bench/bench_homeassistant.py [--quick] [--seconds S] [--rate LINES_PER_S]

Reported per round, and as on/off ratios: the agent's CPU seconds (utime + stime) over the
flood, its private memory (RssAnon, the median of 1 s samples), and the bytes and messages it
published (counted by a subscriber to everything). The anomalies both make are the same, so the
difference is what discovery adds: the configs on connect, the retained state once per anomaly
burst and heartbeat, and the state file in run_dir.
"""
import os
import shutil
import statistics
import threading
import time
from pathlib import Path

import harness
import procmem
import services

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "router-attacked"
LINE = ("{stamp} authpriv.warn dropbear[{pid}]: Bad password attempt for 'root' from "
        "198.51.100.{host}:{port}\n")


def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class Traffic:
    """Bytes and messages published per device, from a subscriber to everything."""

    def __init__(self, broker):
        from routerwatch.sinks.mqtt import new_client
        self.bytes, self.messages = {}, {}
        self._lock = threading.Lock()
        self.client = new_client("bench-traffic")
        self.client.on_connect = lambda c, *a: c.subscribe("#", qos=0)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message):
        # routerwatch/<device>/... and homeassistant/<component>/<device>/...
        device = ("on" if "/bench-ha-on/" in message.topic
                  else "off" if "/bench-ha-off/" in message.topic else None)
        if device is None:
            return
        with self._lock:
            self.bytes[device] = self.bytes.get(device, 0) + len(message.topic) + len(
                message.payload)
            self.messages[device] = self.messages.get(device, 0) + 1

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def one_round(workdir, broker, seconds, rate):
    agents = {}
    for side, discovery in (("off", "0"), ("on", "1")):
        tree = workdir / side / "router"
        shutil.copytree(FIXTURE, tree, symlinks=True)
        log_file = workdir / side / "messages"
        log_file.write_text("")
        agents[side] = services.AgentProcess(
            workdir / side, log_file, broker=broker, root=tree, device_id="bench-ha-" + side,
            overrides=["homeassistant.discovery=" + discovery, "intervals.heartbeat=5"])
    traffic = Traffic(broker)
    try:
        for agent in agents.values():
            agent.start()
        for agent in agents.values():
            agent.wait_started()
        time.sleep(2.0)          # both past their first scan of the tree
        cpu_start = {side: cpu_seconds(a.pid) for side, a in agents.items()}
        memory = {side: [] for side in agents}
        handles = {side: open(a.log_file, "a") for side, a in agents.items()}
        start = time.monotonic()
        written = 0
        try:
            while time.monotonic() - start < seconds:
                stamp = time.strftime("%a %b %d %H:%M:%S %Y")
                batch = "".join(LINE.format(stamp=stamp, pid=1000 + (written + i) % 30000,
                                            host=(written + i) // 20 % 250 + 1,
                                            port=20000 + (written + i) % 40000)
                                for i in range(rate))
                for handle in handles.values():
                    handle.write(batch)
                    handle.flush()
                written += rate
                for side, agent in agents.items():
                    memory[side].append(procmem.status_kb(agent.pid).get("RssAnon", 0))
                time.sleep(max(0.0, start + written / rate - time.monotonic()))
        finally:
            for handle in handles.values():
                handle.close()
        time.sleep(6.0)          # a heartbeat after the last line
        cpu = {side: cpu_seconds(a.pid) - cpu_start[side] for side, a in agents.items()}
    finally:
        for agent in agents.values():
            agent.stop()
        traffic.stop()
        shutil.rmtree(workdir / "off", ignore_errors=True)
        shutil.rmtree(workdir / "on", ignore_errors=True)
    return {"cpu": cpu, "rss": {s: statistics.median(v) for s, v in memory.items()},
            "bytes": dict(traffic.bytes), "messages": dict(traffic.messages),
            "lines": written}


def run(quick=False, workdir=None, seconds=None, rate=None, repeat=None):
    reason = services.mosquitto_missing()
    if reason:
        return harness.result("homeassistant", quick, [harness.skipped("discovery on/off",
                                                                       reason)])
    seconds = seconds or (10 if quick else 60)
    rate = rate or (20 if quick else 50)
    repeat = repeat or (1 if quick else 3)
    rounds = []
    with harness.Workdir(workdir) as scratch:
        broker = services.start_broker(scratch)
        try:
            for number in range(repeat):
                rounds.append(one_round(Path(scratch) / ("round%d" % number), broker, seconds,
                                        rate))
        finally:
            broker.close()
    rows = []
    for case, key, unit in (("CPU seconds over the flood", "cpu", "s"),
                            ("private memory (RssAnon, median)", "rss", "kB"),
                            ("bytes published", "bytes", "B"),
                            ("messages published", "messages", "msgs")):
        off = [r[key].get("off", 0) for r in rounds]
        on = [r[key].get("on", 0) for r in rounds]
        ratios = [b / a if a else None for a, b in zip(off, on)]
        row = harness.comparison(case, "discovery off", off, on, ratios)
        row["reference"]["unit"] = row["routerwatch"]["unit"] = unit
        row["ratio"]["meaning"] = "discovery on / discovery off"
        rows.append(row)
    return harness.result(
        "homeassistant", quick, rows,
        notes=["%d s of brute force at %d lines/s per agent, %d round(s); 'routerwatch' is the "
               "agent with discovery on" % (seconds, rate, repeat)],
        rounds=rounds)


if __name__ == "__main__":
    def extra(parser):
        parser.add_argument("--seconds", type=int, help="flood duration per round")
        parser.add_argument("--rate", type=int, help="log lines per second per agent")
    raise SystemExit(harness.main(run, __doc__.splitlines()[0], extra))
