"""login.bruteforce: given failed logins from one source within the window, one medium finding
with the source, users and counts; high once the incident is large. Outside sources are judged as
strictly as fail2ban (5 in 10 min), the owner's side tolerantly (10); a day-long window catches
guessers that stay under the short one."""
import random

from routerwatch.detectors.login_bruteforce import Config, LoginBruteforce
from routerwatch.events import LoginAttempt
from routerwatch.inside import Inside


def failure(t, ip, user="root", service="ssh", attempts=1):
    return LoginAttempt(time=t, service=service, outcome="failure", method="password", user=user,
                        source_ip=ip, source_port=40000, attempts=attempts)


def run(detector, events):
    findings = []
    for event in events:
        findings.extend(detector.observe(event))
    return findings


def test_ten_failures_from_the_lan_in_ten_minutes_make_a_medium_finding():
    detector = LoginBruteforce(Config())
    findings = run(detector, [failure(1000 + 30 * i, "192.168.1.77", user=u)
                              for i, u in enumerate(["root"] * 8 + ["admin", "ubnt"])])
    assert len(findings) == 1
    finding = findings[0]
    assert (finding.kind, finding.severity, finding.incident) == (
        "login.bruteforce", "medium", "192.168.1.77")
    assert finding.evidence["source_ip"] == "192.168.1.77"
    assert finding.evidence["inside"] is True and finding.evidence["threshold"] == 10
    assert finding.evidence["users"] == ["root", "admin", "ubnt"]
    assert finding.evidence["failures"] == 10
    assert (finding.evidence["first"], finding.evidence["last"]) == (1000, 1270)
    assert finding.evidence["window"] == 600 and finding.evidence["service"] == "ssh"
    assert finding.evidence["by"] == "window"


def test_an_outside_source_is_reported_at_its_fifth_failure_like_fail2ban():
    detector = LoginBruteforce(Config())
    findings = run(detector, [failure(1000 + 30 * i, "203.0.113.7") for i in range(5)])
    assert [(f.evidence["failures"], f.evidence["inside"], f.evidence["threshold"])
            for f in findings] == [(5, False, 5)]
    assert run(LoginBruteforce(Config()), [failure(1000 + i, "203.0.113.8") for i in range(4)]) == []


def test_six_failures_in_six_seconds_from_a_public_address_over_ssh_or_luci_are_reported():
    for service in ("ssh", "luci"):
        for address in ("198.51.100.5", "2001:db8:5::9", "8.8.4.4", "100.64.3.3"):
            detector = LoginBruteforce(Config())
            findings = run(detector, [failure(1000 + i, address, service=service)
                                      for i in range(6)])
            assert len(findings) == 1, (service, address)
            assert findings[0].evidence["service"] == service


def test_the_documentation_ranges_are_outside_though_python_calls_them_private():
    # ipaddress.ip_address("192.0.2.1").is_private is True; on a WAN it is a stranger
    for address in ("192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1"):
        findings = run(LoginBruteforce(Config()), [failure(1000 + i, address) for i in range(5)])
        assert [f.evidence["inside"] for f in findings] == [False], address


def test_the_owner_mistyping_five_times_on_the_lan_is_quiet():
    for address in ("192.168.1.10", "10.1.2.3", "172.20.0.4", "fd00::10", "fe80::1", "127.0.0.1"):
        detector = LoginBruteforce(Config())
        assert run(detector, [failure(1000 + i, address) for i in range(9)]) == [], address


def test_a_lan_client_with_a_global_ipv6_address_is_inside_once_the_lan_is_known():
    detector = LoginBruteforce(Config())
    assert len(run(detector, [failure(1000 + i, "2001:db8:1:0::77") for i in range(6)])) == 1
    detector = LoginBruteforce(Config())
    detector.inside = Inside(["2001:db8:1::/64", "192.168.7.0/24"])
    assert run(detector, [failure(1000 + i, "2001:db8:1:0::77") for i in range(6)]) == []
    assert run(detector, [failure(1000 + i, "2001:db8:2:0::77") for i in range(6)]) != []


def test_failures_from_the_lan_spread_wider_than_the_window_are_quiet():
    detector = LoginBruteforce(Config())
    assert run(detector, [failure(1000 + 120 * i, "192.168.1.10") for i in range(30)]) == []


