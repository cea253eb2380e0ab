"""Memory of a process from /proc/<pid>/status, and a helper to start a process that reports
when it is ready (so its memory is read after start-up, not during)."""
import subprocess
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
