"""Integrity hashing: routerwatch's IntegritySource vs `sha256sum` over the same files.

    python bench/bench_integrity.py [--quick] [--files 2000] [--megabytes 40] [--repeat R]

The tree (bench/gen_rootfs.py: a rootfs-like size distribution) is put where the integrity
source walks on a router: the overlay's upper layer (<root>/overlay/upper, with an empty
<root>/rom), so every file is a new file the source must hash — the worst case; a healthy
router's upper layer holds a few dozen files.

Cases
  cold        fresh source (empty hash cache) vs `find upper -type f -print0 | xargs -0 sha256sum`
              (and `... | xargs -0 openssl dgst -sha256`: the same OpenSSL hash code as hashlib),
              the page cache dropped before each run when we may (root), else said to be warm
  warm        the same with the files in the page cache (what hashing itself costs)
  re-scan     the same source object scans again after 10 files changed (new content, same
              size, new mtime): only they are read again; compared with its own cold scan and
              with sha256sum of everything (what a tool without a cache has to do)
  flood       `routerwatch-agent --once` on the clean router tree with --flood-files empty junk
              files (default 200,000) in its overlay and a replaced /usr/sbin/dropbear
              (tests/fixtures/junk_flood.py): wall time and peak RSS (wait4) beside
              `find | xargs sha256sum` over the same overlay, and whether dropbear and the
              flood were reported
"""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import harness
import procmem
from gen_rootfs import change_files, generate


def make_root(work, files, megabytes, seed=1):
    root = Path(work) / "router"
    upper = root / "overlay" / "upper"
    (root / "rom").mkdir(parents=True, exist_ok=True)
    (root / "etc").mkdir(exist_ok=True)
    info = generate(upper, files, megabytes, seed)
    return root, upper, info


def sha256sum_all(upper):
    def once():
        seconds, _ = harness.run_timed(["sh", "-c", "find . -type f -print0 | xargs -0 sha256sum"],
                                       cwd=str(upper))
        return seconds
    return once


def openssl_all(upper):
    """Same files through OpenSSL's SHA-256 (what Python's hashlib uses): the same hash code as
    routerwatch, so the difference is the walking and the bookkeeping."""
    def once():
        seconds, _ = harness.run_timed(
            ["sh", "-c", "find . -type f -print0 | xargs -0 openssl dgst -sha256"],
            cwd=str(upper))
        return seconds
    return once


def new_source(root, state):
    from routerwatch.config import load
    from routerwatch.sources.overlay import IntegritySource
    config = load(overrides=["state_dir=%s" % state, "run_dir=%s" % state,
                             "integrity.max_files=100000"], defaults={"root": str(root)})
    return IntegritySource(config)


def full_scan(source, now):
    """Poll until the scan is complete (the CPU budget splits it into several polls)."""
    events = list(source.poll(now))
    while source.scanning:
        events.extend(source.poll(now))
    return events


def flood_rows(work, flood_files, repeat, max_files=None):
    """The flood case: one row of time and one of peak memory, routerwatch beside the reference."""
    sys.path.insert(0, str(harness.REPO / "tests"))
    from fixtures.build_tree import build_tree
    from fixtures.junk_flood import flood, replace_dropbear
    tree = build_tree("router-clean", Path(work) / "flooded")
    upper = tree / "overlay" / "upper"
    flood(upper, flood_files)
    replace_dropbear(upper)
    state = Path(work) / "flood-state"
    peaks = {"routerwatch": [], "reference": []}
    outcome = {}

    def routerwatch():
        shutil.rmtree(state, ignore_errors=True)
        out_path = Path(work) / "flood.out"
        with open(out_path, "wb") as out:
            code, peak_kb, seconds = procmem.run_with_peak_rss(
                harness.agent_command() + ["--root", tree, "--once", "--log-file",
                                           tree / "var/log/messages",
                                           "--set", "state_dir=%s" % state]
                + (["--set", "integrity.max_files=%d" % max_files] if max_files else []),
                stdout=out, stderr=subprocess.DEVNULL, env=harness.subprocess_env())
        kinds = {}
        for line in out_path.read_text().splitlines():
            anomaly = json.loads(line)
            kinds.setdefault(anomaly["kind"], []).append(anomaly["evidence"].get("path"))
        outcome.update(exit_code=code,
                       dropbear_reported="/usr/sbin/dropbear" in kinds.get(
                           "integrity.rom_shadowed", []),
                       flood_reported_at=kinds.get("integrity.file_flood"))
        peaks["routerwatch"].append(peak_kb / 1024.0)
        return seconds

    def reference():
        code, peak_kb, seconds = procmem.run_with_peak_rss(
            ["sh", "-c", "find . -type f -print0 | xargs -0 sha256sum >/dev/null"],
            cwd=str(upper))
        peaks["reference"].append(peak_kb / 1024.0)
        return seconds

    times, _ = harness.interleaved({"reference": reference, "routerwatch": routerwatch}, repeat)
    case = "integrity: --once, %d junk files + replaced dropbear" % flood_files
    if max_files:
        case += ", max_files %d" % max_files
    rows = [harness.comparison(case + " (time)", "find | xargs sha256sum", times["reference"],
                               times["routerwatch"], harness.ratios(times, "routerwatch",
                                                                    "reference"), **outcome)]
    rows.append(harness.comparison(
        case + " (peak RSS, MB)", "find | xargs sha256sum (largest process)",
        peaks["reference"], peaks["routerwatch"],
        [a / b for a, b in zip(peaks["routerwatch"], peaks["reference"])],
        unit="MB", limit_mb=64))
    rows[-1]["reference"]["unit"] = rows[-1]["routerwatch"]["unit"] = "MB"
    return rows


