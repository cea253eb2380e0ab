"""routerwatch-agent as a new user first runs it: on an ordinary Linux machine, with typos, with
a log file that is not there yet. Each test runs the command line as a user would."""
import subprocess
import sys


def agent(*args, timeout=60, **kwargs):
    return subprocess.run([sys.executable, "-m", "routerwatch.cli"] + list(args),
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def test_a_misspelled_detector_names_the_closest_detector(tmp_path):
    result = agent("--root", str(tmp_path), "--set", "login.brutefore.threshold=5",
                   "--check-config")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "config error: unknown detector login.brutefore in login.brutefore.threshold "
        "(from defaults and --set); did you mean login.bruteforce?")
