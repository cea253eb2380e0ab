"""The data behind each page, as plain dicts: the JSON API returns them as they are and the HTML
pages render them, so both always show the same thing.

Query parameters are parsed strictly: anything that does not fit is a BadRequest naming the
parameter, never a query. Every store read here is bounded by a limit or a time range.
"""
import datetime
import math
import re
from dataclasses import dataclass, replace
from typing import Optional

from routerwatch.contract import DEVICE_ID_RE, SEVERITIES

from ..catalogue import what_to_do
from ..cli import parse_since
from ..fleet import report as fleet_report
from ..fleet.campaign import Campaign
from ..fleet.implant import Implant
from ..stores.base import AnomalyFilter

KIND_GLOB_RE = re.compile(r"\A[a-z0-9_.*]{1,64}\Z")
DEFAULT_SINCE = "24h"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_RANGE_SECONDS = 366 * 86400
# histogram bars: the smallest of these giving at most MAX_BUCKETS bars over the range
BUCKET_SIZES = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 60
SEVERE = ("high", "critical")
RELATED_WINDOW = 3600.0
DEVICE_STATUSES = ("online", "silent", "stopped", "offline", "unknown")
# rows of each open fleet detection listed; the totals count them all (up to the store's bound)
FLEET_DETECTIONS_LISTED = 20
# login kinds named per campaign source
CAMPAIGN_KINDS_LISTED = 8
HASH_SHOWN = 12


class BadRequest(ValueError):
    """A query parameter that does not fit; the text names it."""


class NotFound(LookupError):
    pass


@dataclass(frozen=True)
class Filters:
    """What the URL asks for, as given (so links can keep it) and as resolved times."""
    device: Optional[str] = None
    kind: Optional[str] = None
    severity: Optional[str] = None      # at least this severity
    since_text: str = DEFAULT_SINCE
    until_text: str = ""
    since: float = 0.0
    until: float = 0.0
    limit: int = DEFAULT_LIMIT
    before: Optional[int] = None

    def anomaly_filter(self, **overrides):
        where = AnomalyFilter(device=self.device, kind=self.kind,
                              severities=severities_from(self.severity),
                              since=self.since, until=self.until)
        return replace(where, **overrides)

    def query(self, **overrides):
        """The URL query parameters that reproduce these filters (empty ones left out)."""
        params = {"device": self.device, "kind": self.kind, "severity": self.severity,
                  "since": self.since_text if self.since_text != DEFAULT_SINCE else None,
                  "until": self.until_text or None}
        params.update(overrides)
        return {k: v for k, v in params.items() if v not in (None, "")}

    def as_dict(self):
        return {"device": self.device, "kind": self.kind, "severity": self.severity,
                "since": self.since, "until": self.until, "limit": self.limit,
                "before": self.before, "since_text": self.since_text,
                "until_text": self.until_text}


def severities_from(minimum):
    if not minimum:
        return ()
    return SEVERITIES[SEVERITIES.index(minimum):]


def _one(params, name, limit=200):
    values = params.getlist(name) if hasattr(params, "getlist") else [params.get(name)]
    values = [v for v in values if v is not None]
    if len(values) > 1:
        raise BadRequest("%s is given more than once" % name)
    value = values[0].strip() if values else ""
    if len(value) > limit:
        raise BadRequest("%s is longer than %d characters" % (name, limit))
    return value


def _int(params, name, lo, hi, default):
    text = _one(params, name, 20)
    if not text:
        return default
    if not re.fullmatch(r"\d{1,15}", text):
        raise BadRequest("%s must be a whole number, got %r" % (name, text))
    value = int(text)
    if not lo <= value <= hi:
        raise BadRequest("%s must be %d-%d, got %d" % (name, lo, hi, value))
    return value


def _time(text, name, now):
    try:
        return parse_since(text, now)
    except ValueError:
        raise BadRequest("%s wants a relative time like 15m, 1h, 2d, 1w or an ISO time like "
                         "2026-11-25T16:00:00Z, got %r" % (name, text[:80])) from None
    except (OverflowError, OSError):
        raise BadRequest("%s is out of range" % name) from None


