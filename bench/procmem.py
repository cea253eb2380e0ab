"""Memory of a process from /proc/<pid>/status, and a helper to start a process that reports
when it is ready (so its memory is read after start-up, not during)."""
import os
import subprocess
import sys
import tempfile
import time

FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM")


def status_kb(pid):
    """{'VmRSS': kB, 'RssAnon': kB, ...} of a live process; {} if it is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                if name in FIELDS:
                    out[name] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return out


def tree_pids(pid):
    """pid and its descendants (the agent may start helpers; none expected, counted if any)."""
    pids = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            for child in handle.read().split():
                pids.extend(tree_pids(int(child)))
    except OSError:
        pass
    return pids


def idle_process_kb(argv, env=None, ready=b"ready", settle=0.5, timeout=30):
    """Start argv (which prints `ready` on stdout once set up, then sleeps), read its memory,
    kill it. Returns the status dict."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + timeout
        line = proc.stdout.readline()
        if ready not in line:
            raise RuntimeError("%s did not get ready: %r %r" % (argv, line, proc.stderr.read()[-500:]))
        time.sleep(settle)
        if time.monotonic() > deadline:
            raise RuntimeError("timeout")
        return status_kb(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def run_with_peak_rss(argv, stdout=None, stderr=None, env=None, cwd=None, timeout=600):
    """Run argv to its end: (exit code, peak RSS in kB, wall seconds).

    The peak is wait4's ru_maxrss of argv's own process, which a small fresh interpreter starts
    and waits for: a process forked from a big one (pytest, a benchmark) inherits the parent's
    RSS as its high-water mark, and exec does not reset it."""
    with tempfile.NamedTemporaryFile("r", suffix=".wait4") as report:
        start = time.perf_counter()
        subprocess.run([sys.executable, os.path.abspath(__file__), "--wait4", report.name]
                       + [str(a) for a in argv], stdout=stdout, stderr=stderr, env=env,
                       cwd=cwd, timeout=timeout, check=False)
        seconds = time.perf_counter() - start
        code, peak_kb = (int(x) for x in report.read().split())
    return code, peak_kb, seconds


def _wait4_main(report, argv):
    child = subprocess.Popen(argv)
    _pid, status, usage = os.wait4(child.pid, 0)
    with open(report, "w") as handle:
        handle.write("%d %d\n" % (os.waitstatus_to_exitcode(status), usage.ru_maxrss))


if __name__ == "__main__" and len(sys.argv) > 3 and sys.argv[1] == "--wait4":
    _wait4_main(sys.argv[2], sys.argv[3:])
