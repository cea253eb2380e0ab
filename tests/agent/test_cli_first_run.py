"""routerwatch-agent as a new user first runs it: on an ordinary Linux machine, with typos, with
a log file that is not there yet. Each test runs the command line as a user would."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from fixtures.build_tree import build_tree
from routerwatch import config as cfg
from routerwatch.cli import state_goes_to_this_hosts_etc


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
    lines = result.stdout.splitlines()
    serious = sum(json.loads(line)["severity"] in ("high", "critical") for line in lines)
    assert result.stderr.splitlines() == [
        "routerwatch: WARNING: no logread here (not OpenWrt?): reading login events from "
        "%s instead" % (tree / "var" / "log" / "messages"),
        "routerwatch: one scan: %d anomalies, %d of them high or critical" % (len(lines), serious)]
    kinds = {json.loads(line)["kind"] for line in lines}
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
    assert state_goes_to_this_hosts_etc(plain) == (not os.path.exists("/etc/openwrt_release"))
    router = tmp_path / "router"
    (router / "etc").mkdir(parents=True)
    (router / "etc" / "openwrt_release").write_text("DISTRIB_ID='OpenWrt'\n")
    assert not state_goes_to_this_hosts_etc(cfg.load(defaults={"root": str(router)}))
    asked = cfg.load(defaults={"root": "/"}, overrides=["state_dir=%s" % tmp_path])
    assert not state_goes_to_this_hosts_etc(asked)


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


def test_sigterm_with_a_broker_away_keeps_the_file_spool_and_says_how_many(tmp_path):
    """Broker unreachable, spool.mode=tmp: the warning gives the reason, and on SIGTERM the agent
    says how many anomalies wait in the spool file, which keeps them for the next start."""
    with socket.socket() as probe:                 # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_file = tmp_path / "messages"
    log_file.write_text("")
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "routerwatch.cli", "--root", str(tmp_path), "--log-file",
         str(log_file), "--set", "mqtt.host=127.0.0.1", "--set", "mqtt.port=%d" % port,
         "--set", "spool.mode=tmp", "--set", "run_dir=%s" % run_dir,
         "--set", "state_dir=%s" % (tmp_path / "state"), "--set", "watchers.connections=0",
         "--set", "watchers.processes=0", "--set", "watchers.integrity=0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        said = [proc.stderr.readline()]
        assert "started" in said[0], said
        stamp = time.strftime("%a %b %e %H:%M:%S %Y")
        with open(log_file, "a") as handle:
            for attempt in range(12):
                handle.write("%s authpriv.warn dropbear[%d]: Bad password attempt for 'root' "
                             "from 203.0.113.50:%d\n" % (stamp, 900 + attempt, 40000 + attempt))
        spool = run_dir / "spool"
        while not (spool.exists() and spool.stat().st_size > 0):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        said += proc.stderr.read().splitlines()
        assert proc.wait(timeout=30) == 0
    finally:
        watchdog.cancel()
        proc.kill()
    assert "routerwatch: WARNING: cannot reach the broker 127.0.0.1:%d (Connection refused); " \
           "trying again with back-off" % port in said
    stops = [line for line in said if "stopping:" in line]
    assert len(stops) == 1 and stops[0].endswith(
        "the broker has not acknowledged stay%s in %s for the next start"
        % ("" if "anomalies" in stops[0] else "s", spool)), said
    assert b"login.bruteforce" in spool.read_bytes()