def parse_filters(params, now, device=None, default_since=DEFAULT_SINCE):
    """Filters from URL query parameters; `device` fixed by the path (device page)."""
    device_text = device if device is not None else _one(params, "device", 64)
    if device_text and not DEVICE_ID_RE.match(device_text):
        raise BadRequest("device must be a device id like rw-0a1b2c3d4e5f")
    kind = _one(params, "kind", 64)
    if kind and not KIND_GLOB_RE.match(kind):
        raise BadRequest("kind must be a kind like login.bruteforce or a glob like login.*")
    severity = _one(params, "severity", 16)
    if severity and severity not in SEVERITIES:
        raise BadRequest("severity must be one of %s" % ", ".join(SEVERITIES))
    since_text = _one(params, "since", 40) or default_since
    until_text = _one(params, "until", 40)
    since = _time(since_text, "since", now)
    until = _time(until_text, "until", now) if until_text else now
    if until <= since:
        raise BadRequest("until must be after since")
    if until - since > MAX_RANGE_SECONDS:
        raise BadRequest("the time range may span at most 366 days")
    return Filters(device=device_text or None, kind=kind or None, severity=severity or None,
                   since_text=since_text, until_text=until_text, since=since, until=until,
                   limit=_int(params, "limit", 1, MAX_LIMIT, DEFAULT_LIMIT),
                   before=_int(params, "before", 1, 2 ** 62, None))


def iso(seconds):
    if seconds is None:
        return None
    try:
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


def bucket_seconds(since, until):
    for size in BUCKET_SIZES:
        if (until - since) / size <= MAX_BUCKETS:
            return size
    return BUCKET_SIZES[-1]


def histogram(store, where, since, until):
    size = bucket_seconds(since, until)
    counts = store.anomaly_histogram(where, size)
    buckets = []
    # bars on multiples of their length (what the store counts by); the first one may begin
    # before `since`, but counts only what arrived from `since` on
    start = float(math.floor(since / size) * size)
    while start < until:
        buckets.append({"start": start, "counts": {s: counts.get((start, s), 0)
                                                   for s in SEVERITIES}})
        start += size
    return {"bucket_seconds": size, "buckets": buckets}


def anomaly_dict(row):
    out = row.as_dict()
    out["received"] = iso(row.received_at)
    return out


def device_dict(row, now):
    out = row.as_dict()
    out["state"] = device_state(row)
    out["last_seen_ago"] = None if row.last_seen is None else max(0.0, now - row.last_seen)
    return out


def device_state(row):
    if row.silent_since is not None:
        return "silent"
    return row.status or "unknown"


def fleet(store, filters, now):
    where = filters.anomaly_filter()
    severe = severities_from(filters.severity) if filters.severity in SEVERE else SEVERE
    return {
        "filters": filters.as_dict(),
        "now": now,
        "devices": store.fleet_counts(),
        "histogram": histogram(store, where, filters.since, filters.until),
        "top_kinds": [{"kind": k, "count": n, "worst": worst}
                      for k, n, worst in store.top_kinds(where, 10)],
        # by their high and critical anomalies: what needs a look, and a narrow read
        "top_devices": [{"device": d, "count": n, "worst": worst}
                        for d, n, worst in store.top_devices(replace(where, severities=severe),
                                                             10)],
        "newest_severe": [anomaly_dict(a) for a in store.find_anomalies(
            replace(where, severities=severe), limit=filters.limit, before_id=filters.before)],
        "silent_devices": [device_dict(d, now) for d in store.device_page(status="silent",
                                                                          limit=20)],
        "rejected": store.rejected(),
        "detections": fleet_detections(store, now),
    }


