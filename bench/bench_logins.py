"""Login parsing: routerwatch vs fail2ban-regex (stock dropbear filter) on the same OpenWrt log.

    python bench/bench_logins.py [--quick] [--lines N] [--repeat R]

Two mixes, side by side in one run: a quiet router (3% of the lines are login lines) and one
under attack (half of them are), each generated with the same seed and read by both tools.

Speed: lines/s of `fail2ban-regex LOG filter.d/dropbear.conf`, of `routerwatch-agent check-log
LOG` (a process, like fail2ban-regex, printing one JSON line per event to /dev/null) and of
iter_login_attempts() in this process (the agent's own path, no start-up, no output).

Agreement: which failure lines each one finds, by category of the generator's ground truth
(bench/gen_openwrt_log.py), and whether the address each attributes is the true one. fail2ban's
stock filter knows only the upstream dropbear messages with an address after "from"; what it
cannot see is listed with the reason.
"""
import json
import resource
import statistics
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import harness
from gen_openwrt_log import AUTH_SHARE, FAILURE_CATEGORIES, SUCCESS_CATEGORIES, generate

# (name, share of login lines)
MIXES = (("quiet", AUTH_SHARE), ("attack", 0.5))

FAIL2BAN_REGEX = "/usr/bin/fail2ban-regex"
FAIL2BAN_FILTER = "/etc/fail2ban/filter.d/dropbear.conf"

# Why fail2ban's stock dropbear filter misses a category (shown beside the disagreement).
FAIL2BAN_REASONS = {
    "nonexistent_2022": "dropbear 2020.79-2024.85 logs 'Login attempt for nonexistent user' with "
                        "no address; only the Exit line of the same pid has it, and fail2ban "
                        "matches lines, not connections",
    "luci_failure": "the dropbear filter does not read uhttpd/LuCI lines (another jail would)",
    "max_tries": "its 'Exit before auth' regex wants the pre-2020 'from HOST' at the end of the "
                 "line; OpenWrt's dropbear writes 'from <HOST:PORT>' after 'auth'",
}


def fail2ban_available():
    return Path(FAIL2BAN_REGEX).exists() and Path(FAIL2BAN_FILTER).exists()


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_fail2ban(log):
    cpu = _children_cpu()
    seconds, proc = harness.run_timed([FAIL2BAN_REGEX, "--print-no-missed", "--print-no-ignored",
                                       str(log), FAIL2BAN_FILTER], stdout=subprocess.PIPE)
    cpu = _children_cpu() - cpu
    matched = None
    for line in proc.stdout.decode(errors="replace").splitlines():
        if line.startswith("Lines:"):
            # "Lines: 100000 lines, 0 ignored, 1456 matched, 98544 missed"
            matched = int(line.split(",")[2].split()[0])
    return seconds, {"matched": matched, "cpu_seconds": round(cpu, 3)}


