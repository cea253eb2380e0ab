"""A screenshot of the router's device page in Home Assistant, for the README (docs/), taken
with headless Chromium while tests/homeassistant runs:

    ROUTERWATCH_HA_SCREENSHOT=docs/homeassistant-device.png pytest tests/homeassistant

The browser logs in through the trusted_networks provider the test config allows for
127.0.0.1 (one user, so the login page is skipped). The page keeps a websocket open, so
Chromium's own --screenshot never sees it "loaded": this drives Chromium over its DevTools
protocol instead (with aiohttp from Home Assistant's venv), waits for the page to settle and
captures it."""
import base64
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTLE_SECONDS = 12


def save_device_page(ha, entity_id, out):
    from homeassistant_server import ha_venv
    device = ha.render("{{ device_id('%s') }}" % entity_id)
    url = "http://127.0.0.1:%d/config/devices/device/%s" % (ha.port, device)
    subprocess.run([str(ha_venv() / "bin" / "python"), __file__, url, str(Path(out).resolve())],
                   check=True, timeout=180)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _capture(port, url, out, width, height):
    import aiohttp
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get("http://127.0.0.1:%d/json/list" % port) as response:
                    pages = [p for p in await response.json() if p["type"] == "page"]
                if pages:
                    break
            except aiohttp.ClientError:
                pass
            await _sleep(0.2)
        async with session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 1000))

            async def call(method, **params):
                number = next(ids)
                await ws.send_json({"id": number, "method": method, "params": params})
                while True:
                    message = json.loads((await ws.receive()).data)
                    if message.get("id") == number:
                        return message.get("result", {})

            await call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                       deviceScaleFactor=1, mobile=False)
            await call("Page.navigate", url=url)
            await _sleep(SETTLE_SECONDS)
            shot = await call("Page.captureScreenshot", format="png")
            Path(out).write_bytes(base64.b64decode(shot["data"]))


async def _sleep(seconds):
    import asyncio
    await asyncio.sleep(seconds)


def main(url, out, width=1280, height=1240):
    import asyncio
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    port = _free_port()
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--user-data-dir=%s" % profile, "--remote-debugging-port=%d" % port,
             "--remote-allow-origins=*", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            asyncio.run(_capture(port, url, out, width, height))
        finally:
            browser.kill()
            browser.wait(10)
    Path(out).parent.mkdir(parents=True, exist_ok=True)


if __name__ == "__main__":
    Path(sys.argv[2]).parent.mkdir(parents=True, exist_ok=True)
    main(sys.argv[1], sys.argv[2])
