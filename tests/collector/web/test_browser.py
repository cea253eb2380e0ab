"""The dashboard in a real browser (Debian's chromium, headless, driven by Playwright), against
a collector fed through a real mosquitto by a real agent watching the attacked router tree, and
by a malicious router that sends hostile strings.

Given the attacked router's anomalies and a login attack in its log, when the fleet, device and
anomaly pages load, then they show the counts, kinds, evidence and advice, and screenshots are
saved (set ROUTERWATCH_SCREENSHOTS=DIR to keep them, e.g. docs/). Given HTML, script tags, bidi
overrides, control characters and a 64 KiB string from a router, then the DOM shows them as text,
no script runs, and the oversized message is rejected and counted.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from broker import MosquittoBroker, find_mosquitto, free_port
from fixtures.build_tree import build_tree

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "demo"))
import attack_replay  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
IN_CI = os.environ.get("CI") == "true"
ATTACKED = "rw-attacked-1"
HOSTILE = "rw-hostile-1"
# kinds the agent reports for tests/fixtures/router-attacked plus the replayed login attack
ATTACKED_KINDS = {"integrity.rom_shadowed", "integrity.package_mismatch",
                  "integrity.exec_from_tmp", "integrity.deleted_exe", "conn.raw_socket",
                  "login.bruteforce", "login.success_after_failures"}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic"]

# what a malicious router puts in its strings; each must reach the page as visible text
SCRIPT = "<script>window.__pwned = 1</script>"
IMG = '<img src=x onerror="window.__pwned = 2">'
BREAKOUT = '"><svg onload="window.__pwned = 3">'
TEMPLATE = "{{ 7 * 7 }}{% raw %}"
RLO = "invoice\u202egnp.exe"
CONTROL = "bell\x07 esc\x1b[31mred\x1b[0m del\x7f"
LONG = "A" * 1000


def _missing_tool_reason():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (requirements-dev.txt)"
    if not CHROMIUM:
        return "chromium is not installed (ci/install-system-packages.sh installs it)"
    if not find_mosquitto():
        return "mosquitto is not installed"
    return None


REASON = _missing_tool_reason()
if REASON and IN_CI:
    raise RuntimeError("the browser tests must run in CI: " + REASON)
pytestmark = [pytest.mark.skipif(REASON is not None, reason=REASON or ""), pytest.mark.slow]


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))


def get_json(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


def hostile_messages():
    from routerwatch.contract import Anomaly, Heartbeat, Inventory, Status, encode
    run = "feedfacecafebeef"
    now = time.time()
    messages = [
        Status(device=HOSTILE, run=run, seq=1, time=now, state="online"),
        Inventory(device=HOSTILE, run=run, seq=1, time=now, agent_version=TEMPLATE,
                  firmware={"DISTRIB_DESCRIPTION": SCRIPT, "model": RLO,
                            "board_name": BREAKOUT, "kernel": CONTROL},
                  firmware_hash="", baseline_hash="", package_manager=IMG),
        Heartbeat(device=HOSTILE, run=run, seq=1, time=now, interval=600, uptime=1,
                  rss_kb=1, cpu_percent=0.0, spool_depth=0, counters={"lines": 1},
                  drops={"source_errors": 0}),
        Anomaly(device=HOSTILE, run=run, seq=1, time=now, kind="login.bruteforce",
                severity="critical", summary=SCRIPT + " " + RLO + " " + CONTROL,
                evidence={"user": IMG, "path": BREAKOUT, "template": TEMPLATE, "rlo": RLO,
                          "control": CONTROL, "long": LONG, SCRIPT[:60]: "key"}),
        Anomaly(device=HOSTILE, run=run, seq=2, time=now, kind="conn.new_listener",
                severity="high", summary=IMG + TEMPLATE, evidence={"exe": SCRIPT}),
    ]
    out = [("routerwatch/%s/%s" % (m.device, m.type), encode(m), m.type == "inventory")
           for m in messages]
    # 64 KiB of attacker text: over the contract's size, rejected and counted, never shown
    huge = json.dumps({"v": 1, "type": "anomaly", "device": HOSTILE, "run": run, "seq": 3,
                       "time": now, "kind": "login.bruteforce", "severity": "high",
                       "summary": "<b>" * 21846, "evidence": {}, "count": 1})
    assert len(huge) > 64 * 1024
    out.append(("routerwatch/%s/anomaly" % HOSTILE, huge.encode(), False))
    return out


def publish(broker, messages):
    from routerwatch.sinks.mqtt import new_client
    client = new_client("malicious-router", "3.1.1", clean=True)
    client.connect(broker.host, broker.port, 30)
    client.loop_start()
    try:
        for topic, payload, retain in messages:
            client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """A broker, `collector run --serve`, the agent on the attacked tree, the attack replayed
    and the hostile router's messages sent: yields the dashboard's base URL."""
    work = tmp_path_factory.mktemp("fleet")
    broker = MosquittoBroker(work / "mosquitto").start()
    tree = build_tree("router-attacked", work / "attacked")
    db, web_port = work / "collector.sqlite", free_port()
    base = "http://127.0.0.1:%d" % web_port
    processes = []
    logs = []

    def start(argv, name):
        log = open(work / (name + ".log"), "ab")
        logs.append(work / (name + ".log"))
        try:
            processes.append(subprocess.Popen(argv, stdout=log, stderr=log,
                                              stdin=subprocess.DEVNULL))
        finally:
            log.close()

    try:
        start([sys.executable, "-m", "routerwatch_collector.cli", "run", "--port",
               str(broker.port), "--db", str(db), "--serve", "--listen",
               "127.0.0.1:%d" % web_port, "--heartbeat-sample-spacing", "1"], "collector")
        wait_until(lambda: get_json(base + "/api/health"), 30, "the dashboard")
        state = work / "agent-state"
        state.mkdir()
        start([str(Path(sys.executable).parent / "routerwatch-agent"), "--root", str(tree),
               "--log-file", str(tree / "var/log/messages"),
               "--set", "mqtt.host=127.0.0.1", "--set", "mqtt.port=%d" % broker.port,
               "--set", "device_id=" + ATTACKED, "--set", "state_dir=%s" % state,
               "--set", "run_dir=%s" % state, "--set", "intervals.heartbeat=5"], "agent")
        wait_until(lambda: (get_json(base + "/api/devices/" + ATTACKED) or {}).get("device"),
                   60, "the agent's first messages")
        time.sleep(1.0)                       # the agent follows the log from its end
        attack_replay.replay(str(tree / "var/log/messages"), duration=0)
        publish(broker, hostile_messages())

        def stored_kinds():
            data = get_json(base + "/api/anomalies?limit=500&device=" + ATTACKED) or {}
            return {a["kind"] for a in data.get("anomalies", [])}
        wait_until(lambda: ATTACKED_KINDS <= stored_kinds(), 90,
                   "the attacked router's anomalies")
        wait_until(lambda: len((get_json(base + "/api/anomalies?device=" + HOSTILE) or {})
                               .get("anomalies", [])) == 2, 30, "the hostile router's anomalies")
        # a few heartbeats for the device page's charts
        wait_until(lambda: len((get_json(base + "/api/devices/" + ATTACKED) or {})
                               .get("heartbeats", [])) >= 3, 60, "three heartbeats")
        yield {"base": base, "db": db, "work": work}
    except BaseException:
        for log in logs:
            print("---- %s\n%s" % (log.name, log.read_text(errors="replace")[-4000:]))
        raise
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        broker.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, java_script_enabled=True)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    page.problems = []
    page.on("pageerror", lambda exc: page.problems.append(str(exc)))
    page.on("console", lambda msg: page.problems.append(msg.text)
            if msg.type == "error" else None)
    yield page
    page.close()


def screenshot(page, name, work):
    path = work / name
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 1000 and height >= 600, (width, height)
    keep = os.environ.get("ROUTERWATCH_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path


def no_script_ran(page):
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('script').length") == 0
    assert page.evaluate(
        "document.querySelectorAll('[onerror],[onload],[onclick],img,iframe,object').length") == 0
    # the only SVGs are the charts this server drew
    assert page.evaluate("[...document.querySelectorAll('svg')].every("
                         "s => s.classList.contains('chart') || s.classList.contains('spark'))")


def test_the_fleet_page(fleet, page):
    response = page.goto(fleet["base"] + "/")
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    counts = page.inner_text("#device-counts")
    assert "2 online" in counts.replace("\n", " ") or "2\nonline" in counts
    kinds = page.inner_text("#top-kinds")
    for kind in ("integrity.rom_shadowed", "login.bruteforce", "conn.raw_socket"):
        assert kind in kinds
    assert ATTACKED in page.inner_text("#top-devices")
    assert page.locator("svg.chart rect.sev-critical").count() >= 1
    assert page.locator("svg.chart rect.sev-high").count() >= 1
    newest = page.inner_text("#newest-severe")
    assert "integrity.deleted_exe" in newest and SCRIPT in newest
    assert "oversized" in page.inner_text("#rejected")
    # two routers raise no fleet detection: the panel is there and says so
    assert "Open fleet detections" in page.inner_text("#fleet-detections")
    for table in ("#fleet-campaigns", "#fleet-implants", "#fleet-firmware-outliers"):
        assert page.inner_text(table + " tbody").strip() == "none"
    no_script_ran(page)
    screenshot(page, "dashboard-fleet.png", fleet["work"])
    assert page.problems == []


def test_filters_stay_in_the_url(fleet, page):
    page.goto(fleet["base"] + "/")
    page.fill("input[name=kind]", "integrity.*")
    page.select_option("select[name=severity]", "high")
    page.click("form.filters button")
    page.wait_for_load_state()
    assert "kind=integrity.*" in page.url.replace("%2A", "*") and "severity=high" in page.url
    kinds = page.inner_text("#top-kinds")
    assert "integrity.deleted_exe" in kinds and "login." not in kinds
    assert page.input_value("input[name=kind]") == "integrity.*"


def test_the_device_page(fleet, page):
    page.goto(fleet["base"] + "/devices/" + ATTACKED)
    facts = page.inner_text("#device-facts")
    assert "25.12.0" in facts                      # the fixture's OpenWrt release
    assert page.locator("#health svg.spark").count() == 5
    assert page.locator("#health svg.spark polyline").count() == 5
    anomalies = page.inner_text("#device-anomalies")
    assert "/tmp/.x" in anomalies and "login.bruteforce" in anomalies
    # the newest anomaly's evidence is open, pretty-printed; the others fold out
    newest = page.inner_text("#device-anomalies details[open] pre")
    assert newest.startswith("{\n  \"") and isinstance(json.loads(newest), dict)
    assert page.locator("#device-anomalies details[open]").count() == 1
    folded = page.text_content("#device-anomalies")
    assert '"listening_ports": [\n' in folded
    advice = page.inner_text("#advice")
    assert "cp /proc/<pid>/exe /tmp/evidence" in advice
    assert page.locator("#advice code").count() >= 3
    no_script_ran(page)
    screenshot(page, "dashboard-device.png", fleet["work"])
    assert page.problems == []


def test_the_anomaly_page(fleet, page):
    page.goto(fleet["base"] + "/anomalies?kind=integrity.deleted_exe&device=" + ATTACKED)
    page.click("#anomaly-list tbody tr:first-child a")
    page.wait_for_load_state()
    assert "/anomalies/" in page.url
    assert "integrity.deleted_exe" in page.inner_text("h1")
    evidence = json.loads(page.inner_text("#evidence"))
    assert evidence["exe"] == "/tmp/.x" and evidence["listening_ports"] == [7777, 11288]
    assert "recover the binary" in page.inner_text("#what-to-do")
    related = page.inner_text("#related")
    assert "conn.raw_socket" in related or "integrity.exec_from_tmp" in related
    no_script_ran(page)
    screenshot(page, "dashboard-anomaly.png", fleet["work"])
    assert page.problems == []


def visible(text):
    """What the page shows for router text: control and bidi characters as escapes."""
    from routerwatch_collector.cli import printable
    return printable(text)


def test_hostile_strings_are_text_and_no_script_runs(fleet, page):
    base = fleet["base"]
    for url in ("/", "/devices", "/anomalies", "/devices/" + HOSTILE,
                "/anomalies?device=" + HOSTILE):
        page.goto(base + url)
        no_script_ran(page)
    page.goto(base + "/devices/" + HOSTILE)
    facts = page.inner_text("#device-facts")
    assert SCRIPT in facts and IMG in facts and BREAKOUT in facts and TEMPLATE in facts
    assert visible(RLO) in facts and "\u202e" not in facts
    assert visible(CONTROL) in facts and "\x1b" not in facts
    page.goto(base + "/anomalies?device=" + HOSTILE + "&kind=login.bruteforce")
    page.click("#anomaly-list tbody tr:first-child a")
    page.wait_for_load_state()
    summary = page.inner_text("#summary")
    assert summary == visible(SCRIPT + " " + RLO + " " + CONTROL)
    evidence = page.inner_text("#evidence")
    for text in (IMG, BREAKOUT, TEMPLATE, LONG):
        assert json.dumps(text)[1:-1] in evidence
    assert "49" not in evidence                            # no template was evaluated
    assert "\u202e" not in evidence and "\\u202e" in evidence
    # a 1000-character word wraps inside the page instead of widening it
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    no_script_ran(page)
    screenshot(page, "dashboard-hostile.png", fleet["work"])
    assert page.problems == []
    rejected = json.loads(urllib.request.urlopen(base + "/api/fleet", timeout=5).read())
    assert rejected["rejected"].get("oversized") == 1
