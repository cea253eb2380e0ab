"""routerwatch-agent as a new user first runs it: on an ordinary Linux machine, with typos, with
a log file that is not there yet. Each test runs the command line as a user would."""
import json
import os
import subprocess
import sys
import threading

import pytest

from fixtures.build_tree import build_tree
from routerwatch import config as cfg
from routerwatch.cli import once_keeps_state_in_etc


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


def test_the_readme_fixture_example_runs_without_logread(tmp_path):
    """`routerwatch-agent --root tests/fixtures/router-attacked --once` on a machine without
    logread: the tree's /var/log/messages is read instead, and the one line says so."""
    tree = build_tree("router-attacked", tmp_path / "attacked")
    result = agent("--root", str(tree), "--once", env=dict(os.environ, PATH=str(tmp_path)))
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        "routerwatch: WARNING: no logread here (not OpenWrt?): reading login events from "
        "%s instead" % (tree / "var" / "log" / "messages")]
    kinds = {json.loads(line)["kind"] for line in result.stdout.splitlines()}
    assert {"login.bruteforce", "login.success_after_failures"} <= kinds


def test_once_on_a_tree_without_any_log_says_so_and_scans_the_rest(tmp_path):
    tree = build_tree("router-attacked", tmp_path / "attacked")
    os.unlink(tree / "var" / "log" / "messages")
    result = agent("--root", str(tree), "--once", env=dict(os.environ, PATH=str(tmp_path)))
    assert result.returncode == 1, result.stderr
    assert "no login events are read" in result.stderr
    kinds = {json.loads(line)["kind"] for line in result.stdout.splitlines()}
    assert "integrity.deleted_exe" in kinds and not any(k.startswith("login.") for k in kinds)


def test_once_keeps_its_state_out_of_etc_unless_the_machine_is_openwrt(tmp_path):
    plain = cfg.load(defaults={"root": "/"})
    assert once_keeps_state_in_etc(plain) == (not os.path.exists("/etc/openwrt_release"))
    router = tmp_path / "router"
    (router / "etc").mkdir(parents=True)
    (router / "etc" / "openwrt_release").write_text("DISTRIB_ID='OpenWrt'\n")
    assert not once_keeps_state_in_etc(cfg.load(defaults={"root": str(router)}))
    asked = cfg.load(defaults={"root": "/"}, overrides=["state_dir=%s" % tmp_path])
    assert not once_keeps_state_in_etc(asked)


@pytest.mark.skipif(os.path.exists("/etc/openwrt_release") or os.path.exists("/etc/routerwatch"),
                    reason="needs a machine that is not OpenWrt and has no /etc/routerwatch")
def test_once_on_this_machine_writes_nothing_to_etc(tmp_path):
    result = agent("--once", "--set", "watchers.connections=0", "--set", "watchers.processes=0",
                   "--set", "watchers.integrity=0", "--set", "log.source=none")
    assert result.returncode == 0, result.stderr
    assert not os.path.exists("/etc/routerwatch")
    kept = tmp_path / "kept"
    result = agent("--once", "--set", "state_dir=%s" % kept, "--set", "watchers.connections=0",
                   "--set", "watchers.processes=0", "--set", "watchers.integrity=0",
                   "--set", "log.source=none")
    assert result.returncode == 0, result.stderr
    assert (kept / "device_id").exists()      # asked for: kept where it was asked


def test_a_running_agent_says_its_log_file_is_missing(tmp_path):
    """The running agent (not --once) with a --log-file that is not there warns on its own
    instead of waiting silently."""
    missing = tmp_path / "no-such.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "routerwatch.cli", "--root", str(tmp_path), "--log-file",
         str(missing), "--set", "watchers.connections=0", "--set", "watchers.processes=0",
         "--set", "watchers.integrity=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(30, proc.kill)    # a silent agent fails the test, not hangs it
    watchdog.start()
    try:
        line = ""
        while "no login events until it appears" not in line:
            line = proc.stderr.readline()
            assert line, "the agent ended without saying the log file is missing"
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.wait(timeout=20)
    assert line.strip() == ("routerwatch: WARNING: log file %s: No such file or directory; "
                            "no login events until it appears" % missing)
