"""Peak memory of `routerwatch-agent --once` on a router whose package database is hostile, beside
the same run of another checkout of the agent (the reference: the version before a change).

    .venv/bin/python bench/bench_package_db.py --reference-agent /path/to/old/checkout/agent

Trees (tests/fixtures/hostile_packages.py, each with /usr/sbin/dropbear replaced): `apk`, 34 MB
of /lib/apk/db/installed with long, undecodable and repeated entries and one 64 KB line; `opkg`,
an opkg router whose status lists 5,000 packages and whose .list files bring it to 34 MB.
Peak RSS is wait4's ru_maxrss of the agent's own process (bench/procmem.py). Prints one line per
tree and agent, and the ratio this checkout / reference.

Then the CPU of repeated scans (what an unchanged hostile database costs every scan, for ever):
one process per agent runs three integrity scans of the tree, its database older than the 2 s
the agent waits before trusting a database's timestamps, and prints the CPU seconds of each
(time.process_time, the whole scan with its CPU-budget slices) and how many times it read the
database; the ratio this checkout / reference is of the later scans.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from fixtures.build_tree import build_tree  # noqa: E402
from fixtures.hostile_packages import hostile_apk, hostile_opkg  # noqa: E402
from fixtures.junk_flood import replace_dropbear  # noqa: E402
from procmem import run_with_peak_rss  # noqa: E402


def once(tree, work, agent_dir=None):
    """(exit code, peak MB, seconds, sorted kinds above info, dropbear reported)"""
    env = dict(os.environ)
    if agent_dir:
        env["PYTHONPATH"] = str(agent_dir)      # ahead of the installed package
    state = Path(tempfile.mkdtemp(dir=work))
    out_path = Path(work) / "out"
    with open(out_path, "wb") as out, open(Path(work) / "err", "wb") as err:
        code, peak_kb, seconds = run_with_peak_rss(
            [sys.executable, "-m", "routerwatch.cli", "--root", str(tree), "--once",
             "--log-file", str(tree / "var/log/messages"), "--set", "state_dir=%s" % state],
            stdout=out, stderr=err, env=env)
    anomalies = [json.loads(line) for line in out_path.read_text().splitlines() if line]
    kinds = sorted({a["kind"] for a in anomalies if a["severity"] != "info"})
    dropbear = any(a["kind"] == "integrity.rom_shadowed"
                   and a["evidence"].get("path") == "/usr/sbin/dropbear" for a in anomalies)
    return code, peak_kb / 1024.0, seconds, kinds, dropbear


# run in a child process, with the agent under test first on sys.path
_RESCANS = r"""
import json, sys, time
from routerwatch import config as cfg
from routerwatch.sources.overlay import IntegritySource
tree, state = sys.argv[1], sys.argv[2]
source = IntegritySource(cfg.load(overrides=["state_dir=" + state], defaults={"root": tree}))
seconds, now = [], 1000.0
for _ in range(3):
    start = time.process_time()
    source.poll(now)
    while source.scanning:
        source.poll(now)
    seconds.append(time.process_time() - start)
    now += source.config.intervals.integrity
cache = getattr(source, "package_cache", None)
print(json.dumps({"seconds": seconds, "reads": cache.reads if cache else len(seconds)}))
"""


def rescans(tree, work, agent_dir=None):
    """CPU seconds of three scans in one agent process, and the database reads among them."""
    env = dict(os.environ)
    if agent_dir:
        env["PYTHONPATH"] = str(agent_dir)
    state = tempfile.mkdtemp(dir=work)
    out = subprocess.run([sys.executable, "-c", _RESCANS, str(tree), state], env=env,
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    return result["seconds"], result["reads"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-agent", help="the agent/ directory of another checkout")
    parser.add_argument("--megabytes", type=int, default=34)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pkgdb-"))
    try:
        for manager in ("apk", "opkg"):
            tree = build_tree("router-clean", work / manager)
            if manager == "apk":
                hostile_apk(tree / "overlay/upper", args.megabytes)
            else:
                hostile_opkg(tree, args.megabytes)
            replace_dropbear(tree / "overlay/upper")
            agents = [("this checkout", None)]
            if args.reference_agent:
                agents.append(("reference", args.reference_agent))
            peaks = {}
            for name, agent_dir in agents:
                code, peak, seconds, kinds, dropbear = once(tree, work, agent_dir)
                peaks[name] = peak
                print("%s %s: exit %d, peak RSS %.1f MB, %.1f s, dropbear %s, %s" % (
                    manager, name, code, peak, seconds,
                    "reported" if dropbear else "NOT reported", ", ".join(kinds)))
            if len(peaks) == 2:
                print("%s: peak RSS ratio this/reference %.3f" % (
                    manager, peaks["this checkout"] / peaks["reference"]))
            time.sleep(2.5)     # the database is older than the agent's 2 s of distrust
            later = {}
            for name, agent_dir in agents:
                seconds, reads = rescans(tree, work, agent_dir)
                later[name] = (seconds[1] + seconds[2]) / 2
                print("%s %s: scan CPU %s s, database read %d times in 3 scans" % (
                    manager, name, " / ".join("%.3f" % s for s in seconds), reads))
            if len(later) == 2:
                print("%s: later-scan CPU ratio this/reference %.3f" % (
                    manager, later["this checkout"] / later["reference"]))
            shutil.rmtree(tree)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
