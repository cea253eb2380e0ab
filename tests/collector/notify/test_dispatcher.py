"""Notifications reach real receivers on loopback: a JSON webhook and an ntfy-style endpoint
(HTTP), and an SMTP server (mailto://). Given stored anomalies, one message per router and
burst arrives with the router, severity, summary, what to do and the dashboard link; a failing
receiver is retried alone; a receiver that hangs delays only its own notifications and drops
(counted) what its bounded queue cannot hold; and it never slows the collector's storing."""
import json
import subprocess
import sys
import time

import paho.mqtt.client as paho
import pytest

from collector_messages import anomaly, heartbeat, status, wire
from receivers import HttpReceiver, SmtpReceiver, free_port
from routerwatch_collector.catalogue import WHAT_TO_DO
from routerwatch_collector.notify import InvalidTarget, Notifier, Target
from routerwatch_collector.store import StoredAnomaly


def row(seq, device="rw-kitchen", kind="login.bruteforce", severity="high", summary=None):
    return StoredAnomaly(device=device, run="0123456789abcdef", seq=seq, time=0.0, kind=kind,
                         severity=severity, summary=summary or "anomaly %d" % seq, evidence={},
                         count=1, received_at=0.0, origin="agent")


def wait_until(condition, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


def test_a_burst_reaches_json_ntfy_and_mail_as_one_message_each():
    with HttpReceiver() as http, SmtpReceiver() as smtp:
        notifier = Notifier(
            [Target("json://127.0.0.1:%d/hook" % http.port),
             Target("ntfy://127.0.0.1:%d/routers" % http.port),
             Target("mailto://127.0.0.1:%d?from=rw@example.com&to=me@example.com" % smtp.port)],
            min_severity="high", dashboard_url="http://dash.example/d/{device}",
            group_wait=0.5, group_threshold=100)
        notifier.start()
        notifier.anomaly_stored(row(1, severity="medium"))        # below the minimum
        notifier.anomaly_stored(row(2))
        notifier.anomaly_stored(row(3, kind="conn.new_listener", severity="critical",
                                    summary="new listener on tcp/7777 by /tmp/.x"))
        try:
            requests = http.wait_for(2)
            mails = smtp.wait_for(1)
            time.sleep(1.0)          # nothing more may come for this burst
        finally:
            notifier.close()
    assert len(http.requests) == 2 and len(smtp.messages) == 1
    by_path = {r.path: json.loads(r.body) for r in requests}
    hook, ntfy = by_path["/hook"], by_path["/"]
    assert ntfy["topic"] == "routers"
    title = "routerwatch: 2 anomalies on rw-kitchen, up to critical"
    assert hook["title"] == ntfy["title"] == mails[0]["Subject"] == title
    assert hook["type"] == "failure"
    for body in (hook["message"], ntfy["message"],
                 mails[0].get_body(preferencelist=("plain", "html")).get_content()):
        assert "Router: rw-kitchen" in body and "Severity: critical" in body
        assert "critical conn.new_listener: new listener on tcp/7777 by /tmp/.x" in body
        assert "high login.bruteforce: anomaly 2" in body and "anomaly 1" not in body
        assert "Dashboard: http://dash.example/d/rw-kitchen" in body
    assert WHAT_TO_DO["conn.new_listener"] in hook["message"]
    assert notifier.counters["sent"] == 3 and notifier.counters["below_min_severity"] == 1


def test_a_failing_receiver_is_retried_alone():
    with HttpReceiver(status=500) as failing, HttpReceiver() as working:
        notifier = Notifier([Target("json://127.0.0.1:%d/" % failing.port),
                             Target("json://127.0.0.1:%d/" % working.port)],
                            group_wait=0.0, retry_delays=(0.2, 0.2))
        notifier.start()
        notifier.anomaly_stored(row(1))
        try:
            failing.wait_for(3)
            wait_until(lambda: notifier.counters["failed"] == 1, 10, "giving up")
        finally:
            notifier.close()
    assert len(failing.requests) == 3 and len(working.requests) == 1
    assert notifier.counters["retried"] == 2 and notifier.counters["sent"] == 1


def _sent_to(receiver):
    """The routers of the messages a receiver got, in the order they came."""
    return [line[len("Router: "):] for r in receiver.requests
            for line in json.loads(r.body)["message"].splitlines() if line.startswith("Router: ")]


def test_a_hanging_receiver_delays_only_its_own_notifications():
    """Two receivers accept and never answer; the third gets every notification, in order,
    while each hanging one still holds its first unanswered. Closing then waits a bounded
    time in all, not a timeout per receiver."""
    devices = ["rw-%02d" % n for n in range(10)]
    with HttpReceiver(hang=True) as dead, HttpReceiver(hang=True) as dead_too, \
            HttpReceiver() as alive:
        # Apprise would give up on a try after a minute: the hang outlasts this test
        notifier = Notifier([Target("json://127.0.0.1:%d/dead" % dead.port, timeout=60),
                             Target("json://127.0.0.1:%d/alive" % alive.port),
                             Target("json://127.0.0.1:%d/dead" % dead_too.port, timeout=60)],
                            group_wait=0.0, group_threshold=1, max_per_hour=100)
        notifier.start()
        try:
            notifier.anomaly_stored(row(1, device=devices[0]))
            assert dead.hanging.wait(30) and dead_too.hanging.wait(30)
            for device in devices[1:]:
                notifier.anomaly_stored(row(1, device=device))
            alive.wait_for(len(devices))
            assert _sent_to(alive) == devices
            # neither hanging receiver has answered its first message, nor been sent a second
            assert len(dead.requests) == len(dead_too.requests) == 1
            assert _sent_to(dead) == _sent_to(dead_too) == devices[:1]
            hanging_a, healthy, hanging_b = notifier.deliveries
            assert healthy.counters["sent"] == len(devices)
            assert hanging_a.counters["sent"] == hanging_a.counters["failed"] == 0
            assert hanging_a.waiting() == hanging_b.waiting() == len(devices)
            assert notifier.drops == {"intake": 0, "deliveries": 0}
        finally:
            started = time.monotonic()
            notifier.close(timeout=1.0)
            closing = time.monotonic() - started
    # both hanging receivers still held their requests (a minute each): close did not wait
    # for them, one after the other or at all
    assert closing < 30, closing


def test_a_hanging_receivers_queue_stays_bounded_and_its_drops_are_counted(caplog, tmp_path):
    """Many notifications for a receiver that hangs: it keeps `receiver_queue` of them (the one
    under way included), drops and counts the rest, and says so once, not once per message;
    the healthy receiver gets every one and drops none. A Prometheus scrape shows both."""
    from routerwatch_collector.ingest import Ingest
    from routerwatch_collector.metrics import CollectorMetrics
    from routerwatch_collector.store import open_store
    from test_metrics import scrape, value
    caplog.set_level("WARNING", logger="routerwatch_collector")
    count, capacity = 60, 5
    with HttpReceiver(hang=True) as dead, HttpReceiver() as alive:
        notifier = Notifier([Target("json://127.0.0.1:%d/dead" % dead.port, timeout=60),
                             Target("json://127.0.0.1:%d/alive" % alive.port)],
                            group_wait=0.0, group_threshold=1, max_per_hour=100,
                            receiver_queue=capacity)
        hanging, healthy = notifier.deliveries
        notifier.start()
        try:
            notifier.anomaly_stored(row(1, device="rw-000"))
            assert dead.hanging.wait(30)
            for n in range(1, count):
                # one at a time, each once the healthy receiver has the one before, so its own
                # queue of 5 never fills
                notifier.anomaly_stored(row(1, device="rw-%03d" % n))
                assert len(alive.wait_for(n + 1)) == n + 1
            assert hanging.waiting() == capacity and len(dead.requests) == 1
            assert hanging.counters["dropped"] == count - capacity
            assert healthy.counters["dropped"] == 0 and healthy.counters["sent"] == count
            assert notifier.drops == {"intake": 0, "deliveries": count - capacity}
            assert notifier.counters["messages"] == count
            store = open_store(str(tmp_path / "c.sqlite"))
            metrics = CollectorMetrics(Ingest(store), notifier=notifier)
            port = free_port()
            metrics.serve("127.0.0.1", port)
            try:
                samples = scrape(port)
            finally:
                metrics.stop()
                store.close()
        finally:
            notifier.close(timeout=0.5)
    name = "routerwatch_collector_notifications_%s"
    for receiver, sent, dropped, waiting in ((hanging, 0, count - capacity, capacity),
                                             (healthy, count, 0, 0)):
        label = {"receiver": receiver.target.name}
        assert value(samples, name % "sent_total", **label) == sent
        assert value(samples, name % "dropped_total", **label) == dropped
        assert value(samples, name % "waiting", **label) == waiting
        assert (name % "failed_total", tuple(label.items())) in samples
    assert samples[("routerwatch_collector_notification_rows_dropped_total", ())] == 0
    warnings = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert hanging.target.name in warnings[0] and alive.port != dead.port
    assert "dropped per receiver: %s %d" % (hanging.target.name, count - capacity) \
        in notifier.summary()


def test_the_intake_is_bounded_and_never_waits():
    notifier = Notifier([], intake_rows=10)      # not started: nothing takes rows out
    for seq in range(1, 1001):
        notifier.anomaly_stored(row(seq))
    assert notifier.counters["queued"] == 10 and notifier.drops["intake"] == 990


def test_urls_apprise_does_not_know_are_refused_and_credentials_not_shown():
    with pytest.raises(InvalidTarget) as refused:
        Target("nosuch://user:secret@host/path")
    assert "nosuch://" in str(refused.value)
    assert "secret" not in str(refused.value) and "host" not in str(refused.value)
    # the secret of a Telegram URL is its first part, where a host would stand
    telegram = Target("tgram://123456789:BOTTOKENabcdefghijklmnopqrstuvwxyz12345/4242")
    assert telegram.name.startswith("tgram://") and "BOTTOKEN" not in telegram.name
    mail = Target("mailtos://me:pw-secret@smtp.example?to=a@b.example")
    assert "pw-secret" not in mail.name and mail.name.startswith("mailtos://")


# --------------------------------------------------------------------------- the collector


@pytest.mark.slow
def test_collector_notifies_and_a_hanging_receiver_does_not_slow_storing(mosquitto_broker,
                                                                          tmp_path):
    db = tmp_path / "c.sqlite"
    with HttpReceiver(hang=True) as dead, HttpReceiver() as alive:
        log = open(tmp_path / "collector.log", "wb")
        collector = subprocess.Popen(
            [sys.executable, "-m", "routerwatch_collector.cli", "run",
             "--port", str(mosquitto_broker.port), "--db", str(db), "--missed-heartbeats", "1000",
             "--notify", "json://127.0.0.1:%d/dead" % dead.port,
             "--notify", "json://127.0.0.1:%d/alive" % alive.port,
             "--notify-group-wait", "0.5", "--dashboard-url", "http://dash.example/"],
            stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="fake-router")
        client.connect("127.0.0.1", mosquitto_broker.port)
        client.loop_start()
        try:
            wait_until(lambda: b"subscribed" in (tmp_path / "collector.log").read_bytes(),
                       30, "the collector to subscribe")
            for message in (status("online", 1), heartbeat(1), anomaly(1)):
                client.publish(*wire(message), qos=1).wait_for_publish(5)
            assert dead.hanging.wait(30), "the first message never reached the dead receiver"
            # the dead receiver holds its first message unanswered; the live one has its own
            assert alive.wait_for(1) and len(dead.requests) == 1 and dead.hanging.is_set()
            # the collector keeps storing
            for seq in range(2, 302):
                client.publish(*wire(anomaly(seq, severity="critical")), qos=1)
            client.publish(*wire(status("offline", 0)), qos=1).wait_for_publish(5)
            stored = wait_until(lambda: _count(db, "anomalies") == 302, 60,
                                "every anomaly and agent.silent stored")
            assert stored and dead.hanging.is_set()
            # the live receiver gets the critical burst too (at most --notify-max-per-hour
            # messages, 6: the rest of the burst waits for the rate limit)
            wait_until(lambda: any("critical login.bruteforce" in json.loads(r.body)["message"]
                                   for r in alive.requests), 60, "the critical burst")
            # stopping sends what waits, agent.silent included, to the live receiver while the
            # dead one still holds its first request
            collector.terminate()
            assert collector.wait(30) == 0
            assert dead.hanging.is_set() and not dead._release.is_set()
        finally:
            client.loop_stop()
            dead._release.set()
            if collector.poll() is None:
                collector.kill()
        log.close()
    bodies = [json.loads(r.body)["message"] for r in alive.requests]
    assert "high login.bruteforce" in bodies[0] and "Dashboard: http://dash.example/" in bodies[0]
    later = "\n".join(bodies[1:])
    assert "critical login.bruteforce" in later and "agent.silent" in later
    assert WHAT_TO_DO["agent.silent"] in later
    assert len(alive.requests) <= 7      # grouped: 302 anomalies, 6 messages an hour and the last


def test_a_fleet_detection_is_notified_like_a_routers_anomaly(tmp_path):
    """fleet.* anomalies are the collector's own: stored in the flush of the router anomalies
    that raised them, and handed to --notify by the same hook."""
    from routerwatch_collector.cli import _stored_hook
    from routerwatch_collector.ingest import Ingest
    from routerwatch_collector.store import open_store
    attacker = "45.155.205.17"        # global: documentation ranges make no campaign
    store = open_store(str(tmp_path / "c.sqlite"))
    ingest = Ingest(store)
    with HttpReceiver() as http:
        notifier = Notifier([Target("json://127.0.0.1:%d/hook" % http.port)], group_wait=0.2,
                            group_threshold=100, max_per_hour=100)
        hook = _stored_hook(False, notifier)
        notifier.start()
        try:
            for n in range(5):
                ingest.handle(*wire(anomaly(1, device="rw-site-%02d" % n, source=attacker)),
                              now=1764000000.0)
            stored = ingest.flush(1764000000.0)
            for row in stored:
                hook(row)
            requests = http.wait_for(6)
            time.sleep(0.5)          # nothing more may come
        finally:
            notifier.close()
            store.close()
    assert sorted(row.kind for row in stored) == ["fleet.campaign"] + ["login.bruteforce"] * 5
    bodies = [json.loads(r.body)["message"] for r in http.requests]
    assert len(bodies) == 6            # one per router, one for the fleet
    (campaign,) = [b for b in bodies if "fleet.campaign" in b]
    assert "high fleet.campaign" in campaign and attacker in campaign
    assert WHAT_TO_DO["fleet.campaign"] in campaign


def test_a_fleet_detection_names_itself_and_its_routers_and_links_to_a_dashboard_page(tmp_path):
    """A fleet.* anomaly is stored under the device id "fleet", which is no router: its message
    says it is a fleet detection, names the routers involved, and links to the dashboard's
    fleet page (there is no /devices/fleet page), which the real dashboard serves."""
    from starlette.testclient import TestClient
    from routerwatch_collector.cli import _stored_hook
    from routerwatch_collector.ingest import Ingest
    from routerwatch_collector.store import open_store
    from routerwatch_collector.web.app import create_app
    attacker = "45.155.205.17"
    db = str(tmp_path / "c.sqlite")
    store = open_store(db)
    ingest = Ingest(store)
    routers = ["rw-site-%02d" % n for n in range(5)]
    with HttpReceiver() as http:
        notifier = Notifier([Target("json://127.0.0.1:%d/hook" % http.port)], group_wait=0.2,
                            group_threshold=100, max_per_hour=100,
                            dashboard_url="http://testserver/devices/{device}")
        hook = _stored_hook(False, notifier)
        notifier.start()
        try:
            for device in routers:
                ingest.handle(*wire(anomaly(1, device=device, source=attacker)),
                              now=1764000000.0)
            for row in ingest.flush(1764000000.0):
                hook(row)
            http.wait_for(6)
            time.sleep(0.5)
        finally:
            notifier.close()
            store.close()
    messages = [json.loads(r.body) for r in http.requests]
    (fleet,) = [m for m in messages if "fleet.campaign" in m["message"]]
    body = fleet["message"]
    assert "Router: fleet" not in body and fleet["title"].startswith(
        "routerwatch: high fleet detection: ")
    assert body.startswith("Fleet detection")
    (named,) = [line for line in body.splitlines() if line.startswith("Routers: ")]
    assert sorted(named[len("Routers: "):].split(", ")) == routers
    links = {m["message"].rsplit("Dashboard: ", 1)[1] for m in messages}
    assert "http://testserver/" in links and "http://testserver/devices/fleet" not in links
    with TestClient(create_app(lambda: open_store(db, create=False, read_only=True))) as client:
        for link in links:             # every message links to a page the dashboard has
            page = client.get(link)
            assert page.status_code == 200, link
        assert client.get("/devices/fleet").status_code == 404


def _count(db, table):
    import sqlite3
    if not db.exists():
        return 0
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        return con.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_the_command_line_refuses_an_unknown_url_before_opening_anything(tmp_path, capsys):
    from routerwatch_collector.cli import main
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--db", str(tmp_path / "c.sqlite"), "--notify",
              "nosuch://user:secret@host/x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Apprise does not understand the URL nosuch://" in err and "secret" not in err
    assert not (tmp_path / "c.sqlite").exists()
