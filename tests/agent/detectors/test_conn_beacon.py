"""conn.beacon: the router itself connecting to one destination on a steady clock."""
from connfixtures import out, snapshot

from routerwatch.detectors.conn_beacon import Config, ConnBeacon

C2 = "198.51.100.66"


def run(watch, polls):
    """polls: [(time, flows)] -> all findings."""
    findings = []
    for now, flows in polls:
        findings.extend(watch.observe(snapshot(now, flows)))
    return findings


def checkins(interval, count, dst=C2, port=443, proto="tcp", poll=10, first_sport=40000,
             lifetime=5, sport=None, jitter=()):
    """Polls every `poll` s; a new flow every `interval` s living `lifetime` s (no delta-time)."""
    polls = []
    starts = [i * interval + (jitter[i] if i < len(jitter) else 0) for i in range(count)]
    end = starts[-1] + lifetime + poll
    now = 0
    while now <= end:
        flows = [out(dst, port, proto, sport=sport or first_sport + i)
                 for i, start in enumerate(starts) if start <= now < start + max(lifetime, poll)]
        polls.append((now, flows))
        now += poll
    return polls


def test_check_in_every_five_minutes_is_a_beacon_with_the_interval_as_evidence():
    findings = run(ConnBeacon(Config()), checkins(300, 6))
    assert findings, "six check-ins 300 s apart"
    finding = findings[0]
    assert finding.kind == "conn.beacon" and finding.severity == "medium"
    assert finding.evidence["destination"] == C2 and finding.evidence["port"] == 443
    assert finding.evidence["interval"] == 300 and finding.evidence["connections"] == 6
    assert finding.incident == "198.51.100.66:443/tcp"


def test_five_check_ins_are_not_enough():
    assert run(ConnBeacon(Config()), checkins(300, 5)) == []


def test_irregular_connections_are_not_a_beacon():
    jitter = (0, 40, -60, 90, -20, 70, 0, 110)
    assert run(ConnBeacon(Config()), checkins(300, 8, jitter=jitter)) == []


def test_small_jitter_within_the_tolerance_still_counts():
    jitter = (0, 8, -6, 5, -9, 4)
    assert run(ConnBeacon(Config()), checkins(300, 6, jitter=jitter))


def test_delta_time_gives_exact_starts_between_polls():
    watch = ConnBeacon(Config())
    findings = []
    # polls every 60 s; each 120 s-spaced flow is seen once, 17 s after it started
    for i in range(6):
        start = 1000 + i * 120
        findings += watch.observe(snapshot(start + 17, [out(C2, 8443, sport=41000 + i, age=17)]))
    assert findings and findings[-1].evidence["intervals"] == [120.0] * 5


def test_one_long_lived_connection_is_not_a_beacon():
    polls = [(t, [out(C2, 443, sport=40000, age=t)]) for t in range(0, 3600, 10)]
    assert run(ConnBeacon(Config()), polls) == []


def test_ntp_every_1024_s_from_port_123_and_dns_are_quiet():
    ntp = checkins(1024, 8, dst="192.0.2.123", port=123, proto="udp", sport=123, lifetime=30)
    assert run(ConnBeacon(Config()), ntp) == []
    dns = checkins(60, 20, dst="198.51.100.53", port=53, proto="udp")
    assert run(ConnBeacon(Config()), dns) == []


def test_ntp_would_be_regular_without_the_ignore_list():
    """Proves the quiet above comes from the ignore list, not from missing the pattern."""
    ntp = checkins(1024, 8, dst="192.0.2.123", port=123, proto="udp", sport=123, lifetime=30)
    assert run(ConnBeacon(Config(ignore_services="")), ntp)


def test_ignored_destination_and_lan_destination_are_quiet():
    ddns = checkins(600, 8, dst="203.0.113.80", port=80)
    assert run(ConnBeacon(Config(ignore_destinations="203.0.113.80")), ddns) == []
    lan = checkins(300, 8, dst="192.168.1.50", port=8080)
    assert run(ConnBeacon(Config()), lan) == []


def test_two_connections_opened_together_are_one_check_in():
    watch = ConnBeacon(Config())
    findings = []
    for i in range(6):
        now = i * 300.0
        findings += watch.observe(snapshot(now, [out(C2, 443, sport=42000 + 2 * i),
                                                 out(C2, 443, sport=42001 + 2 * i)]))
    assert findings and findings[-1].evidence["intervals"] == [300.0] * 5


def test_chatty_client_below_the_minimum_interval_is_not_judged():
    assert run(ConnBeacon(Config()), checkins(10, 30, lifetime=1, poll=10)) == []


def test_state_is_bounded():
    watch = ConnBeacon(Config(max_destinations=16, max_flows=64))
    watch.observe(snapshot(1.0, [out("198.51.100.%d" % i, 443, sport=40000 + i)
                                 for i in range(1, 101)]))
    drops = watch.drops()
    assert drops["conn.beacon.flows"] == 36 and drops["conn.beacon.destinations"] == 84