def run(quick=False, workdir=None, files=None, megabytes=None, repeat=None, drop_cache=True,
        changed=10, flood_files=None, flood_max_files=None):
    files = files or (400 if quick else 2000)
    megabytes = megabytes or (8.0 if quick else 40.0)
    repeat = repeat or (3 if quick else 5)
    rows, notes = [], []
    with harness.Workdir(workdir) as work:
        root, upper, info = make_root(work, files, megabytes)
        amount_mb = info["bytes"] / 1e6
        notes.append("tree: %d files, %.1f MB, median file %d B, %d under 4 KiB, %d over 1 MiB"
                     % (files, amount_mb, info["median_file_bytes"], info["under_4k"],
                        info["over_1m"]))
        cold_dropped = drop_cache and harness.drop_page_cache()
        notes.append("cold runs: page cache %s" % (
            "dropped before each run (echo 3 > /proc/sys/vm/drop_caches)" if cold_dropped
            else "NOT dropped (not root, or asked not to): 'cold' is warm-cache"))
        source_cls, why = harness.optional_import("routerwatch.sources.overlay",
                                                  "IntegritySource")
        reference = sha256sum_all(upper)
        if source_cls is None:
            times, _ = harness.interleaved({"sha256sum": reference}, repeat)
            summary = harness.summarize(times["sha256sum"])
            rows.append(harness.skipped("integrity: cold", why, reference=summary,
                                        reference_rate=harness.rate(amount_mb, summary, "MB/s")))
            return harness.result("integrity", quick, rows, notes)

        state = Path(work) / "state"
        state.mkdir(exist_ok=True)
        hashed = {}

        def routerwatch_cold():
            source = new_source(root, state)
            start = time.perf_counter()
            full_scan(source, 1_000_000.0)
            seconds = time.perf_counter() - start
            hashed["files"], hashed["bytes"] = source.hashes, source.bytes_hashed
            return seconds

        before = harness.drop_page_cache if cold_dropped else None
        contenders = {"sha256sum": reference, "routerwatch": routerwatch_cold}
        if shutil.which("openssl"):
            contenders["openssl"] = openssl_all(upper)
        times, _ = harness.interleaved(contenders, repeat, before_each=before)
        cold_name = "integrity: cold scan" + ("" if cold_dropped else " (warm cache)")
        rows.append(harness.comparison(
            cold_name, "sha256sum", times["sha256sum"], times["routerwatch"],
            harness.ratios(times, "routerwatch", "sha256sum"),
            amount=round(amount_mb, 2), amount_unit="MB/s", routerwatch_hashed=dict(hashed)))
        if "openssl" in times:
            rows.append(harness.comparison(
                cold_name, "openssl dgst -sha256", times["openssl"], times["routerwatch"],
                harness.ratios(times, "routerwatch", "openssl"),
                amount=round(amount_mb, 2), amount_unit="MB/s"))
        cold_rw = harness.summarize(times["routerwatch"])

        if cold_dropped:
            times, _ = harness.interleaved(contenders, repeat)
            for name, tool in (("sha256sum", "sha256sum"), ("openssl", "openssl dgst -sha256")):
                if name in times:
                    rows.append(harness.comparison(
                        "integrity: warm scan (page cache)", tool, times[name],
                        times["routerwatch"], harness.ratios(times, "routerwatch", name),
                        amount=round(amount_mb, 2), amount_unit="MB/s"))

        # re-scan: one source, a full scan first, then `changed` files change before each re-scan
        source = new_source(root, state)
        now = 1_000_000.0
        full_scan(source, now)
        rescan_times, reference_times, rehashed = [], [], []
        for round_no in range(repeat):
            change_files(upper, changed, seed=100 + round_no)
            now += source.config.intervals.integrity + 1
            hashes_before = source.hashes
            start = time.perf_counter()
            full_scan(source, now)
            rescan_times.append(time.perf_counter() - start)
            rehashed.append(source.hashes - hashes_before)
            reference_times.append(reference())
        rescan = harness.summarize(rescan_times)
        rows.append(harness.comparison(
            "integrity: re-scan after %d files changed" % changed, "sha256sum (all files)",
            reference_times, rescan_times,
            [a / b for a, b in zip(rescan_times, reference_times)],
            files_rehashed=harness.summarize(rehashed, unit="files"),
            rescan_vs_own_cold_scan=rescan["median"] / cold_rw["median"]))
        rows.extend(flood_rows(work, flood_files or (20000 if quick else 200000),
                               1 if quick else 3,
                               flood_max_files or (5000 if quick else None)))
    return harness.result("integrity", quick, rows, notes)


def _args(parser):
    parser.add_argument("--flood-files", type=int)
    parser.add_argument("--flood-max-files", type=int, help="integrity.max_files for the flood "
                        "case (default: the agent's, 50,000; 5,000 with --quick)")
    parser.add_argument("--files", type=int)
    parser.add_argument("--megabytes", type=float)
    parser.add_argument("--no-drop-cache", dest="drop_cache", action="store_false", default=None)


if __name__ == "__main__":
    raise SystemExit(harness.main(run, __doc__.split("\n\n")[0], _args))
