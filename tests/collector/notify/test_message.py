"""Given a group of anomalies, the message says which router, how bad, what happened, what to do
(the catalogue's text), and links to the dashboard; router-chosen text cannot reshape it."""
from routerwatch_collector.catalogue import GENERIC_WHAT_TO_DO, WHAT_TO_DO
from routerwatch_collector.notify.grouping import MAX_LISTED, Group
from routerwatch_collector.notify.message import MAX_BODY, dashboard_link, render
from routerwatch_collector.store import StoredAnomaly


def row(kind="login.bruteforce", severity="high", summary="12 failed logins from 203.0.113.7",
        count=1, device="rw-kitchen"):
    return StoredAnomaly(device=device, run="0123456789abcdef", seq=1, time=0.0, kind=kind,
                         severity=severity, summary=summary, evidence={}, count=count,
                         received_at=0.0, origin="agent")


def group_of(*rows):
    group = Group(device=rows[0].device, opened=0.0)
    for r in rows:
        group.add(r)
    return group


def test_one_anomaly_names_router_severity_summary_advice_and_link():
    message = render(group_of(row()), "https://dash.example/devices/{device}")
    assert message.title == ("routerwatch: high on rw-kitchen: 12 failed logins from "
                             "203.0.113.7")
    assert "Router: rw-kitchen\nSeverity: high\n" in message.body
    assert "- high login.bruteforce: 12 failed logins from 203.0.113.7" in message.body
    assert "- login.bruteforce: " + WHAT_TO_DO["login.bruteforce"] in message.body
    assert message.body.endswith("Dashboard: https://dash.example/devices/rw-kitchen")
    assert (message.device, message.severity, message.count) == ("rw-kitchen", "high", 1)


def test_a_burst_lists_the_worst_first_with_each_kinds_advice_once():
    message = render(group_of(row(), row(count=3),
                              row(kind="conn.new_listener", severity="critical",
                                  summary="new listener on 7777")))
    assert message.title == "routerwatch: 5 anomalies on rw-kitchen, up to critical"
    lines = message.body.splitlines()
    assert lines[3] == "- critical conn.new_listener: new listener on 7777"
    assert "- high login.bruteforce (x3): 12 failed logins from 203.0.113.7" in lines
    assert message.body.count(WHAT_TO_DO["login.bruteforce"]) == 1
    assert WHAT_TO_DO["conn.new_listener"] in message.body
    assert "Dashboard" not in message.body


def test_more_than_the_listed_are_counted_by_kind():
    rows = [row() for _ in range(MAX_LISTED)] + [row(kind="conn.scan")] * 5
    body = render(group_of(*rows)).body
    assert "- high conn.scan: 12 failed logins" in body     # every kind is named
    assert "- and 4 more: conn.scan 5, login.bruteforce %d" % MAX_LISTED in body


def test_collector_kinds_and_unknown_kinds_get_advice():
    body = render(group_of(row(kind="agent.silent", summary="agent went offline"))).body
    assert WHAT_TO_DO["agent.silent"] in body
    body = render(group_of(row(kind="fleet.someday"))).body
    assert GENERIC_WHAT_TO_DO in body


def test_router_text_is_escaped_and_capped():
    hostile = "\x1b]8;;http://evil\x07click\u202e" + "A" * 5000
    message = render(group_of(*[row(summary=hostile, device="rw-x") for _ in range(40)]))
    assert "\x1b" not in message.body and "\u202e" not in message.body
    assert "\\x1b" in message.body and len(message.body) <= MAX_BODY
    title = render(group_of(row(summary=hostile))).title
    assert "\\u202e" in title and "\x1b" not in title and len(title) < 200


def test_a_fleet_detection_is_not_a_router_and_links_to_the_fleet_page():
    campaign = StoredAnomaly(
        device="fleet", run="0123456789abcdef", seq=1, time=0.0, kind="fleet.campaign",
        severity="high", summary="45.155.205.17 attacked 30 routers",
        evidence={"devices": 30, "device_list": ["rw-%02d" % n for n in range(25)]}, count=30,
        received_at=0.0, origin="collector")
    message = render(group_of(campaign), "https://dash.example/rw/devices/{device}")
    assert message.title == "routerwatch: high fleet detection: 45.155.205.17 attacked 30 routers"
    assert "Router:" not in message.body and "(x30)" not in message.body
    assert message.body.startswith("Fleet detection")
    assert "Routers: rw-00, rw-01" in message.body and "rw-19 and 10 more" in message.body
    assert message.body.endswith("Dashboard: https://dash.example/rw/")
    assert dashboard_link("https://dash.example/?router={device}", "fleet") == \
        "https://dash.example/"
    assert dashboard_link("https://dash.example/overview", "fleet") == \
        "https://dash.example/overview"
    assert dashboard_link("https://dash.example/devices/{device}", "rw-1") == \
        "https://dash.example/devices/rw-1"
