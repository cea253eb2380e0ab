"""login.bruteforce: given failed logins from one source within the window, one medium finding
with the source, users and counts; high once the incident is large."""
from routerwatch.detectors.login_bruteforce import Config, LoginBruteforce
from routerwatch.events import LoginAttempt


def failure(t, ip, user="root", service="ssh", attempts=1):
    return LoginAttempt(time=t, service=service, outcome="failure", method="password", user=user,
                        source_ip=ip, source_port=40000, attempts=attempts)


def run(detector, events):
    findings = []
    for event in events:
        findings.extend(detector.observe(event))
    return findings


def test_ten_failures_in_ten_minutes_make_a_medium_finding():
    detector = LoginBruteforce(Config())
    findings = run(detector, [failure(1000 + 30 * i, "203.0.113.7", user=u)
                              for i, u in enumerate(["root"] * 8 + ["admin", "ubnt"])])
    assert len(findings) == 1
    finding = findings[0]
    assert (finding.kind, finding.severity, finding.incident) == (
        "login.bruteforce", "medium", "203.0.113.7")
    assert finding.evidence["source_ip"] == "203.0.113.7"
    assert finding.evidence["users"] == ["root", "admin", "ubnt"]
    assert finding.evidence["failures"] == 10
    assert (finding.evidence["first"], finding.evidence["last"]) == (1000, 1270)
    assert finding.evidence["window"] == 600 and finding.evidence["service"] == "ssh"


def test_the_owner_mistyping_a_few_times_is_quiet():
    detector = LoginBruteforce(Config())
    assert run(detector, [failure(1000 + i, "192.168.1.10") for i in range(4)]) == []


def test_failures_spread_wider_than_the_window_are_quiet():
    detector = LoginBruteforce(Config())
    assert run(detector, [failure(1000 + 120 * i, "203.0.113.7") for i in range(30)]) == []


def test_one_exit_line_standing_for_many_failures_counts_them_all():
    detector = LoginBruteforce(Config())
    findings = run(detector, [failure(1000, "203.0.113.7", attempts=10)])
    assert [f.evidence["failures"] for f in findings] == [10]


def test_repeats_are_sent_as_the_incident_grows_and_turn_high():
    detector = LoginBruteforce(Config())
    findings = run(detector, [failure(1000 + i, "203.0.113.7") for i in range(200)])
    assert [f.evidence["failures"] for f in findings] == [10, 20, 40, 80, 160]
    assert [f.severity for f in findings] == ["medium"] * 4 + ["high"]
    assert {f.incident for f in findings} == {"203.0.113.7"}


def test_rotating_ipv6_addresses_in_one_64_are_one_source():
    detector = LoginBruteforce(Config())
    findings = run(detector, [failure(1000 + i, "2001:db8:bad::%x" % (i + 1)) for i in range(10)])
    assert len(findings) == 1
    assert findings[0].incident == "2001:db8:bad::/64"
    assert len(findings[0].evidence["addresses"]) == 8      # bounded


def test_failures_without_address_are_judged_as_one_unknown_source():
    detector = LoginBruteforce(Config())
    findings = run(detector, [failure(1000 + i, None, service="luci") for i in range(10)])
    assert [(f.incident, f.evidence["source_ip"]) for f in findings] == [("unknown", None)]


def test_successes_are_not_failures():
    detector = LoginBruteforce(Config())
    success = LoginAttempt(time=1, service="ssh", outcome="success", method="password",
                           user="root", source_ip="203.0.113.7", source_port=1)
    assert run(detector, [success] * 50) == []


def test_tracked_sources_are_capped_and_evictions_reported():
    detector = LoginBruteforce(Config(max_sources=16))
    run(detector, [failure(1000, "198.51.100.%d" % i) for i in range(100)])
    assert detector.drops() == {"login.bruteforce.sources": 84}
