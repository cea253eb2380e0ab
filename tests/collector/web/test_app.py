"""The dashboard's pages and JSON API on a store filled by Ingest: what each shows, that filters
stay in the URL, that bad parameters are a 400 naming them, and the security headers."""
import re

import pytest

from collector_messages import DEVICE, T0
from routerwatch_collector.catalogue import what_to_do

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CSP_PARTS = ("default-src 'self'", "script-src 'self'", "object-src 'none'",
             "frame-ancestors 'none'", "base-uri 'none'")


def anomaly_id(client, kind):
    (row,) = [a for a in client.get("/api/anomalies").json()["anomalies"] if a["kind"] == kind]
    return row["id"]


def test_the_fleet_api_counts_devices_and_anomalies_by_severity_kind_and_device(client):
    fleet = client.get("/api/fleet").json()
    assert fleet["devices"]["online"] == 2 and fleet["devices"]["total"] == 2
    histogram = fleet["histogram"]
    totals = {}
    for bucket in histogram["buckets"]:
        for severity, n in bucket["counts"].items():
            totals[severity] = totals.get(severity, 0) + n
    assert totals == {"info": 0, "low": 0, "medium": 1, "high": 2, "critical": 1}
    assert histogram["bucket_seconds"] * len(histogram["buckets"]) >= 86400
    kinds = {k["kind"]: (k["count"], k["worst"]) for k in fleet["top_kinds"]}
    assert kinds == {"login.bruteforce": (1, "medium"), "conn.new_listener": (1, "critical"),
                     "login.spray": (1, "high"), "integrity.exec_from_tmp": (1, "high")}
    # devices ranked by their high and critical anomalies
    assert fleet["top_devices"][0] == {"device": DEVICE, "count": 2, "worst": "critical"}
    assert [a["kind"] for a in fleet["newest_severe"]] == [
        "integrity.exec_from_tmp", "login.spray", "conn.new_listener"]


def test_filters_narrow_the_fleet_and_an_older_range_is_empty(client):
    fleet = client.get("/api/fleet", params={"kind": "login.*", "severity": "high"}).json()
    assert [k["kind"] for k in fleet["top_kinds"]] == ["login.spray"]
    fleet = client.get("/api/fleet", params={"device": "rw-other"}).json()
    assert [k["kind"] for k in fleet["top_kinds"]] == ["integrity.exec_from_tmp"]
    old = client.get("/api/fleet", params={"since": "2025-01-01T00:00:00Z",
                                           "until": "2025-01-02T00:00:00Z"}).json()
    assert old["top_kinds"] == [] and old["newest_severe"] == []
    assert old["devices"]["total"] == 2          # device counts are now, not in the range


def test_the_fleet_page_shows_counts_chart_tables_and_keeps_filters_in_links(client):
    page = client.get("/", params={"kind": "login.*", "since": "2h"})
    assert page.status_code == 200
    html = page.text
    assert re.search(r'<span class="n">2</span> online', html)
    assert '<svg class="chart"' in html and '<rect class="sev-high"' in html
    assert 'value="login.*"' in html and 'value="2h"' in html
    # a top-kind link keeps the time range and swaps the kind
    assert "/anomalies?kind=login.spray&amp;since=2h" in html
    assert "<script" not in html


def test_the_anomaly_list_pages_with_before(client):
    first = client.get("/api/anomalies", params={"limit": 2}).json()
    assert len(first["anomalies"]) == 2 and first["next_before"] == first["anomalies"][-1]["id"]
    rest = client.get("/api/anomalies", params={"limit": 2,
                                                "before": first["next_before"]}).json()
    assert len(rest["anomalies"]) == 2 and rest["next_before"] == rest["anomalies"][-1]["id"]
    seen = [a["id"] for a in first["anomalies"] + rest["anomalies"]]
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 4


def test_the_device_page_shows_facts_health_charts_gaps_evidence_and_advice(client):
    data = client.get("/api/devices/" + DEVICE).json()
    assert data["device"]["firmware"]["model"] == "TP-Link Archer C7 v5"
    assert len(data["heartbeats"]) == 5
    assert [(g["type"], g["first_seq"], g["last_seq"]) for g in data["gaps"]] == [
        ("anomaly", 3, 3)]
    assert data["advice"]["conn.new_listener"] == what_to_do("conn.new_listener")
    html = client.get("/devices/" + DEVICE).text
    assert "TP-Link Archer C7 v5" in html and "23.05.3" in html
    assert html.count('<svg class="spark"') == 5
    assert "&#34;port&#34;: 7777" in html                # evidence, pretty-printed and escaped
    assert '<pre class="evidence">{\n  &#34;' in html
    assert "<code>/proc/&lt;pid&gt;/exe</code>" in html  # the advice with its code spans
    assert "3–3" in html                                  # the gap


