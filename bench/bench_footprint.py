"""Footprint: the agent's memory on this host against the floor of a bare Python that only
imports its dependencies, what `import ssl` costs, and memory growth under a flood of log lines.

    python bench/bench_footprint.py [--quick] [--flood-seconds S] [--flood-rate LINES_PER_S]
                                    [--trace]

Memory is read from /proc/<pid>/status: RssAnon (private: the heap, what the agent itself costs)
and RssFile (file-backed: the interpreter and shared libraries, shared with every other Python
process on a router that has one). Floors, each an idle python3 of the same interpreter:
  bare         python3 -c 'sleep'
  +ssl         python3 -c 'import ssl; sleep'
  deps floor   python3 -c 'import paho.mqtt.client, psutil, ujson; sleep'
The agent runs as on a router (all watchers on, MQTT sink to a local mosquitto) against a small
generated router tree (--root: /proc/net from bench/gen_conntrack.py, /rom and /overlay/upper).

Flood: lines of a generated OpenWrt log (bench/gen_openwrt_log.py; ~3% logins, so anomalies flow
too) are appended to the followed file at a fixed rate with fresh time stamps; the agent's memory
is sampled every few seconds. Reported: level, peak, growth after the first tenth (warm-up), and
the slope of a least-squares line through the samples (kB/min), only over a span of at least
MIN_SLOPE_SECONDS (5 min; a shorter run reports none). Quick mode floods 30 s; the full
mode's default is 10 minutes (the one-hour soak is `--flood-seconds 3600`).

--trace runs the agent under tracemalloc (bench/traced_agent.py; slower, and its RSS is not the
agent's) and takes heap snapshots 90 s in, half way and at the end of the flood: the Python
objects alive at each, and where they grew most between the first and the last. Growth there is
a table still filling or a leak; RSS growth without it is the allocator's slack.

QEMU guest figures (build/e2e-metrics.json, written by the e2e harness) are included when present.
"""
import json
import os
import signal
import subprocess
import time
import tracemalloc
from pathlib import Path

import harness
import procmem
import services

SLEEPER = "import sys, time; print('ready', flush=True); time.sleep(3600)"
FLOORS = (
    ("bare python3", ""),
    ("python3 + import ssl", "import ssl; "),
    ("deps floor: paho-mqtt, psutil, ujson", "import paho.mqtt.client, psutil, ujson; "),
)
QEMU_METRICS = harness.BUILD / "e2e-metrics.json"


def floor_memory(repeat):
    out = {}
    for name, imports in FLOORS:
        samples = [procmem.idle_process_kb([harness.python_exe(), "-c", imports + SLEEPER])
                   for _ in range(repeat)]
        out[name] = {field: harness.summarize([s[field] for s in samples], unit="kB")
                     for field in ("RssAnon", "RssFile", "VmRSS")}
    return out


def make_router(root):
    """A small router tree for --root: conntrack and addresses, a release file, /rom and an
    overlay upper layer with a few changed files."""
    from gen_conntrack import healthy_lines, write_tree
    from gen_rootfs import generate
    root = Path(root)
    write_tree(str(root), healthy_lines(1000))
    # the process watcher reads <root>/proc with psutil: lend it this host's processes (and the
    # files psutil needs beside them); net/ and sys/ stay the generated router's
    for name in os.listdir("/proc"):
        target = root / "proc" / name
        if name not in ("net", "sys", "self", "thread-self") and not target.exists():
            try:
                target.symlink_to("/proc/" + name)
            except OSError:
                pass
    (root / "etc").mkdir(parents=True, exist_ok=True)
    release = ("DISTRIB_ID='OpenWrt'\nDISTRIB_RELEASE='23.05.3'\nDISTRIB_REVISION='r23809-"
               "234f1a2efa'\nDISTRIB_TARGET='ramips/mt7621'\nDISTRIB_ARCH='mipsel_24kc'\n"
               "DISTRIB_DESCRIPTION='OpenWrt 23.05.3 r23809-234f1a2efa'\nDISTRIB_TAINTS=''\n")
    (root / "etc" / "openwrt_release").write_text(release)
    generate(root / "rom", files=300, megabytes=6.0, seed=3)
    (root / "rom" / "etc").mkdir(parents=True, exist_ok=True)
    (root / "rom" / "etc" / "openwrt_release").write_text(release)
    generate(root / "overlay" / "upper", files=30, megabytes=0.2, seed=4)
    return root


def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# A slope over less than this is the level still settling (tables filling, the allocator's first
# arenas), not a trend: 30 s of flood made "1154 kB/min", which reads as a leak and is none.
MIN_SLOPE_SECONDS = 300


