"""Login parsing: routerwatch vs fail2ban-regex (stock dropbear filter) on the same OpenWrt log.

    python bench/bench_logins.py [--quick] [--lines N] [--repeat R]

Speed: lines/s of `fail2ban-regex LOG filter.d/dropbear.conf`, of `routerwatch-agent check-log
LOG` (a process, like fail2ban-regex, printing one JSON line per event to /dev/null) and of
iter_login_attempts() in this process (the agent's own path, no start-up, no output).

Agreement: which failure lines each one finds, by category of the generator's ground truth
(bench/gen_openwrt_log.py), and whether the address each attributes is the true one. fail2ban's
stock filter knows only the upstream dropbear messages with an address after "from"; what it
cannot see is listed with the reason.
"""
import json
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import harness
from gen_openwrt_log import FAILURE_CATEGORIES, SUCCESS_CATEGORIES, generate

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


class CountingLines:
    """A binary line reader that remembers how many lines were handed out, so an event yielded
    by a lazy parser can be tied to the line it came from."""

    def __init__(self, handle):
        self.handle = handle
        self.count = 0

    def __iter__(self):
        return self

    def __next__(self):
        line = self.handle.readline()
        if not line:
            raise StopIteration
        self.count += 1
        return line

    def readline(self, *args):
        line = self.handle.readline(*args)
        if line:
            self.count += 1
        return line

    def close(self):
        self.handle.close()


def fail2ban_available():
    return Path(FAIL2BAN_REGEX).exists() and Path(FAIL2BAN_FILTER).exists()


def run_fail2ban(log):
    seconds, proc = harness.run_timed([FAIL2BAN_REGEX, "--print-no-missed", "--print-no-ignored",
                                       str(log), FAIL2BAN_FILTER], stdout=subprocess.PIPE)
    matched = None
    for line in proc.stdout.decode(errors="replace").splitlines():
        if line.startswith("Lines:"):
            # "Lines: 100000 lines, 0 ignored, 1456 matched, 98544 missed"
            matched = int(line.split(",")[2].split()[0])
    return seconds, {"matched": matched}


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


def run_check_log(log):
    seconds, proc = harness.run_timed(harness.agent_command() + ["check-log", str(log)],
                                      stdout=subprocess.PIPE, env=harness.subprocess_env(),
                                      check=False)
    if proc.returncode not in (0, 1):
        raise RuntimeError("check-log exited %s: %s" % (proc.returncode, proc.stderr[-2000:]))
    last = proc.stdout.rsplit(b"\n", 2)
    summary = {}
    for chunk in last:
        if chunk.startswith(b'{"summary"'):
            summary = json.loads(chunk)["summary"]
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


def routerwatch_events(iter_login_attempts, log):
    """[(line number when yielded, LoginAttempt)]."""
    out = []
    with open(log, "rb") as raw:
        reader = CountingLines(raw)
        for attempt in iter_login_attempts(reader):
            out.append((reader.count, attempt))
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
    rows, notes = [], []
    with harness.Workdir(workdir) as work:
        log = Path(work) / ("openwrt-%d.log" % lines)
        truth = generate(log, lines=lines, seed=seed)
        size_mb = log.stat().st_size / 1e6
        notes.append("input: %d lines (%.1f MB), seed %d, login lines %s"
                     % (lines, size_mb, seed, json.dumps(truth["counts"], sort_keys=True)))
        iter_login_attempts, why = harness.optional_import("routerwatch.sources.logread",
                                                           "iter_login_attempts")
        if not fail2ban_available():
            rows.append(harness.skipped("logins", "fail2ban-regex or its dropbear filter missing"))
            return harness.result("logins", quick, rows, notes)
        if iter_login_attempts is None:
            times, _ = harness.interleaved({"fail2ban": lambda: run_fail2ban(log)}, repeat)
            rows.append(harness.skipped("logins: routerwatch", why,
                                        reference=harness.summarize(times["fail2ban"]),
                                        reference_rate=harness.rate(
                                            lines, harness.summarize(times["fail2ban"]),
                                            "lines/s")))
            return harness.result("logins", quick, rows, notes)

        times, extras = harness.interleaved({
            "fail2ban": lambda: run_fail2ban(log),
            "check-log": lambda: run_check_log(log),
            "in-process": run_in_process(iter_login_attempts, log),
        }, repeat)
        rows.append(harness.comparison(
            "logins: check-log (process)", "fail2ban-regex", times["fail2ban"],
            times["check-log"], harness.ratios(times, "check-log", "fail2ban"),
            amount=lines, amount_unit="lines/s", routerwatch_events=extras.get("check-log"),
            fail2ban_matched=extras.get("fail2ban", {}).get("matched")))
        rows.append(harness.comparison(
            "logins: iter_login_attempts (in-process)", "fail2ban-regex", times["fail2ban"],
            times["in-process"], harness.ratios(times, "in-process", "fail2ban"),
            amount=lines, amount_unit="lines/s", routerwatch_events=extras.get("in-process")))

        agree = agreement(log, truth, fail2ban_matches(log),
                          routerwatch_events(iter_login_attempts, log))
        rows.append({"case": "logins: failures found (lines)",
                     "expected": agree["failure_lines_expected"],
                     "fail2ban": agree["failure_lines_fail2ban"],
                     "routerwatch": agree["failure_lines_routerwatch"],
                     "fail2ban_true_address": agree["failures_with_true_address_fail2ban"],
                     "routerwatch_true_address": agree["failures_with_true_address_routerwatch"]})
        notes.append("fail2ban-regex is a separate process (start-up included, like check-log); "
                     "in-process has neither start-up nor output")
    return harness.result("logins", quick, rows, notes, agreement=agree)


if __name__ == "__main__":
    raise SystemExit(harness.main(run, __doc__.split("\n\n")[0],
                                  lambda p: p.add_argument("--lines", type=int)))
