"""login.spray: given failures from many sources (each only once, hours apart) or for many user
names within a day, one router-wide medium finding; a healthy router's typos stay quiet."""
from routerwatch.detectors.login_spray import Config, LoginSpray
from routerwatch.events import LoginAttempt

HOUR = 3600


def failure(t, ip, user=None, service="ssh"):
    return LoginAttempt(time=t, service=service, outcome="failure", method="unknown_user",
                        user=user, source_ip=ip, source_port=1)


def run(detector, events):
    findings = []
    for event in events:
        findings.extend(detector.observe(event))
    return findings


def test_low_and_slow_spray_from_many_sources_is_found():
    detector = LoginSpray(Config())
    # one try per source, one source an hour: nothing a brute-force threshold would see
    events = [failure(HOUR * i, "198.51.100.%d" % (10 + i)) for i in range(12)]
    findings = run(detector, events)
    assert len(findings) == 1
    finding = findings[0]
    assert (finding.kind, finding.severity, finding.incident) == ("login.spray", "medium", "spray")
    assert finding.evidence["distinct_sources"] == 10
    assert finding.evidence["by"] == ["sources"]
    assert finding.evidence["sources"][-1] == "198.51.100.19"
    assert finding.evidence["first"] == 0 and finding.evidence["last"] == 9 * HOUR


def test_many_user_names_are_found():
    detector = LoginSpray(Config())
    names = ["root", "admin", "ubnt", "support", "user", "guest"]
    findings = run(detector, [failure(60 * i, "203.0.113.7", user=n, service="luci")
                              for i, n in enumerate(names)])
    assert [f.evidence["by"] for f in findings] == [["users"]]
    assert findings[0].evidence["users"] == names
    assert findings[0].evidence["service"] == "luci"


def test_a_healthy_router_stays_quiet():
    detector = LoginSpray(Config())
    # the owner's phone, laptop (two privacy addresses of one /64) and a typo of the user name
    events = [failure(1000, "192.168.1.20", "root"), failure(5000, "192.168.1.21", "roo"),
              failure(9000, "2001:db8:1:2::a", "root"), failure(9500, "2001:db8:1:2::b", "root"),
              failure(20000, None, None)]
    assert run(detector, events) == []


def test_sources_older_than_the_window_are_forgotten():
    detector = LoginSpray(Config())
    # twelve sources, but one per 3 hours: never ten within 24 hours
    assert run(detector, [failure(3 * HOUR * i, "198.51.100.%d" % i) for i in range(12)]) == []


def test_the_finding_is_refreshed_when_the_spray_doubles():
    detector = LoginSpray(Config())
    findings = run(detector, [failure(i, "198.51.100.%d" % i) for i in range(45)])
    assert [f.evidence["distinct_sources"] for f in findings] == [10, 20, 40]
    assert all(len(f.evidence["sources"]) <= 16 for f in findings)


def test_tracked_sources_are_capped():
    detector = LoginSpray(Config(max_tracked=16))
    run(detector, [failure(i, "198.51.100.%d" % i) for i in range(100)])
    assert detector.drops() == {"login.spray.tracked": 84}


def test_final_gives_the_spray_as_it_ended():
    from routerwatch.detectors.login_spray import Config as SprayConfig, LoginSpray
    from routerwatch.events import LoginAttempt as Attempt
    detector = LoginSpray(SprayConfig())
    findings = []
    for i in range(50):
        findings += detector.observe(Attempt(time=1000 + 60 * i, service="ssh", outcome="failure",
                                             method="password", user="root",
                                             source_ip="198.51.100.%d" % (i + 1), source_port=1))
    final = detector.final(findings[-1])
    assert findings[-1].evidence["distinct_sources"] == 40
    assert (final.evidence["distinct_sources"], final.evidence["failures"],
            final.evidence["last"]) == (50, 50, 1000 + 60 * 49)