def fail2ban_matches(log):
    """[(address, line text)] of every line fail2ban's filter matches."""
    proc = subprocess.run([FAIL2BAN_REGEX, "-o", "<ip>|<msg>", str(log), FAIL2BAN_FILTER],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    out = []
    for line in proc.stdout.decode("utf-8", errors="replace").splitlines():
        if "|" in line:
            ip, text = line.split("|", 1)
            out.append((ip, text))
    return out


def fail2ban_python():
    """The interpreter fail2ban-regex runs on (its #! line), or None."""
    try:
        with open(FAIL2BAN_REGEX, "rb") as handle:
            first = handle.readline().decode("utf-8", "replace")
    except OSError:
        return None
    words = first[2:].split() if first.startswith("#!") else []
    return words[0] if words and Path(words[0]).exists() else None


def check_log_command():
    """check-log runs on the interpreter fail2ban-regex runs on when that one can run it (the
    agent needs only the standard library for it), so that the ratio compares the two programs,
    not two builds of Python; from bytecode compiled beforehand, as an installed package (and
    fail2ban's) starts, even where PYTHONDONTWRITEBYTECODE is set."""
    python = fail2ban_python() or harness.python_exe()
    probe = subprocess.run([python, "-c", "import routerwatch.cli"], env=harness.subprocess_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if probe.returncode != 0:
        python = harness.python_exe()
    subprocess.run([python, "-m", "compileall", "-q", str(harness.REPO / "agent" / "routerwatch")],
                   stdout=subprocess.DEVNULL, check=False)
    return [python, "-m", "routerwatch.cli"]


def run_check_log(log, command):
    cpu = _children_cpu()
    seconds, proc = harness.run_timed(command + ["check-log", str(log)],
                                      stdout=subprocess.PIPE, env=harness.subprocess_env(),
                                      check=False)
    if proc.returncode not in (0, 1):
        raise RuntimeError("check-log exited %s: %s" % (proc.returncode, proc.stderr[-2000:]))
    cpu = _children_cpu() - cpu
    last = proc.stdout.rsplit(b"\n", 2)
    summary = {}
    for chunk in last:
        if chunk.startswith(b'{"summary"'):
            summary = json.loads(chunk)["summary"]
    summary["cpu_seconds"] = round(cpu, 3)
    return seconds, summary


def run_in_process(iter_login_attempts, log):
    def once():
        count = 0
        with open(log, "rb") as handle:
            start = harness.time.perf_counter()
            for _ in iter_login_attempts(handle):
                count += 1
            return harness.time.perf_counter() - start, {"events": count}
    return once


def routerwatch_events(log):
    """[(line number when yielded, LoginAttempt)]: the agent's line reader, fed one line at a
    time so that each event is tied to the line that completed it."""
    from routerwatch.sources.logread import LoginLines, reference_of
    reference = reference_of(Path(log).stat().st_mtime)
    lines = LoginLines()
    out = []
    number = 0
    with open(log, "rb") as raw:
        for number, line in enumerate(raw, 1):
            for attempt in lines.feed(line.rstrip(b"\n"), reference):
                out.append((number, attempt))
    out.extend((number, attempt) for attempt in lines.flush())
    return out


# --------------------------------------------------------------------------- agreement

def agreement(log, truth, f2b, rw):
    """Per category: lines expected, found by each, with the true address; plus disagreements."""
    by_line = {e["line"]: e for e in truth["entries"]}
    by_conn = defaultdict(list)
    for entry in truth["entries"]:
        by_conn[entry["conn"]].append(entry)
    expected = Counter(e["category"] for e in truth["entries"])
    rows = {c: {"expected": expected.get(c, 0), "fail2ban": 0, "fail2ban_true_address": 0,
                "routerwatch": 0, "routerwatch_true_address": 0}
            for c in FAILURE_CATEGORIES + SUCCESS_CATEGORIES + ("max_tries",)}
    extra = Counter()

    # fail2ban: matched text -> line number (texts repeat, so keep a queue per text)
    text_lines = defaultdict(list)
    with open(log, "r", encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, 1):
            if number in by_line:
                text_lines[text.rstrip("\n")].append(number)
    for ip, text in f2b:
        lines = text_lines.get(text)
        if not lines:
            extra["fail2ban:unknown_line"] += 1
            continue
        entry = by_line[lines.pop(0)]
        row = rows.setdefault(entry["category"], {"expected": 0, "fail2ban": 0,
                                                  "fail2ban_true_address": 0, "routerwatch": 0,
                                                  "routerwatch_true_address": 0})
        row["fail2ban"] += 1
        row["fail2ban_true_address"] += ip == entry["ip"]

    # routerwatch: the line being read when the event came out; a 2022.x nonexistent-user
    # attempt may come out at its connection's Exit line, once the address is known
    for line, attempt in rw:
        entry = by_line.get(line)
        if entry is None:
            extra["routerwatch:event_on_unlabelled_line"] += 1
            continue
        category = entry["category"]
        if category in ("exit_other", "max_tries") and attempt.outcome == "failure":
            late = [e for e in by_conn[entry["conn"]] if e["category"] == "nonexistent_2022"]
            if late and category == "exit_other":
                category = "nonexistent_2022"
        row = rows.setdefault(category, {"expected": 0, "fail2ban": 0, "fail2ban_true_address": 0,
                                         "routerwatch": 0, "routerwatch_true_address": 0})
        row["routerwatch"] += 1
        row["routerwatch_true_address"] += attempt.source_ip == entry["ip"]

    disagreements = []
    for category, row in rows.items():
        # successes are not fail2ban's business; exits are not failures
        if category not in FAILURE_CATEGORIES + ("max_tries",) or not row["expected"]:
            continue
        if row["fail2ban"] != row["routerwatch"] or \
                row["fail2ban_true_address"] != row["routerwatch_true_address"]:
            disagreements.append({
                "category": category, "expected": row["expected"],
                "fail2ban": row["fail2ban"], "routerwatch": row["routerwatch"],
                "fail2ban_true_address": row["fail2ban_true_address"],
                "routerwatch_true_address": row["routerwatch_true_address"],
                "why": FAIL2BAN_REASONS.get(category, "")})
    failures_expected = sum(rows[c]["expected"] for c in FAILURE_CATEGORIES)
    return {"by_category": rows, "disagreements": disagreements, "unexplained": dict(extra),
            "failure_lines_expected": failures_expected,
            "failure_lines_fail2ban": sum(rows[c]["fail2ban"] for c in FAILURE_CATEGORIES),
            "failure_lines_routerwatch": sum(rows[c]["routerwatch"] for c in FAILURE_CATEGORIES),
            "failures_with_true_address_fail2ban":
                sum(rows[c]["fail2ban_true_address"] for c in FAILURE_CATEGORIES),
            "failures_with_true_address_routerwatch":
                sum(rows[c]["routerwatch_true_address"] for c in FAILURE_CATEGORIES)}


# --------------------------------------------------------------------------- run

def run(quick=False, workdir=None, lines=None, repeat=None, seed=1):
    lines = lines or (100_000 if quick else 1_000_000)
    repeat = repeat or (3 if quick else 5)
    rows, notes, agreements = [], [], {}
    with harness.Workdir(workdir) as work:
        iter_login_attempts, why = harness.optional_import("routerwatch.sources.logread",
                                                           "iter_login_attempts")
        if not fail2ban_available():
            rows.append(harness.skipped("logins", "fail2ban-regex or its dropbear filter missing"))
            return harness.result("logins", quick, rows, notes)
        command = check_log_command()
        notes.append("check-log runs as `%s -m routerwatch.cli check-log LOG`, from bytecode "
                     "compiled beforehand; fail2ban-regex as installed (%s)"
                     % (command[0], fail2ban_python() or "its own interpreter"))
        for mix, share in MIXES:
            log = Path(work) / ("openwrt-%s-%d.log" % (mix, lines))
            truth = generate(log, lines=lines, seed=seed, auth_share=share)
            label = "logins, %s (%d%% login lines)" % (mix, round(share * 100))
            notes.append("%s input: %d lines (%.1f MB), seed %d, login lines %s"
                         % (mix, lines, log.stat().st_size / 1e6, seed,
                            json.dumps(truth["counts"], sort_keys=True)))
            if iter_login_attempts is None:
                times, _ = harness.interleaved({"fail2ban": lambda: run_fail2ban(log)}, repeat)
                rows.append(harness.skipped(label + ": routerwatch", why,
                                            reference=harness.summarize(times["fail2ban"]),
                                            reference_rate=harness.rate(
                                                lines, harness.summarize(times["fail2ban"]),
                                                "lines/s")))
                continue
            rows.extend(_speed_rows(label, log, lines, repeat, iter_login_attempts, command))
            agree = agreement(log, truth, fail2ban_matches(log),
                              routerwatch_events(log))
            agreements[mix] = agree
            rows.append({"case": label + ": failures found (lines)",
                         "expected": agree["failure_lines_expected"],
                         "fail2ban": agree["failure_lines_fail2ban"],
                         "routerwatch": agree["failure_lines_routerwatch"],
                         "fail2ban_true_address": agree["failures_with_true_address_fail2ban"],
                         "routerwatch_true_address":
                             agree["failures_with_true_address_routerwatch"]})
        notes.append("fail2ban-regex is a separate process (start-up included, like check-log); "
                     "in-process has neither start-up nor output; cpu_seconds is each "
                     "process's user+system time (steadier than wall time on a busy machine)")
    return harness.result("logins", quick, rows, notes, agreement=agreements.get("quiet"),
                          agreements=agreements)


def _speed_rows(label, log, lines, repeat, iter_login_attempts, command):
    cpu = {"fail2ban": [], "check-log": []}

    def timed(name, run):
        def once():
            seconds, extra = run()
            cpu[name].append(extra["cpu_seconds"])
            return seconds, extra
        return once

    times, extras = harness.interleaved({
        "fail2ban": timed("fail2ban", lambda: run_fail2ban(log)),
        "check-log": timed("check-log", lambda: run_check_log(log, command)),
        "in-process": run_in_process(iter_login_attempts, log),
    }, repeat)
    # CPU seconds: the median of the rounds, and the median of the per-round ratios
    f2b_cpu = round(statistics.median(cpu["fail2ban"]), 3)
    rw_cpu = round(statistics.median(cpu["check-log"]), 3)
    cpu_ratios = [rw / f2b for rw, f2b in zip(cpu["check-log"], cpu["fail2ban"]) if f2b]
    return [
        harness.comparison(
            label + ": check-log (process)", "fail2ban-regex", times["fail2ban"],
            times["check-log"], harness.ratios(times, "check-log", "fail2ban"),
            amount=lines, amount_unit="lines/s", routerwatch_events=extras.get("check-log"),
            fail2ban_matched=extras.get("fail2ban", {}).get("matched"),
            cpu_seconds={"fail2ban": f2b_cpu, "check-log": rw_cpu,
                         "ratio": round(statistics.median(cpu_ratios), 3)
                         if cpu_ratios else None,
                         "ratio_range": [round(min(cpu_ratios), 3), round(max(cpu_ratios), 3)]
                         if cpu_ratios else None,
                         "fail2ban_per_check_log": round(1 / statistics.median(
                             cpu_ratios), 2) if cpu_ratios else None}),
        harness.comparison(
            label + ": iter_login_attempts (in-process)", "fail2ban-regex", times["fail2ban"],
            times["in-process"], harness.ratios(times, "in-process", "fail2ban"),
            amount=lines, amount_unit="lines/s", routerwatch_events=extras.get("in-process")),
    ]


if __name__ == "__main__":
    raise SystemExit(harness.main(run, __doc__.split("\n\n")[0],
                                  lambda p: p.add_argument("--lines", type=int)))
