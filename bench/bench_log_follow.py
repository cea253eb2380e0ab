"""The live log reader's CPU: what the agent's reader thread spends on each line of a followed
log (as it follows `logread -f` on a router), on a flood of other daemons' lines with few login
lines among them, and on an attack where every other line is one; beside `grep -F` picking the
same candidate lines out of the same bytes (a C filter, the floor), and optionally beside
another checkout's agent (--reference-agent DIR).

    python bench/bench_log_follow.py [--lines 300000] [--rounds 3] [--reference-agent DIR]

Each round writes the log at once to a file the agent's LogSource already follows (log.source=
file, so the same reader thread and splitting as with logread -f) and takes the CPU time of that
agent process from the write until it has read every line; grep is timed on the same file. The
contenders alternate round by round; medians and min-max are printed, ratios to grep.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LOGIN = ("Tue Nov 25 04:11:31 2025 authpriv.warn dropbear[%d]: Bad password attempt for 'root' "
         "from 192.0.2.%d:%d\n")
OTHER = ("Tue Nov 25 04:11:31 2025 kern.warn kernel: [%d.000] nf_conntrack: table full, "
         "dropping packet\n")

# run in a process of its own, with the agent checkout to import (argv: agent dir, log, lines)
FOLLOWER = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from routerwatch.config import load
from routerwatch.sources.logread import LogSource
path, lines, data = sys.argv[2], int(sys.argv[3]), sys.argv[4]
source = LogSource(load(None, ["log.source=file", "log.path=%s" % path,
                               "log.queue_lines=1000000"]))
time.sleep(0.3)                       # the reader thread stands at the end of the empty file
with open(data, "rb") as handle:
    payload = handle.read()
start = time.process_time()
with open(path, "ab") as handle:
    handle.write(payload)
while source.lines_read < lines:
    time.sleep(0.005)
cpu = time.process_time() - start
queued = len(source._queue)
source.close()
print(cpu, queued)
"""


def make_log(path, lines, login_share):
    every = round(1 / login_share) if login_share else 0
    with open(path, "w") as handle:
        for i in range(lines):
            if every and i % every == 0:
                handle.write(LOGIN % (1000 + i % 30000, i % 250, 1024 + i % 60000))
            else:
                handle.write(OTHER % i)
    return every and len(range(0, lines, every))


def follow_cpu(agent_dir, data, lines, work):
    path = os.path.join(work, "followed-%d.log" % time.monotonic_ns())
    open(path, "w").close()
    out = subprocess.run([sys.executable, "-c", FOLLOWER, agent_dir, path, str(lines), data],
                         check=True, capture_output=True, text=True, timeout=600).stdout.split()
    os.unlink(path)
    return float(out[0]), int(out[1])


def grep_cpu(data):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["grep", "-F", "-c", "-e", "dropbear", "-e", "luci: ", data],
                   stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def summary(values):
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reference-agent", metavar="DIR",
                        help="another checkout of the repository, run the same way beside")
    args = parser.parse_args()
    agents = {"routerwatch": str(REPO / "agent")}
    if args.reference_agent:
        agents["reference agent"] = str(Path(args.reference_agent).resolve() / "agent")
    rows = []
    with tempfile.TemporaryDirectory(prefix="routerwatch-bench-follow-") as work:
        for label, share in (("other daemons' flood, 1 % login lines", 0.01),
                             ("attack, 50 % login lines", 0.5)):
            data = os.path.join(work, "input.log")
            logins = make_log(data, args.lines, share)
            times = {name: [] for name in ["grep -F"] + list(agents)}
            for _ in range(args.rounds):
                times["grep -F"].append(grep_cpu(data))
                for name, agent_dir in agents.items():
                    cpu, queued = follow_cpu(agent_dir, data, args.lines, work)
                    if queued != logins:
                        raise RuntimeError("%s queued %d of %d login lines" % (name, queued,
                                                                                logins))
                    times[name].append(cpu)
            row = {"case": label, "lines": args.lines, "login_lines": logins,
                   "cpu_s": {name: summary(values) for name, values in times.items()},
                   "us_per_line": {name: round(statistics.median(values) / args.lines * 1e6, 3)
                                   for name, values in times.items()}}
            base = statistics.median(times["grep -F"])
            row["ratio_to_grep"] = {name: round(statistics.median(values) / max(base, 1e-6), 1)
                                    for name, values in times.items() if name != "grep -F"}
            if args.reference_agent:
                row["ratio_to_reference_agent"] = round(
                    statistics.median(times["routerwatch"])
                    / statistics.median(times["reference agent"]), 3)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
