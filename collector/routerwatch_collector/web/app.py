"""The dashboard as a Starlette application: HTML pages and the JSON API under /api/, both made
from the dicts of views.py. Read-only: every route is GET, and the store is opened query-only.

    create_app(store_factory, credentials=None, clock=time.time)

`store_factory()` opens a Store; each worker thread gets its own (an SQLite connection or a
PostgreSQL session is not shared between threads).
"""
import contextlib
import json
import logging
import re
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..cli import printable
from . import charts, views
from .security import SecurityMiddleware

HERE = Path(__file__).resolve().parent
log = logging.getLogger("routerwatch_collector")
MAX_ANOMALY_ID = 2 ** 62


class StorePool:
    """One store per thread, all closed together."""

    def __init__(self, factory):
        self.factory = factory
        self._local = threading.local()
        self._all = []
        self._lock = threading.Lock()

    def get(self):
        store = getattr(self._local, "store", None)
        if store is None:
            store = self.factory()
            self._local.store = store
            with self._lock:
                self._all.append(store)
        return store

    def discard(self):
        """Forget this thread's store (after an error it may be broken: a lost PostgreSQL
        connection); the next request opens a new one."""
        store = getattr(self._local, "store", None)
        self._local.store = None
        if store is not None:
            with self._lock:
                if store in self._all:
                    self._all.remove(store)
            try:
                store.close()
            except Exception:   # already broken: closing it is only tidying up
                pass

    def close(self):
        with self._lock:
            stores, self._all = self._all, []
        for store in stores:
            try:
                store.close()
            except Exception:   # closing at shutdown: nothing left to tell
                pass


def _visible(value):
    """Every value a template prints: router-chosen text gets its control and bidi characters
    shown as escapes (then autoescape does the HTML); markup made here passes as it is."""
    if value is None:
        return ""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return printable(value)


_CODE_RE = re.compile(r"`([^`]{1,200})`")


def _advice(text):
    """The catalogue's Markdown-ish advice: `code` becomes <code>, everything else is text."""
    if not text:
        return ""
    out, last = [], 0
    for match in _CODE_RE.finditer(text):
        out.append(escape(text[last:match.start()]))
        out.append(Markup("<code>%s</code>") % match.group(1))
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


def _pretty(value):
    """Evidence as indented JSON: JSON escapes the control characters inside strings, printable()
    the bidi ones; the newlines left are the indentation's."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return escape("\n".join(printable(line) for line in text.split("\n")))


def _ago(seconds):
    if seconds is None:
        return "never"
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return "%d%s ago" % (seconds // size, unit)
    return "%ds ago" % seconds


def _duration(seconds):
    seconds = int(seconds or 0)
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return "%dm %ds" % (minutes, rest) if rest else "%dm" % minutes
    hours, minutes = seconds // 3600, seconds % 3600 // 60
    if hours >= 48 and not minutes and not hours % 24:
        return "%dd" % (hours // 24)
    return "%dh %dm" % (hours, minutes) if minutes else "%dh" % hours


def _url(path, params):
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return path + ("?" + query if query else "")


def make_templates():
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True, finalize=_visible, undefined=jinja2.StrictUndefined)
    env.filters.update(iso=views.iso, ago=_ago, duration=_duration, pretty=_pretty,
                       advice=_advice)
    env.globals.update(url=_url, severity_bars=charts.severity_bars,
                       sparkline=charts.sparkline, severities=views.SEVERITIES)
    return Jinja2Templates(env=env)


def create_app(store_factory, credentials=None, clock=time.time):
    pool = StorePool(store_factory)
    templates = make_templates()

    def read(request, build):
        """build(store, now) -> (data, None), or (None, an error response)."""
        try:
            return build(pool.get(), clock()), None
        except views.BadRequest as exc:
            return None, error(request, 400, str(exc))
        except views.NotFound as exc:
            return None, error(request, 404, str(exc))
        except Exception as exc:   # the store failed (a lost connection, a locked file ...)
            pool.discard()
            log.warning("dashboard: %s failed: %s: %s", request.url.path,
                        type(exc).__name__, exc)
            return None, error(request, 503, "the store could not be read; try again")

    def page(request, template, build, status=200):
        """Runs build(store, now) -> data; renders the template, or an error page."""
        data, failed = read(request, build)
        if failed is not None:
            return failed
        return templates.TemplateResponse(request, template, {"data": data, "request": request,
                                                              "path": request.url.path},
                                          status_code=status)

    def error(request, status, message):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return templates.TemplateResponse(request, "error.html",
                                          {"status": status, "message": message,
                                           "request": request, "path": request.url.path},
                                          status_code=status)

    def api(request, build):
        data, failed = read(request, build)
        return failed if failed is not None else JSONResponse(data)

    def _fleet(request):
        def build(store, now):
            filters = views.parse_filters(request.query_params, now)
            return dict(views.fleet(store, filters, now), query=filters.query())
        return build

    def _detections(request):
        return lambda store, now: views.fleet_detections(store, now)

    def _anomalies(request):
        def build(store, now):
            filters = views.parse_filters(request.query_params, now)
            return dict(views.anomalies(store, filters), query=filters.query())
        return build

    def _devices(request):
        return lambda store, now: views.devices(store, request.query_params, now)

    def _device(request):
        def build(store, now):
            device_id = request.path_params["device"]
            filters = views.parse_filters(request.query_params, now, device=device_id,
                                          default_since="30d")
            return dict(views.device(store, device_id, filters, now),
                        query=filters.query(device=None))
        return build

    def _anomaly(request):
        def build(store, now):
            text = request.path_params["anomaly"]
            if not re.fullmatch(r"\d{1,19}", text) or int(text) > MAX_ANOMALY_ID:
                raise views.NotFound("no anomaly %s" % text[:24])
            return views.anomaly(store, int(text))
        return build

    def fleet_page(request):
        return page(request, "fleet.html", _fleet(request))

    def anomalies_page(request):
        return page(request, "anomalies.html", _anomalies(request))

    def devices_page(request):
        return page(request, "devices.html", _devices(request))

    def device_page(request):
        return page(request, "device.html", _device(request))

    def anomaly_page(request):
        return page(request, "anomaly.html", _anomaly(request))

    def not_found(request, exc=None):
        return error(request, 404, "no page here")

    def health(request):
        return JSONResponse({"ok": True})

    routes = [
        Route("/", fleet_page),
        Route("/anomalies", anomalies_page),
        Route("/anomalies/{anomaly}", anomaly_page),
        Route("/devices", devices_page),
        Route("/devices/{device}", device_page),
        Route("/api/fleet", lambda r: api(r, _fleet(r))),
        Route("/api/fleet/detections", lambda r: api(r, _detections(r))),
        Route("/api/anomalies", lambda r: api(r, _anomalies(r))),
        Route("/api/anomalies/{anomaly}", lambda r: api(r, _anomaly(r))),
        Route("/api/devices", lambda r: api(r, _devices(r))),
        Route("/api/devices/{device}", lambda r: api(r, _device(r))),
        Route("/api/health", health),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        pool.close()

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: _method_not_allowed},
                    lifespan=lifespan)
    app.state.pool = pool
    return SecurityMiddleware(app, credentials)


def _method_not_allowed(request, exc=None):
    # read-only: nothing is accepted but GET (and HEAD)
    return JSONResponse({"error": "read-only: only GET"}, status_code=405,
                        headers={"Allow": "GET, HEAD"})

