"""A day on a router whose SSH and LuCI face the internet (bench/gen_openwrt_log.py
--exposed-day), in old and new dropbear formats, read by `routerwatch-agent --once`:
  * every failure is counted, in every release's format;
  * the slow guesser (4 tries every 11 min), the steady one (9 every 10-11 min) and the fast one
    (6 in 6 s over SSH and LuCI) are each reported once, with their final count and time span;
  * the spray is one anomaly;
  * the owner's key and password logins (LAN, a remembered office, LuCI) raise nothing, though
    bots fail on root all day.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

from gen_openwrt_log import generate_exposed_day  # noqa: E402

RELEASES = ("2019.78", "2022.82", "2024.86")


def agent(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO / "agent"))
    return subprocess.run([sys.executable, "-m", "routerwatch.cli"] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=300)


def once(log, state_dir):
    proc = agent("--once", "--log-file", str(log), "--set", "watchers.connections=false",
                 "--set", "watchers.processes=false", "--set", "watchers.integrity=false",
                 "--set", "state_dir=%s" % state_dir)
    assert proc.returncode in (0, 1), proc.stderr
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


@pytest.fixture(scope="module", params=RELEASES)
def day(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("day") / ("exposed-%s.log" % request.param)
    truth = generate_exposed_day(path, seed=7, dropbear=request.param)
    return path, truth


def remembered(state_dir, *networks):
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "login_new_source.json").write_text(json.dumps(
        {"v": 1, "networks": {net: 1764000000 for net in networks}}))


def test_check_log_counts_every_failure_of_the_release(day):
    path, truth = day
    proc = agent("check-log", str(path))
    events = [json.loads(line) for line in proc.stdout.decode().splitlines()[:-1]]
    failed = {}
    for e in events:
        if e["outcome"] == "failure":
            failed[e["source_ip"]] = failed.get(e["source_ip"], 0) + e["attempts"]
    assert failed == truth["failures"]
    successes = sorted((e["source_ip"], e["service"]) for e in events if e["outcome"] == "success")
    assert successes == sorted((o["ip"], o["service"]) for o in truth["owner_logins"])


def test_each_guesser_is_one_anomaly_with_its_final_count_and_span(day, tmp_path):
    path, truth = day
    remembered(tmp_path, "192.168.1.0/24", "fd00:1::/64", "203.0.113.0/24")
    anomalies = once(path, tmp_path)
    brute = {a["evidence"]["source"]: a for a in anomalies if a["kind"] == "login.bruteforce"}
    assert len(brute) == len([a for a in anomalies if a["kind"] == "login.bruteforce"])
    failures = truth["failures"]
    for source, address in ((truth["slow_guesser"],) * 2, (truth["steady_guesser"],) * 2,
                            ("2001:db8:bad:1::/64", truth["fast_guesser"])):
        evidence = brute[source]["evidence"]
        assert evidence["failures"] == failures[address], source
    slow = brute[truth["slow_guesser"]]
    assert slow["evidence"]["by"] == "slow_window" and slow["severity"] == "high"
    assert slow["evidence"]["last"] - slow["evidence"]["first"] > 20 * 3600
    assert slow["count"] > 1          # the findings it folds
    fast = brute["2001:db8:bad:1::/64"]["evidence"]
    assert fast["service"] == "ssh+luci" and fast["last"] - fast["first"] <= 6
    sprays = [a for a in anomalies if a["kind"] == "login.spray"]
    assert len(sprays) == 1
    assert set(truth["spray_sources"]) <= set(truth["failures"])
    assert sprays[0]["evidence"]["distinct_sources"] >= len(truth["spray_sources"])


def test_the_owners_logins_raise_nothing(day, tmp_path):
    path, truth = day
    remembered(tmp_path, "192.168.1.0/24", "fd00:1::/64", "203.0.113.0/24")
    anomalies = once(path, tmp_path)
    assert [a for a in anomalies if a["kind"] in ("login.success_after_failures",
                                                  "login.new_source")] == []
    owner = set(truth["owner_lan"]) | {truth["owner_office"]}
    assert not [a for a in anomalies if a["evidence"].get("source_ip") in owner]


def test_a_password_from_an_unknown_outside_network_during_the_bots_is_high(day, tmp_path):
    path, truth = day
    remembered(tmp_path, "192.168.1.0/24", "fd00:1::/64")       # the office is not known
    anomalies = once(path, tmp_path)
    high = [a for a in anomalies if a["kind"] == "login.success_after_failures"]
    assert [(a["evidence"]["source_ip"], a["evidence"]["by"], a["severity"]) for a in high] == [
        (truth["owner_office"], "user", "high")]
    # both office logins, one incident: a network that logged in suspiciously is not made known
    assert high[0]["count"] == 2
