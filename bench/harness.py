"""What every benchmark shares: machine description, repeated paired timing, statistics, results.

Rules the benchmarks follow (BENCHMARKS.md says them to readers too):
  - the reference tool and routerwatch run on the same input, in the same run, interleaved
    (ref, rw, ref, rw ...), so a noisy neighbour hurts both alike; the headline is the ratio;
  - every figure is the median of several runs with its spread (min-max), never one sample;
  - nothing here asserts speed: a result is well-formed or not, fast or slow is for people.

A benchmark module exposes run(quick=False, workdir=None, **sizes) -> dict (a "result") and is
runnable alone through main(run, description).
"""
import argparse
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
RESULTS_FILE = BUILD / "bench-results.json"

for _path in (REPO / "agent", REPO / "collector", REPO / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


# --------------------------------------------------------------------------- machine

def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


# --------------------------------------------------------------------------- statistics

def summarize(values, unit="s"):
    """Median and spread of repeated measurements (min-max always; IQR from 4 samples on)."""
    values = sorted(float(v) for v in values)
    out = {"median": statistics.median(values), "min": values[0], "max": values[-1],
           "n": len(values), "unit": unit}
    if len(values) >= 4:
        q = statistics.quantiles(values, n=4)
        out["q1"], out["q3"] = q[0], q[2]
    return out


def percentiles(values, points=(50, 95, 99)):
    """Nearest-rank percentiles of a list of numbers."""
    values = sorted(values)
    out = {}
    for p in points:
        if not values:
            out["p%d" % p] = None
            continue
        rank = max(1, int(round(p / 100.0 * len(values) + 0.4999)))
        out["p%d" % p] = values[min(rank, len(values)) - 1]
    return out


def rate(amount, seconds_summary, unit):
    """Turn a time summary into a throughput summary (median rate = amount / median time)."""
    return {"median": amount / seconds_summary["median"] if seconds_summary["median"] else None,
            "min": amount / seconds_summary["max"] if seconds_summary["max"] else None,
            "max": amount / seconds_summary["min"] if seconds_summary["min"] else None,
            "n": seconds_summary["n"], "unit": unit}


def interleaved(contenders, repeat, before_each=None):
    """Run each of {name: fn} once per round, `repeat` rounds, rotating who goes first so caches
    and CPU boost favour none. fn returns seconds (or (seconds, extra)). Returns
    ({name: [seconds per round]}, {name: last extra})."""
    names = list(contenders)
    times = {name: [] for name in names}
    extras = {}
    for round_no in range(repeat):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            if before_each is not None:
                before_each()
            value = contenders[name]()
            if isinstance(value, tuple):
                value, extras[name] = value
            times[name].append(value)
    return times, extras


def ratios(times, numerator, denominator):
    """Per-round time ratios numerator/denominator (same round, so the noise mostly cancels)."""
    return [a / b if b else None for a, b in zip(times[numerator], times[denominator])]


def run_timed(argv, stdout=subprocess.DEVNULL, check=True, **kwargs):
    """Run a command; (seconds, CompletedProcess). stdout is discarded unless asked for."""
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, **kwargs)
    seconds = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise RuntimeError("%s exited %s: %s" % (" ".join(map(str, argv)), proc.returncode,
                                                 proc.stderr.decode(errors="replace")[-2000:]))
    return seconds, proc


# --------------------------------------------------------------------------- environment

