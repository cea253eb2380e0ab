"""The fleet page's "Open fleet detections" panel and /api/fleet/detections, on a store the real
Ingest and fleet detections filled (each backend): the campaign, the implant and the firmware
outlier they raised are listed, lists are bounded with their totals beside them, and whatever a
router put in its inventory or its evidence is shown as text."""
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fleet"))    # fleet_messages

from fleet_messages import (T0, device_name, firmware_inventory, login_anomaly,  # noqa: E402
                            program_anomaly)
from routerwatch.contract import encode  # noqa: E402
from routerwatch_collector.ingest import Ingest  # noqa: E402
from routerwatch_collector.store import open_store  # noqa: E402
from routerwatch_collector.web.views import FLEET_DETECTIONS_LISTED  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SOURCE = "45.155.205.17"
DIGEST = "5e" * 32
USUAL, ODD = "a" * 64, "b" * 64
HOSTILE_BOARD = '<script>alert("board")</script><img src=x onerror=alert(1)>&amp;'
HOSTILE_RELEASE = "23.05.3\"'><b>bold</b>"
HOSTILE_SOURCE = "<script>alert('source')</script>"
NOW = T0 + 600.0


def feed(store, messages, now):
    ingest = Ingest(store)
    for m in messages:
        ingest.handle("routerwatch/%s/%s" % (m.device, m.type), encode(m), now)
    ingest.flush(now)


def fill(url, board="tplink,archer-c7-v5", release="23.05.3"):
    store = open_store(url)
    try:
        feed(store, [login_anomaly(device_name(n), 1, SOURCE) for n in range(6)], T0 + 60)
        # not an address: no fleet detection may take it, and the page never shows it raw
        feed(store, [login_anomaly(device_name(n), 2, HOSTILE_SOURCE) for n in range(6)],
             T0 + 61)
        feed(store, [program_anomaly(device_name(n), 3, DIGEST) for n in range(3)], T0 + 62)
        feed(store, [firmware_inventory(device_name(n), ODD if n == 4 else USUAL, board=board,
                                        release=release) for n in range(25)], T0 + 63)
    finally:
        store.close()


class Page(HTMLParser):
    """The text of every table cell by table id, the links, and every element's tag."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.links, self.tables = [], [], {}
        self._table, self._row, self._cell = None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "table":
            self._table = attrs.get("id")
            self.tables.setdefault(self._table, [])
        elif tag == "tr" and self._table:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = ""
        elif tag == "a":
            self.links.append(attrs.get("href"))

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:
                self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def parsed(html):
    page = Page()
    page.feed(html)
    return page


def test_the_api_lists_what_the_fleet_detections_raised(store_url, client_for):
    fill(store_url)
    client = client_for(store_url, now=NOW)
    detections = client.get("/api/fleet/detections").json()
    (campaign,) = [c for c in detections["campaigns"] if c["source"] == SOURCE]
    assert campaign["devices"] == 6 and campaign["kinds"] == ["login.bruteforce"]
    assert campaign["addresses"] is None and campaign["last"] >= T0 + 60
    assert not any("script" in c["source"] for c in detections["campaigns"])
    assert detections["campaigns_total"] == len(detections["campaigns"])
    assert detections["implants"] == [{"sha256": DIGEST, "short": DIGEST[:12], "devices": 3,
                                       "first": T0 + 62, "last": T0 + 62}]
    assert detections["implants_total"] == 1
    (outlier,) = detections["firmware_outliers"]
    assert outlier["device"] == device_name(4) and outlier["firmware_hash"] == ODD
    assert outlier["usual_hash"] == USUAL and outlier["group_devices"] == 25
    assert outlier["board"] == "tplink,archer-c7-v5" and outlier["release"] == "23.05.3"
    assert detections["firmware_outliers_total"] == 1
    # the fleet API carries the same
    assert client.get("/api/fleet").json()["detections"] == detections


def test_the_fleet_page_shows_the_panel(store_url, client_for):
    fill(store_url)
    page = parsed(client_for(store_url, now=NOW).get("/").text)
    campaigns = {row[0]: row for row in page.tables["fleet-campaigns"]}
    assert campaigns[SOURCE][1:3] == ["6", "login.bruteforce"]
    assert campaigns[SOURCE][3].startswith("20")     # an ISO time
    assert page.tables["fleet-implants"] == [[DIGEST[:12] + "…", "3",
                                              page.tables["fleet-implants"][0][2]]]
    (outlier,) = page.tables["fleet-firmware-outliers"]
    assert outlier[0] == device_name(4) and outlier[1] == "tplink,archer-c7-v5"
    assert outlier[3].startswith(USUAL[:12]) and "96.0 % of 25" in outlier[3]
    assert outlier[4] == ODD[:12] + "…"
    assert "/devices/%s" % device_name(4) in page.links


def test_an_empty_fleet_shows_none(store_url, client_for):
    open_store(store_url).close()
    client = client_for(store_url, now=NOW)
    page = parsed(client.get("/").text)
    for table in ("fleet-campaigns", "fleet-implants", "fleet-firmware-outliers"):
        assert page.tables[table] == [["none"]]
    assert client.get("/api/fleet/detections").json() == {
        "campaigns": [], "campaigns_total": 0, "implants": [], "implants_total": 0,
        "firmware_outliers": [], "firmware_outliers_total": 0}


def test_hostile_inventory_and_evidence_text_is_shown_as_text(store_url, client_for):
    fill(store_url, board=HOSTILE_BOARD, release=HOSTILE_RELEASE)
    client = client_for(store_url, now=NOW)
    response = client.get("/")
    assert response.status_code == 200
    html = response.text
    for raw in (HOSTILE_BOARD, HOSTILE_RELEASE, HOSTILE_SOURCE, "<script", "<img", "<b>"):
        assert raw not in html
    page = parsed(html)
    assert not {"script", "img", "b"} & set(page.tags)
    (outlier,) = page.tables["fleet-firmware-outliers"]
    # the exact text, escaped by the template (and by the API's JSON)
    assert outlier[1] == HOSTILE_BOARD
    assert outlier[2].startswith(HOSTILE_RELEASE)
    api = client.get("/api/fleet/detections").json()
    assert api["firmware_outliers"][0]["board"] == HOSTILE_BOARD
    assert all(c["source"] != HOSTILE_SOURCE for c in api["campaigns"])


def test_each_list_is_bounded_and_counted(store_url, client_for):
    store = open_store(store_url)
    try:
        # more campaign sources than are listed: each seen by 5 devices
        sources = ["45.155.%d.17" % n for n in range(FLEET_DETECTIONS_LISTED + 3)]
        feed(store, [login_anomaly(device_name(d), 10 + s, source)
                     for s, source in enumerate(sources) for d in range(5)], T0 + 60)
    finally:
        store.close()
    client = client_for(store_url, now=NOW)
    detections = client.get("/api/fleet/detections").json()
    assert len(detections["campaigns"]) == FLEET_DETECTIONS_LISTED
    assert detections["campaigns_total"] == len(sources)
    page = parsed(client.get("/").text)
    assert len(page.tables["fleet-campaigns"]) == FLEET_DETECTIONS_LISTED
    assert "%d open, %d shown" % (len(sources), FLEET_DETECTIONS_LISTED) in \
        client.get("/").text