def test_a_slow_guesser_is_reported_by_the_long_window():
    # four tries every eleven minutes never fill the short window, all day long
    detector = LoginBruteforce(Config())
    events = [failure(1000 + 660 * burst + 20 * i, "198.51.100.9")
              for burst in range(130) for i in range(4)]
    findings = run(detector, events)
    assert findings, "a day of slow guessing must be reported"
    first = findings[0]
    assert first.evidence["by"] == "slow_window" and first.evidence["failures"] == 20
    assert "slowly" in first.summary
    # one incident that grows to high: hundreds of failures
    assert {f.incident for f in findings} == {"198.51.100.9"}
    assert findings[-1].severity == "high" and findings[-1].evidence["failures"] >= 320
    assert findings[-1].evidence["first"] == 1000


def test_nine_tries_every_ten_minutes_all_day_from_the_lan_side_are_reported():
    detector = LoginBruteforce(Config())
    events = [failure(1000 + 630 * burst + 60 * i, "192.168.1.50")
              for burst in range(137) for i in range(9)]
    findings = run(detector, events)
    assert findings and findings[0].evidence["by"] == "slow_window"
    assert findings[-1].severity == "high"


def test_the_long_window_forgets_old_failures():
    detector = LoginBruteforce(Config())
    # 19 failures, one every ninety minutes: never 20 within a day
    assert run(detector, [failure(1000 + 5400 * i, "198.51.100.9") for i in range(40)]) == []


def test_the_slow_count_of_a_source_is_bounded_whatever_the_rate():
    detector = LoginBruteforce(Config(high_threshold=10 ** 6))
    rng = random.Random(3)
    t = 1000.0
    for _ in range(20000):
        t += rng.expovariate(1 / 30.0)
        detector.observe(failure(t, "198.51.100.9"))
    state = detector._sources.get("198.51.100.9")
    assert len(state.slow) <= 25 and len(state.recent) <= 5
    assert state.in_slow == sum(count for _, count in state.slow)


def test_one_exit_line_standing_for_many_failures_counts_them_all():
    detector = LoginBruteforce(Config())
    findings = run(detector, [failure(1000, "203.0.113.7", attempts=10)])
    assert [f.evidence["failures"] for f in findings] == [10]


def test_repeats_are_sent_as_the_incident_grows_and_turn_high():
    detector = LoginBruteforce(Config())
    findings = run(detector, [failure(1000 + i, "203.0.113.7") for i in range(200)])
    assert [f.evidence["failures"] for f in findings] == [5, 10, 20, 40, 80, 160]
    assert [f.severity for f in findings] == ["medium"] * 5 + ["high"]
    assert {f.incident for f in findings} == {"203.0.113.7"}


def test_rotating_ipv6_addresses_in_one_64_are_one_source():
    detector = LoginBruteforce(Config())
    findings = run(detector, [failure(1000 + i, "2001:db8:bad::%x" % (i + 1)) for i in range(10)])
    assert len(findings) == 2
    assert findings[0].incident == "2001:db8:bad::/64"
    assert len(findings[-1].evidence["addresses"]) == 8      # bounded


def test_failures_without_address_are_judged_as_one_unknown_source():
    detector = LoginBruteforce(Config())
    findings = run(detector, [failure(1000 + i, None, service="luci") for i in range(5)])
    assert [(f.incident, f.evidence["source_ip"], f.evidence["inside"]) for f in findings] == [
        ("unknown", None, False)]


def test_successes_are_not_failures():
    detector = LoginBruteforce(Config())
    success = LoginAttempt(time=1, service="ssh", outcome="success", method="password",
                           user="root", source_ip="203.0.113.7", source_port=1)
    assert run(detector, [success] * 50) == []


def test_tracked_sources_are_capped_and_evictions_reported():
    detector = LoginBruteforce(Config(max_sources=16))
    run(detector, [failure(1000, "198.51.100.%d" % i) for i in range(100)])
    assert detector.drops() == {"login.bruteforce.sources": 84}


def test_final_brings_a_held_finding_up_to_date():
    detector = LoginBruteforce(Config())
    findings = run(detector, [failure(1000 + i, "203.0.113.7") for i in range(300)])
    held = findings[-1]
    assert held.evidence["failures"] == 160
    final = detector.final(held)
    assert (final.evidence["failures"], final.evidence["first"], final.evidence["last"]) == (
        300, 1000, 1299)
    assert final.evidence["by"] == "window" and final.time == 1299
    # a later incident of the same source leaves an older finding as it was
    run(detector, [failure(1000 + 86400 * 3 + i, "203.0.113.7") for i in range(5)])
    assert detector.final(held) is held