def test_the_anomaly_page_shows_evidence_advice_incident_and_related(client):
    ident = anomaly_id(client, "conn.new_listener")
    data = client.get("/api/anomalies/%d" % ident).json()
    assert data["anomaly"]["evidence"]["port"] == 7777
    assert data["what_to_do"] == what_to_do("conn.new_listener")
    assert data["incident"]["reports"] == 1 and data["incident"]["count"] == 1
    assert {a["kind"] for a in data["related"]} == {"login.bruteforce", "login.spray"}
    html = client.get("/anomalies/%d" % ident).text
    assert "conn.new_listener" in html and "Same device within an hour" in html


def test_the_device_list_filters_by_status_and_pages(client):
    data = client.get("/api/devices", params={"limit": 1}).json()
    assert [d["device"] for d in data["devices"]] == [DEVICE]
    nxt = client.get("/api/devices", params={"limit": 1, "after": data["next_after"]}).json()
    assert [d["device"] for d in nxt["devices"]] == ["rw-other"]
    assert client.get("/api/devices", params={"status": "silent"}).json()["devices"] == []
    assert client.get("/api/devices", params={"prefix": "rw-o"}).json()["devices"][0][
        "device"] == "rw-other"


@pytest.mark.parametrize("url, named", [
    ("/api/anomalies?since=yesterday", "since"),
    ("/api/anomalies?severity=urgent", "severity"),
    ("/api/anomalies?kind=login.%25", "kind"),
    ("/api/anomalies?device=../../etc", "device"),
    ("/api/anomalies?limit=100000", "limit"),
    ("/api/anomalies?limit=1&limit=2", "limit"),
    ("/api/anomalies?since=1h&until=2h", "until"),
    ("/api/anomalies?since=2020-01-01&until=2026-01-01", "366 days"),
    ("/api/devices?status=pwned", "status"),
    ("/api/fleet?before=-1", "before"),
])
def test_a_bad_parameter_is_a_400_that_names_it(client, url, named):
    response = client.get(url)
    assert response.status_code == 400
    assert named in response.json()["error"]


def test_unknown_things_are_404_in_json_under_api_and_a_page_elsewhere(client):
    assert client.get("/api/devices/rw-nobody").status_code == 404
    assert client.get("/api/anomalies/99999999").json() == {"error": "no anomaly 99999999"}
    assert client.get("/anomalies/abc").status_code == 404
    page = client.get("/no/such/page")
    assert page.status_code == 404 and "<h1>404</h1>" in page.text


def test_it_is_read_only(client):
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)("/api/anomalies").status_code == 405


def test_every_response_carries_the_security_headers(client):
    for url in ("/", "/api/fleet", "/static/style.css", "/nope", "/api/anomalies?since=x"):
        headers = client.get(url).headers
        for part in CSP_PARTS:
            assert part in headers["content-security-policy"], url
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"


def test_an_empty_store_renders_every_page(tmp_path, client_for):
    from routerwatch_collector.store import open_store
    open_store(tmp_path / "empty.sqlite").close()
    client = client_for(tmp_path / "empty.sqlite")
    for url in ("/", "/devices", "/anomalies", "/api/fleet"):
        assert client.get(url).status_code == 200, url
    assert client.get("/devices/" + DEVICE).status_code == 404


def test_the_dashboard_cannot_write_to_the_store(db):
    from routerwatch_collector.store import open_store
    store = open_store(db, create=False, read_only=True)
    with pytest.raises(Exception, match="(?i)read.only|readonly|query_only|attempt to write"):
        store.record_rejected("topic", 1, T0)
    store.close()
    store = open_store(db, create=False)
    assert store.rejected() == {}
    store.close()


def test_a_store_that_fails_is_a_503_and_the_next_request_opens_a_new_one(db, client_for):
    from starlette.testclient import TestClient
    from routerwatch_collector.store import open_store
    from routerwatch_collector.web.app import create_app
    opened = []

    def factory():
        store = open_store(db, create=False, read_only=True)
        opened.append(store)
        if len(opened) == 1:
            store.close()          # the first connection is broken
        return store

    with TestClient(create_app(factory, clock=lambda: T0 + 3600)) as client:
        broken = client.get("/api/fleet")
        assert broken.status_code == 503 and "try again" in broken.json()["error"]
        assert client.get("/").status_code == 200
    assert len(opened) == 2