def slope_kb_per_min(samples, min_seconds=MIN_SLOPE_SECONDS):
    """Least-squares slope of (seconds, kB) pairs, in kB per minute; None when the samples span
    less than min_seconds (or are too few)."""
    if len(samples) < 3 or samples[-1][0] - samples[0][0] < min_seconds:
        return None
    xs = [s for s, _ in samples]
    ys = [v for _, v in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if not var:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var * 60.0


def _rounded(value):
    return None if value is None else round(value, 1)


def flood(agent, log, source_lines, seconds, rate, sample_every, snapshot_at=()):
    """Append `rate` lines/s for `seconds` with fresh stamps; sample memory; send the agent
    SIGUSR2 at the snapshot_at seconds (a traced agent's heap snapshot). Returns a dict."""
    snapshot_at = sorted(snapshot_at)
    chunk_seconds = 0.05
    per_chunk = max(1, int(rate * chunk_seconds))
    samples = []
    written = 0
    index = 0
    start = time.monotonic()
    cpu_start = cpu_seconds(agent.pid)
    next_sample = start
    with open(log, "ab", buffering=0) as out:
        tick = 0
        while True:
            now = time.monotonic()
            if now - start >= seconds:
                break
            if snapshot_at and now - start >= snapshot_at[0]:
                snapshot_at.pop(0)
                os.kill(agent.pid, signal.SIGUSR2)
            if now >= next_sample:
                mem = procmem.status_kb(agent.pid)
                if not mem:
                    raise RuntimeError("the agent died during the flood: %s" % agent.log_tail())
                samples.append((round(now - start, 2), mem))
                next_sample += sample_every
            stamp = time.strftime("%a %b %e %H:%M:%S %Y").encode()
            batch = []
            for _ in range(per_chunk):
                batch.append(stamp + source_lines[index][24:])
                index = (index + 1) % len(source_lines)
            out.write(b"".join(batch))
            written += per_chunk
            tick += 1
            pause = start + tick * chunk_seconds - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    elapsed = time.monotonic() - start
    cpu_end = cpu_seconds(agent.pid)
    mem = procmem.status_kb(agent.pid)
    samples.append((round(elapsed, 2), mem))
    warm = [s for s in samples if s[0] >= seconds * 0.1]
    out = {"seconds": round(elapsed, 1), "lines_written": written,
           "rate_achieved": round(written / elapsed, 1), "samples": len(samples),
           "agent_cpu_percent": round(100.0 * (cpu_end - cpu_start) / elapsed, 1)
           if cpu_start is not None and cpu_end is not None else None}
    for field in ("RssAnon", "RssFile", "VmRSS"):
        series = [(t, m.get(field, 0)) for t, m in samples]
        warm_series = [(t, m.get(field, 0)) for t, m in warm] or series
        out[field] = {"start": series[0][1], "end": series[-1][1],
                      "peak": max(v for _, v in series),
                      "growth_after_warmup": warm_series[-1][1] - warm_series[0][1],
                      "slope_kb_per_min": _rounded(slope_kb_per_min(warm_series)),
                      # a level that is still settling makes the whole-run slope look worse
                      # than the end of the run: the second half says where it is heading
                      "slope_last_half_kb_per_min": _rounded(slope_kb_per_min(
                          [s for s in series if s[0] >= seconds / 2])),
                      "unit": "kB"}
    out["series_RssAnon"] = [(t, m.get("RssAnon")) for t, m in samples]
    return out


def heap_growth(directory, times, top=5):
    """Traced Python heap (kB) at each snapshot, and the call sites that grew most from the
    first snapshot to the last."""
    paths = [Path(directory) / ("snapshot-%d.pickle" % (i + 1)) for i in range(len(times))]
    deadline = time.monotonic() + 60
    while not all(p.exists() for p in paths) and time.monotonic() < deadline:
        time.sleep(0.5)      # the agent writes the last one while the flood winds down
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    snapshots = []
    for path in paths:
        try:
            snapshots.append(tracemalloc.Snapshot.load(str(path)).filter_traces(ignore))
        except (OSError, EOFError, ValueError):
            return {"error": "no heap snapshot %s" % path.name}
    totals = {"%d s" % t: sum(st.size for st in snap.statistics("filename")) // 1024
              for t, snap in zip(times, snapshots)}
    grew = []
    for stat in snapshots[-1].compare_to(snapshots[0], "lineno")[:top]:
        frame = stat.traceback[0]
        grew.append({"where": "%s:%d" % (os.path.relpath(frame.filename, harness.REPO),
                                         frame.lineno),
                     "kB": round(stat.size_diff / 1024, 1), "blocks": stat.count_diff})
    return {"traced_heap_kB": totals, "grew_most": grew}


def last_heartbeat(path):
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            payload = json.loads(line.split(b" ", 1)[1])
        except (IndexError, ValueError):
            continue
        return {"counters": payload.get("counters"), "drops": payload.get("drops"),
                "rss_kb": payload.get("rss_kb")}
    return None


def run(quick=False, workdir=None, flood_seconds=None, flood_rate=None, repeat=None,
        settle=None, sample_every=None, trace=False):
    flood_seconds = flood_seconds or (30 if quick else 600)
    flood_rate = flood_rate or 10000
    repeat = repeat or 3
    rows, notes = [], []
    floors = floor_memory(repeat)
    for name, fields in floors.items():
        rows.append({"case": "floor: " + name, **{k: v["median"] for k, v in fields.items()},
                     "unit": "kB"})
    bare, with_ssl = floors["bare python3"], floors["python3 + import ssl"]
    rows.append({"case": "import ssl costs", "unit": "kB",
                 "RssAnon": with_ssl["RssAnon"]["median"] - bare["RssAnon"]["median"],
                 "RssFile": with_ssl["RssFile"]["median"] - bare["RssFile"]["median"]})
    missing = services.mosquitto_missing()
    _, why = harness.optional_import("routerwatch.sinks.mqtt", "MqttSink")
    _, why_log = harness.optional_import("routerwatch.sources.logread", "LogSource")
    if missing or why or why_log:
        rows.append(harness.skipped("agent", missing or why or why_log))
        return harness.result("footprint", quick, rows, notes, qemu=qemu_metrics())
    with harness.Workdir(workdir) as work:
        work = Path(work)
        root = make_router(work / "router")
        log = work / "followed.log"
        log.write_bytes(b"")
        from gen_openwrt_log import generate
        source_log = work / "source.log"
        generate(source_log, lines=50_000 if quick else 200_000, seed=7)
        source_lines = source_log.read_bytes().splitlines(keepends=True)
        broker = services.start_broker(work)
        agent = heartbeats = None
        try:
            heartbeats_file = work / "heartbeats.txt"
            heartbeats_out = open(heartbeats_file, "wb")
            heartbeats = subprocess.Popen(
                ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-v", "-t",
                 "routerwatch/+/heartbeat"], stdout=heartbeats_out, stderr=subprocess.DEVNULL,
                start_new_session=True)
            heartbeats_out.close()
            command = None
            snapshot_at = ()
            if trace:
                snapshots = work / "snapshots"
                snapshots.mkdir()
                command = [harness.python_exe(), str(harness.REPO / "bench" / "traced_agent.py"),
                           str(snapshots)]
                snapshot_at = (min(90, flood_seconds // 4), flood_seconds // 2,
                               max(flood_seconds - 5, flood_seconds // 2 + 1))
            agent = services.AgentProcess(work / "agent", log, broker, root=root,
                                          overrides=["intervals.heartbeat=5"],
                                          command=command).start()
            agent.wait_started()
            # the first scans of every watcher are done before the idle reading
            time.sleep(settle if settle is not None else 5.0 if quick else 15.0)
            idle = procmem.status_kb(agent.pid)
            floor = floors["deps floor: paho-mqtt, psutil, ujson"]
            traced = " (under tracemalloc)" if trace else ""
            rows.append({"case": "agent idle (all watchers, MQTT sink)" + traced, "unit": "kB",
                         **idle})
            rows.append({"case": "agent adds on top of the deps floor" + traced, "unit": "kB",
                         "RssAnon": idle.get("RssAnon", 0) - floor["RssAnon"]["median"],
                         "RssFile": idle.get("RssFile", 0) - floor["RssFile"]["median"]})
            result = flood(agent, log, source_lines, flood_seconds, flood_rate,
                           sample_every=sample_every or (2.0 if quick else 10.0),
                           snapshot_at=snapshot_at)
            if trace:
                result["heap"] = heap_growth(work / "snapshots", snapshot_at)
            time.sleep(6.0)      # one more heartbeat (every 5 s here) with the flood's counters
            result["agent_heartbeat"] = last_heartbeat(heartbeats_file)
            result["case"] = "agent under a flood of %d lines/s for %d s%s" % (
                flood_rate, flood_seconds, traced)
            rows.append(result)
        finally:
            if agent is not None:
                agent.stop()
            if heartbeats is not None and heartbeats.poll() is None:
                os.killpg(heartbeats.pid, 9)
                heartbeats.wait()
            broker.close()
    notes.append("RssFile is mostly the interpreter and shared libraries: shared with any other "
                 "Python process, and on a router a page of a squashfs file counts once")
    return harness.result("footprint", quick, rows, notes, qemu=qemu_metrics())


def qemu_metrics():
    try:
        return json.loads(QEMU_METRICS.read_text())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    raise SystemExit(harness.main(run, __doc__.split("\n\n")[0], lambda p: (
        p.add_argument("--flood-seconds", type=int), p.add_argument("--flood-rate", type=int),
        p.add_argument("--trace", action="store_true", default=None,
                       help="run the agent under tracemalloc and report its heap growth"))))
