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