def fleet_detections(store, now, listed=FLEET_DETECTIONS_LISTED):
    """The open fleet detections as `routerwatch-collector fleet` reports them (fleet/report.py),
    each list cut to `listed` rows with its total beside it: campaigns (source, devices, the
    login kinds or, for a range, its addresses), implants and firmware outliers."""
    rows = fleet_report.indicators(store, now)
    campaigns = [r for r in rows if r["kind"] == Campaign.kind]
    implants = [r for r in rows if r["kind"] == Implant.kind]
    since = now - Campaign.Config().window
    shown_campaigns = []
    for row in campaigns[:listed]:
        _, details, _, detail_list = store.fleet_spread(Campaign.kind, row["value"], since,
                                                        CAMPAIGN_KINDS_LISTED)
        wide = row["value"].endswith(("/24", "/48"))
        shown_campaigns.append({
            "source": row["value"], "devices": row["devices"],
            # a range's sightings carry its addresses, an address's the login kinds it used
            "kinds": [] if wide else detail_list, "addresses": details if wide else None,
            "first": row["first"], "last": row["last"]})
    outliers = []
    for group in fleet_report.firmware_groups(store):
        for outlier in group["outliers"]:
            outliers.append({"device": outlier["device"], "board": group["board"],
                             "release": group["release"], "revision": group["revision"],
                             "kernel": group["kernel"], "group_devices": group["devices"],
                             "usual_hash": group["usual_hash"],
                             "usual_share": group["usual_share"],
                             "firmware_hash": outlier["firmware_hash"]})
    return {
        "campaigns": shown_campaigns, "campaigns_total": len(campaigns),
        "implants": [{"sha256": r["value"], "short": r["value"][:HASH_SHOWN],
                      "devices": r["devices"], "first": r["first"], "last": r["last"]}
                     for r in implants[:listed]],
        "implants_total": len(implants),
        "firmware_outliers": outliers[:listed], "firmware_outliers_total": len(outliers),
    }


def anomalies(store, filters):
    rows = store.find_anomalies(filters.anomaly_filter(), limit=filters.limit,
                                before_id=filters.before)
    return {"filters": filters.as_dict(), "anomalies": [anomaly_dict(a) for a in rows],
            "next_before": rows[-1].id if len(rows) == filters.limit else None}


def devices(store, params, now):
    status = _one(params, "status", 16)
    if status and status not in DEVICE_STATUSES:
        raise BadRequest("status must be one of %s" % ", ".join(DEVICE_STATUSES))
    prefix = _one(params, "prefix", 64)
    if prefix and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", prefix):
        raise BadRequest("prefix must be the start of a device id")
    after = _one(params, "after", 64)
    if after and not DEVICE_ID_RE.match(after):
        raise BadRequest("after must be a device id")
    limit = _int(params, "limit", 1, MAX_LIMIT, 100)
    rows = store.device_page(status=status or None, prefix=prefix or None, after=after or None,
                             limit=limit)
    return {"status": status or None, "prefix": prefix or None,
            "counts": store.fleet_counts(),
            "devices": [device_dict(d, now) for d in rows],
            "next_after": rows[-1].device if len(rows) == limit else None}


def device(store, device_id, filters, now):
    row = store.device(device_id)
    if row is None:
        raise NotFound("no device %s" % device_id)
    rows = store.find_anomalies(filters.anomaly_filter(), limit=filters.limit,
                                before_id=filters.before)
    kinds = sorted({a.kind for a in rows})
    return {
        "filters": filters.as_dict(),
        "device": device_dict(row, now),
        "heartbeats": store.heartbeat_history(device_id, now - 86400.0),
        "gaps": store.gaps(device_id, limit=50),
        "anomalies": [anomaly_dict(a) for a in rows],
        "next_before": rows[-1].id if len(rows) == filters.limit else None,
        "advice": {k: what_to_do(k) for k in kinds},
    }


def anomaly(store, anomaly_id):
    row = store.anomaly(anomaly_id)
    if row is None:
        raise NotFound("no anomaly %d" % anomaly_id)
    nearby = store.find_anomalies(AnomalyFilter(
        device=row.device, since=row.received_at - RELATED_WINDOW,
        until=row.received_at + RELATED_WINDOW), limit=100)
    related = [a for a in nearby if a.id != row.id]
    same_kind = [a for a in nearby if a.kind == row.kind]
    times = [a.time for a in same_kind]
    return {
        "anomaly": anomaly_dict(row),
        "what_to_do": what_to_do(row.kind),
        "incident": {"count": row.count, "reports": len(same_kind),
                     "repeats": sum(a.count for a in same_kind),
                     "first": min(times), "last": max(times), "span": max(times) - min(times)},
        "related": [anomaly_dict(a) for a in related],
    }
