"""login.new_source: given a successful login from a network never seen before, a finding (info
for the very first login of a fresh install); known networks stay quiet, across restarts too,
and the state file is written only when the set changed, at most every persist_minutes."""
import json

from routerwatch.detectors.login_new_source import STATE_FILE, Config, LoginNewSource
from routerwatch.events import LoginAttempt


def success(t, ip, user="root", method="password"):
    return LoginAttempt(time=t, service="ssh", outcome="success", method=method, user=user,
                        source_ip=ip, source_port=1)


def run(detector, events):
    findings = []
    for event in events:
        findings.extend(detector.observe(event))
        detector.tick(event.time)
    return findings


def test_first_login_on_a_fresh_install_is_info_then_new_networks_are_reported(tmp_path):
    detector = LoginNewSource(Config(), state_dir=str(tmp_path))
    findings = run(detector, [success(1000, "192.168.1.10"), success(1100, "192.168.1.77"),
                              success(1200, "192.168.5.3"), success(1300, "203.0.113.7")])
    assert [(f.severity, f.incident) for f in findings] == [
        ("info", "192.168.1.0/24"), ("low", "192.168.5.0/24"), ("medium", "203.0.113.0/24")]
    assert findings[0].evidence["first_ever"] is True
    last = findings[-1].evidence
    assert (last["source_ip"], last["user"], last["known_sources"]) == ("203.0.113.7", "root", 2)


def test_ipv6_privacy_addresses_of_one_64_are_one_network():
    detector = LoginNewSource(Config())
    findings = run(detector, [success(1, "2001:db8:1:2::a"), success(2, "2001:db8:1:2::b"),
                              success(3, "2001:db8:1:3::a")])
    assert [f.incident for f in findings] == ["2001:db8:1:2::/64", "2001:db8:1:3::/64"]


def test_failures_and_partial_successes_are_not_logins():
    detector = LoginNewSource(Config())
    failure = LoginAttempt(time=1, service="ssh", outcome="failure", method="password",
                           user="root", source_ip="203.0.113.7", source_port=1)
    assert run(detector, [failure, success(2, "203.0.113.8", method="password_partial")]) == []


def test_known_networks_survive_a_restart(tmp_path):
    first = LoginNewSource(Config(), state_dir=str(tmp_path))
    run(first, [success(1000, "192.168.1.10"), success(1100, "203.0.113.7")])
    first.close()      # the agent stopping saves what the write interval held back
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert set(saved["networks"]) == {"192.168.1.0/24", "203.0.113.0/24"}

    second = LoginNewSource(Config(), state_dir=str(tmp_path))
    findings = run(second, [success(5000, "203.0.113.9"), success(5100, "198.51.100.1")])
    assert [(f.severity, f.incident) for f in findings] == [("medium", "198.51.100.0/24")]


def test_state_is_written_only_on_change_and_at_most_every_persist_minutes(tmp_path):
    detector = LoginNewSource(Config(persist_minutes=60), state_dir=str(tmp_path))
    run(detector, [success(1000, "192.168.1.10")])                 # first change: written
    assert detector.writes == 1
    run(detector, [success(1000 + 60 * i, "192.168.1.10") for i in range(100)])   # known: none
    assert detector.writes == 1
    run(detector, [success(2000, "203.0.113.7")])                  # changed, but too soon
    assert detector.writes == 1
    detector.tick(1000 + 3600)
    assert detector.writes == 2
    assert "203.0.113.0/24" in json.loads((tmp_path / STATE_FILE).read_text())["networks"]
    assert not (tmp_path / (STATE_FILE + ".tmp")).exists()


def test_a_corrupt_state_file_is_ignored(tmp_path):
    (tmp_path / STATE_FILE).write_text("{not json")
    detector = LoginNewSource(Config(), state_dir=str(tmp_path))
    findings = run(detector, [success(1, "192.168.1.10")])
    assert [f.severity for f in findings] == ["info"]


def test_an_unwritable_state_dir_does_not_stop_detection(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    detector = LoginNewSource(Config(), state_dir=str(blocker / "sub"))
    findings = run(detector, [success(1, "192.168.1.10"), success(2, "203.0.113.7")])
    assert [f.severity for f in findings] == ["info", "medium"]
    assert detector.writes == 0


def test_remembered_networks_are_capped():
    detector = LoginNewSource(Config(max_sources=8))
    run(detector, [success(i, "198.51.%d.1" % i) for i in range(20)])
    assert detector.drops() == {"login.new_source.forgotten": 12}
