"""Run every benchmark, print one table, write build/bench-results.json.

    python bench/run_all.py            full sizes (about 30-40 minutes, 10 of them the flood)
    python bench/run_all.py --quick    small sizes (a few minutes)
    python bench/run_all.py --only logins,conntrack     (replaces just those in the results file)

Each benchmark is also runnable alone: python bench/bench_<name>.py [--quick]. A benchmark that
fails is reported with its error and the others still run; the exit code is 1 then.
"""
import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

import harness

BENCHMARKS = ("logins", "integrity", "conntrack", "delivery", "latency", "footprint", "dashboard",
              "devices", "homeassistant")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    parser.add_argument("--json", default=str(harness.RESULTS_FILE), help="results file")
    parser.add_argument("--flood-seconds", type=int, help="footprint: flood duration")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error("unknown benchmark %s; known: %s" % (", ".join(unknown), ", ".join(BENCHMARKS)))
    results, failed = [], []
    kept = []
    if args.only and Path(args.json).exists():
        # a subset run replaces only its own benchmarks in an existing results file
        try:
            kept = [r for r in json.loads(Path(args.json).read_text()).get("results", [])
                    if r.get("benchmark") not in names]
        except (OSError, ValueError):
            kept = []
    for name in names:
        module = importlib.import_module("bench_" + name)
        kwargs = {}
        if name == "footprint" and args.flood_seconds:
            kwargs["flood_seconds"] = args.flood_seconds
        started = time.monotonic()
        print("running %s%s ..." % (name, " (quick)" if args.quick else ""), flush=True)
        try:
            res = module.run(quick=args.quick, **kwargs)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failed.append(name)
            res = harness.result(name, args.quick, [], error="%s: %s" % (type(exc).__name__, exc),
                                 traceback=traceback.format_exc())
            print(res["traceback"], file=sys.stderr)
        res["wall_seconds"] = round(time.monotonic() - started, 1)
        results.append(res)
        print("\n".join(harness.table_lines(res)), flush=True)
        if res.get("error"):
            print("  ERROR: %s" % res["error"], flush=True)
        harness.write_results(kept + results, Path(args.json))
    print("results: %s" % args.json)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
