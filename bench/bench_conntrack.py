"""Conntrack: read, classify and run the conn.* detectors on a snapshot of 1k, 16k and 64k
entries, against the floor of reading the file at all (`cat FILE > /dev/null`).

    python bench/bench_conntrack.py [--quick] [--sizes 1024,16384,65536] [--repeat R]

Tables come from bench/gen_conntrack.py (a busy home router: the router's own few entries, the
rest forwarded LAN traffic, LAN DNS to the router; kernel format, documentation addresses), plus
a Mirai-style scan and a fan-out by the router itself so the detectors have something to judge.
routerwatch's round is one ConntrackSource.poll() and every conn.* detector that consumes the
snapshot (observe, then tick), as the runtime does each connections interval. Python's own
`for line in file` is shown beside `cat` as a second floor: what any Python reader pays.
"""
import importlib
import pkgutil
import time
from pathlib import Path

import harness


def conn_detectors():
    """Every conn.* detector that consumes ConntrackSnapshot, with its default config."""
    import routerwatch.detectors as package
    from routerwatch.events import ConntrackSnapshot
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("conn_"):
            continue
        module = importlib.import_module("routerwatch.detectors." + info.name)
        cls = getattr(module, "DETECTOR", None)
        if cls is not None and ConntrackSnapshot in cls.consumes:
            found.append(cls)
    return found


def make_table(root, size, seed=0):
    from gen_conntrack import fanout_lines, healthy_lines, mirai_scan_lines, write_tree
    attack = mirai_scan_lines(40) + fanout_lines(60)
    lines = healthy_lines(max(size - len(attack), 1), seed) + attack
    write_tree(str(root), lines[:size], max_entries=max(65536, size * 2))
    return Path(root) / "proc" / "net" / "nf_conntrack"


def run(quick=False, workdir=None, sizes=None, repeat=None):
    if isinstance(sizes, str):
        sizes = [int(s) for s in sizes.split(",") if s]
    sizes = sizes or ([1024, 16384] if quick else [1024, 16384, 65536])
    repeat = repeat or (5 if quick else 9)
    rows, notes = [], []
    source_cls, why = harness.optional_import("routerwatch.sources.conntrack", "ConntrackSource")
    gen, why_gen = harness.optional_import("gen_conntrack", "healthy_lines")
    if why_gen:
        return harness.result("conntrack", quick, [harness.skipped("conntrack", why_gen)], notes)
    with harness.Workdir(workdir) as work:
        for size in sizes:
            root = Path(work) / ("router-%d" % size)
            table = make_table(root, size)

            def cat():
                seconds, _ = harness.run_timed(["cat", str(table)])
                return seconds

            def python_lines():
                start = time.perf_counter()
                with open(table, "r", encoding="ascii", errors="replace") as handle:
                    for _ in handle:
                        pass
                return time.perf_counter() - start

            case = "conntrack: %d entries" % size
            if source_cls is None:
                times, _ = harness.interleaved({"cat": cat}, repeat)
                rows.append(harness.skipped(case, why, reference=harness.summarize(times["cat"])))
                continue
            from routerwatch.config import load
            config = load(defaults={"root": str(root)})
            source = source_cls(config)
            detectors = [cls(cls.Config()) for cls in conn_detectors()]
            clock = {"now": 1_000_000.0}
            info = {}

            def routerwatch_round():
                clock["now"] += config.intervals.connections
                now = clock["now"]
                start = time.perf_counter()
                snapshot = source.poll(now)[0]
                findings = 0
                for detector in detectors:
                    findings += len(detector.observe(snapshot) or ())
                    findings += len(detector.tick(now) or ())
                seconds = time.perf_counter() - start
                info.update(entries=snapshot.entries, kept_flows=len(snapshot.flows),
                            forwarded=snapshot.forwarded, unparsed=snapshot.unparsed)
                info["findings_all_rounds"] = info.get("findings_all_rounds", 0) + findings
                return seconds

            times, _ = harness.interleaved({"cat": cat, "python": python_lines,
                                            "routerwatch": routerwatch_round}, repeat)
            row = harness.comparison(case, "cat > /dev/null", times["cat"], times["routerwatch"],
                                     harness.ratios(times, "routerwatch", "cat"),
                                     amount=size, amount_unit="entries/s",
                                     python_read_lines=harness.summarize(times["python"]),
                                     detectors=[d.kind for d in detectors], snapshot=dict(info))
            row["per_entry_us"] = {
                "routerwatch": row["routerwatch"]["median"] / size * 1e6,
                "cat": row["reference"]["median"] / size * 1e6,
                "python_read_lines": row["python_read_lines"]["median"] / size * 1e6}
            rows.append(row)
        measured = [r for r in rows if "per_entry_us" in r]
        if len(measured) >= 2:
            small, large = measured[0], measured[-1]
            growth = large["routerwatch"]["median"] / small["routerwatch"]["median"]
            notes.append("routerwatch time grows %.1fx for %.0fx the entries (%.2f -> %.2f "
                         "us/entry): %s" % (
                             growth, large["amount"] / small["amount"],
                             small["per_entry_us"]["routerwatch"],
                             large["per_entry_us"]["routerwatch"],
                             "linear" if growth <= 1.3 * large["amount"] / small["amount"]
                             else "worse than linear"))
        notes.append("cat includes starting a process (~1 ms), which dominates at 1k entries")
    return harness.result("conntrack", quick, rows, notes)


if __name__ == "__main__":
    raise SystemExit(harness.main(run, __doc__.split("\n\n")[0],
                                  lambda p: p.add_argument("--sizes")))