def drop_page_cache():
    """Drop the page cache (root only). True if it was dropped, False if the runs stay warm."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return True
    except OSError:
        return False


def optional_import(module, attr=None):
    """(object, None) or (None, reason) for a routerwatch part that may not have landed yet."""
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # ImportError, or a half-written module that fails to import
        return None, "%s not importable: %s: %s" % (module, type(exc).__name__, exc)
    if attr is None:
        return mod, None
    obj = getattr(mod, attr, None)
    if obj is None:
        return None, "%s has no %s" % (module, attr)
    return obj, None


def python_exe():
    """The interpreter running the benchmarks (the venv's), for subprocesses of routerwatch."""
    return sys.executable


def agent_command():
    """argv prefix that runs routerwatch-agent from this checkout."""
    return [python_exe(), "-m", "routerwatch.cli"]


def subprocess_env():
    env = dict(os.environ)
    paths = [str(REPO / "agent"), str(REPO / "collector")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


class Workdir:
    """A scratch directory: the given one (kept), or a temporary one removed afterwards."""

    def __init__(self, path=None, prefix="routerwatch-bench-"):
        self.given = path is not None
        self.path = Path(path) if path else Path(tempfile.mkdtemp(prefix=prefix))
        self.path.mkdir(parents=True, exist_ok=True)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        if not self.given:
            shutil.rmtree(self.path, ignore_errors=True)


# --------------------------------------------------------------------------- results

def comparison(case, reference_name, ref_times, rw_times, ratios, amount=None, amount_unit=None,
               **extra):
    """One row: a case measured for both sides. Times in seconds; rates if amount is given."""
    row = {"case": case, "reference_tool": reference_name,
           "reference": summarize(ref_times), "routerwatch": summarize(rw_times)}
    clean = [r for r in ratios if r is not None]
    if clean:
        row["ratio"] = summarize(clean, unit="x")
        row["ratio"]["meaning"] = "routerwatch time / reference time (>1: routerwatch slower)"
    if amount is not None:
        row["amount"] = amount
        row["reference_rate"] = rate(amount, row["reference"], amount_unit)
        row["routerwatch_rate"] = rate(amount, row["routerwatch"], amount_unit)
    row.update(extra)
    return row


def skipped(case, reason, **extra):
    row = {"case": case, "skipped": reason}
    row.update(extra)
    return row


def result(name, quick, rows, notes=(), **extra):
    out = {"benchmark": name, "quick": bool(quick), "machine": machine_info(),
           "rows": list(rows), "notes": list(notes)}
    out.update(extra)
    return out


def _fmt(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return "%.0f" % value
        return ("%%.%dg" % digits) % value
    return str(value)


def _spread(summary):
    if summary is None:
        return "-"
    if "p50" in summary:
        return "p50 %s p95 %s p99 %s" % (_fmt(summary["p50"]), _fmt(summary["p95"]),
                                         _fmt(summary["p99"]))
    return "%s [%s-%s]" % (_fmt(summary["median"]), _fmt(summary["min"]), _fmt(summary["max"]))


def table_lines(res):
    """Human table of one result: case, reference, routerwatch, ratio (median [min-max])."""
    lines = ["== %s%s" % (res["benchmark"], " (quick)" if res.get("quick") else "")]
    for row in res["rows"]:
        ref = row.get("reference_rate") or row.get("reference")
        rw = row.get("routerwatch_rate") or row.get("routerwatch")
        if "skipped" in row:
            lines.append("  %-44s skipped: %s" % (row["case"], row["skipped"]))
            if ref:
                lines.append("  %-44s %s alone: %s %s" % ("", row.get("reference_tool", "ref"),
                                                          _spread(ref), ref.get("unit", "")))
            continue
        if isinstance(ref, dict) and isinstance(rw, dict):
            ratio = row.get("ratio")
            lines.append("  %s" % row["case"])
            lines.append("      %-26s %s %s" % (row.get("reference_tool", "reference")[:26],
                                                _spread(ref), ref.get("unit", "")))
            lines.append("      %-26s %s %s" % ("routerwatch", _spread(rw), rw.get("unit", "")))
            if ratio:
                lines.append("      %-26s %s" % ("ratio rw/ref time", _spread(ratio)))
            for key in ("ratio_p50", "ratio_p99"):
                if key in row:
                    lines.append("      %-26s %s" % (key.replace("_", " ") + " (rw/ref)",
                                                     _fmt(row[key])))
        elif isinstance(row.get("RssAnon"), dict):      # a memory series (footprint flood)
            lines.append("  %s" % row["case"])
            for field in ("RssAnon", "RssFile"):
                m = row[field]
                if m.get("slope_kb_per_min") is None:     # too short a run to show a trend
                    trend = "no slope (a %s s flood is too short for one)" % row["seconds"]
                else:
                    trend = "slope %s kB/min (second half %s)" % (
                        m["slope_kb_per_min"], "n/a" if m.get("slope_last_half_kb_per_min")
                        is None else m["slope_last_half_kb_per_min"])
                lines.append("      %-8s %s -> %s kB (peak %s), after warm-up %+d kB, %s" % (
                    field, m["start"], m["end"], m["peak"], m["growth_after_warmup"], trend))
            lines.append("      %d lines in %s s (%s lines/s), agent CPU %s%%" % (
                row["lines_written"], row["seconds"], row["rate_achieved"],
                row.get("agent_cpu_percent")))
            heap = row.get("heap")
            if heap:       # bench_footprint --trace
                lines.append("      traced Python heap: %s" % (heap.get("error") or ", ".join(
                    "%s kB at %s" % (kb, at) for at, kb in heap["traced_heap_kB"].items())))
                for site in heap.get("grew_most", ()):
                    lines.append("        %+9.1f kB %+6d blocks  %s" % (site["kB"], site["blocks"],
                                                                     site["where"]))
        else:
            shown = {k: v for k, v in row.items() if k not in ("case", "series_RssAnon")}
            lines.append("  %-44s %s" % (row["case"], json.dumps(shown, default=str)[:200]))
    for note in res.get("notes", ()):
        lines.append("  note: %s" % note)
    return lines


def write_results(results, path=RESULTS_FILE):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine_info(), "results": results}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    os.replace(tmp, path)
    return path


def main(run, description, extra_args=None):
    """Command line of a single benchmark: --quick, --workdir, --json, plus its own sizes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, a few repeats")
    parser.add_argument("--workdir", help="keep inputs and outputs here (default: a temp dir)")
    parser.add_argument("--json", help="also write the result to this JSON file")
    parser.add_argument("--repeat", type=int, help="override the number of repeats")
    if extra_args:
        extra_args(parser)
    args = parser.parse_args()
    kwargs = {k: v for k, v in vars(args).items()
              if k not in ("quick", "workdir", "json") and v is not None}
    res = run(quick=args.quick, workdir=args.workdir, **kwargs)
    print("\n".join(table_lines(res)))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    return 0
