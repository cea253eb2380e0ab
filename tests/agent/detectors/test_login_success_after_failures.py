"""login.success_after_failures: given a success from a source that just failed many times (or
for a user many sources failed on), one high finding; a typo before a login stays quiet."""
from routerwatch.detectors.login_success_after_failures import (Config,
                                                                LoginSuccessAfterFailures)
from routerwatch.events import LoginAttempt


def attempt(t, outcome, ip, user="root", service="ssh", attempts=1):
    return LoginAttempt(time=t, service=service, outcome=outcome, method="password", user=user,
                        source_ip=ip, source_port=1, attempts=attempts)


def run(detector, events):
    findings = []
    for event in events:
        findings.extend(detector.observe(event))
    return findings


def test_a_guessed_password_is_high():
    detector = LoginSuccessAfterFailures(Config())
    events = [attempt(1000 + i, "failure", "203.0.113.7", user=u)
              for i, u in enumerate(["admin", "root", "root", "root", "root"])]
    findings = run(detector, events + [attempt(1100, "success", "203.0.113.7")])
    assert len(findings) == 1
    finding = findings[0]
    assert (finding.kind, finding.severity, finding.incident) == (
        "login.success_after_failures", "high", "203.0.113.7")
    evidence = finding.evidence
    assert (evidence["source_ip"], evidence["user"], evidence["failures"], evidence["by"]) == (
        "203.0.113.7", "root", 5, "source")
    assert evidence["users"] == ["admin", "root"]
    assert (evidence["first"], evidence["last"], evidence["success"]) == (1000, 1004, 1100)


def test_a_typo_then_a_login_is_quiet():
    detector = LoginSuccessAfterFailures(Config())
    events = [attempt(1000, "failure", "192.168.1.10"), attempt(1005, "failure", "192.168.1.10"),
              attempt(1010, "success", "192.168.1.10")]
    assert run(detector, events) == []


def test_failures_long_before_the_success_do_not_count():
    detector = LoginSuccessAfterFailures(Config())
    events = [attempt(1000, "failure", "203.0.113.7", attempts=10),
              attempt(1000 + 7200, "success", "203.0.113.7")]
    assert run(detector, events) == []


def test_a_spray_that_worked_is_found_by_the_user_name():
    detector = LoginSuccessAfterFailures(Config())
    events = [attempt(1000 + i, "failure", "198.51.100.%d" % i, service="luci")
              for i in range(10)]
    findings = run(detector, events + [attempt(2000, "success", "192.0.2.99", service="luci")])
    assert [(f.incident, f.evidence["by"], f.evidence["failures"]) for f in findings] == [
        ("user:root", "user", 10)]
    assert len(findings[0].evidence["sources"]) == 10


def test_a_success_clears_the_slate():
    detector = LoginSuccessAfterFailures(Config())
    events = [attempt(1000 + i, "failure", "203.0.113.7") for i in range(5)]
    events += [attempt(1100, "success", "203.0.113.7"), attempt(1200, "success", "203.0.113.7")]
    assert len(run(detector, events)) == 1


# ---------------------------------------------------------------- the owner during a spray
def spray(start=1000, sources=12, user="root"):
    """Bots failing on `user` from many outside addresses, as all day on an exposed router."""
    return [attempt(start + 7 * i, "failure", "198.51.100.%d" % (i + 1), user=user)
            for i in range(sources)]


def login(t, ip, method="password", user="root", service="ssh"):
    return LoginAttempt(time=t, service=service, outcome="success", method=method, user=user,
                        source_ip=ip, source_port=1)


def test_the_owner_logging_in_from_the_lan_during_a_spray_is_quiet():
    for ip in ("192.168.1.20", "fd00::20", "fe80::20", "10.0.0.5"):
        detector = LoginSuccessAfterFailures(Config())
        assert run(detector, spray() + [login(1200, ip), login(1300, ip, service="luci")]) == []


def test_a_key_login_from_anywhere_during_a_spray_is_no_guessed_password():
    detector = LoginSuccessAfterFailures(Config())
    assert run(detector, spray() + [login(1200, "203.0.113.77", method="pubkey")]) == []


def test_a_key_login_does_not_end_the_spray_for_what_comes_after():
    detector = LoginSuccessAfterFailures(Config())
    findings = run(detector, spray() + [login(1200, "192.168.1.20", method="pubkey"),
                                        login(1300, "203.0.113.77")])
    assert [(f.evidence["by"], f.evidence["source_ip"]) for f in findings] == [
        ("user", "203.0.113.77")]


def test_a_password_from_a_new_outside_network_during_a_spray_is_high():
    detector = LoginSuccessAfterFailures(Config())
    findings = run(detector, spray() + [login(1200, "203.0.113.77", service="luci")])
    assert len(findings) == 1
    evidence = findings[0].evidence
    assert (findings[0].severity, evidence["by"], evidence["inside"], evidence["failures"]) == (
        "high", "user", False, 12)
    assert "spray" in findings[0].summary


def test_a_network_the_owner_logged_in_from_before_is_known(tmp_path):
    detector = LoginSuccessAfterFailures(Config())
    # earlier today, from the office (before the spray began)
    assert run(detector, [login(500, "203.0.113.40", method="pubkey")]) == []
    assert run(detector, spray() + [login(1200, "203.0.113.41")]) == []   # same /24


def test_networks_remembered_by_login_new_source_are_known(tmp_path):
    (tmp_path / "login_new_source.json").write_text(
        '{"v": 1, "networks": {"203.0.113.0/24": 100.0, "2001:db8:77::/64": 90}}')
    detector = LoginSuccessAfterFailures(Config())
    detector.use_state_dir(str(tmp_path))
    assert run(detector, spray() + [login(1200, "203.0.113.41"),
                                    login(1201, "2001:db8:77::5")]) == []
    assert len(run(detector, spray(2000) + [login(2200, "192.0.2.50")])) == 1


def test_one_bot_failing_on_root_is_no_spray():
    detector = LoginSuccessAfterFailures(Config())
    events = [attempt(1000 + i, "failure", "198.51.100.9") for i in range(30)]
    assert run(detector, events + [login(1200, "203.0.113.77")]) == []


def test_the_source_that_failed_is_high_whatever_the_method_and_side():
    for ip, method in (("203.0.113.7", "pubkey"), ("192.168.1.20", "password")):
        detector = LoginSuccessAfterFailures(Config())
        events = [attempt(1000 + i, "failure", ip) for i in range(5)]
        findings = run(detector, events + [login(1100, ip, method=method)])
        assert [(f.evidence["by"], f.evidence["method"]) for f in findings] == [
            ("source", method)]
