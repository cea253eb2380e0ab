"""The text of a notification: which router, how bad, what happened, what to do, and where to look.

Summaries and evidence come from the router, which may be compromised: they are sent as plain
text (never markdown or HTML), with control characters shown as \\xNN, and cut to a length, so a
crafted summary cannot reshape the message, hide a part of it or make it huge.
"""
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..catalogue import what_to_do
from ..cli import printable
from ..fleet.base import FLEET_DEVICE
from .grouping import severity_rank

MAX_SUMMARY = 240       # characters of a router's summary shown (the contract's own cap)
MAX_BODY = 6000         # characters of the whole text; chat services cut at 4096-65536
MAX_FLEET_DEVICES = 20  # routers a fleet detection's message names; the rest are counted
DEVICE_PAGE = "devices/{device}"   # the dashboard's page of one router (web/app.py routes)


@dataclass(frozen=True)
class Message:
    device: str
    severity: str        # the highest in the group
    count: int           # anomalies in it
    title: str
    body: str


def _clip(text, limit):
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def dashboard_link(dashboard_url, device):
    """`--dashboard-url` with {device} replaced by the device id, or as given.

    The fleet's own detections are stored under the device id "fleet", which is no router: the
    dashboard has no page /devices/fleet, so they link to its fleet page (the root, where the
    open fleet detections are listed) instead."""
    if not dashboard_url:
        return ""
    if device == FLEET_DEVICE and "{device}" in dashboard_url:
        if DEVICE_PAGE in dashboard_url:
            return dashboard_url[:dashboard_url.index(DEVICE_PAGE)]
        parts = urlsplit(dashboard_url)
        return urlunsplit((parts.scheme, parts.netloc, "/", "", ""))
    return dashboard_url.replace("{device}", device)


def _fleet_devices(rows):
    """(names, total): the routers the fleet detections name (their evidence's device_list, a
    sample), in order and once, and how many they span (the evidence's devices count)."""
    names, total = [], 0
    for row in rows:
        evidence = row.evidence if isinstance(row.evidence, dict) else {}
        listed = evidence.get("device_list")
        for name in listed if isinstance(listed, list) else ():
            if isinstance(name, str) and name not in names:
                names.append(name)
        count = evidence.get("devices")
        if isinstance(count, int) and not isinstance(count, bool):
            total = max(total, count)
    return names, max(total, len(names))


def _heading(group, listed):
    """(title, first lines): a router's anomalies name the router; the fleet's name what
    they are and the routers involved."""
    device = printable(group.device)
    if group.device != FLEET_DEVICE:
        if group.total == 1:
            title = "routerwatch: %s on %s: %s" % (group.highest, device,
                                                   _clip(listed[0].summary, 120))
        else:
            title = "routerwatch: %d anomalies on %s, up to %s" % (group.total, device,
                                                                   group.highest)
        return title, ["Router: %s" % device, "Severity: %s" % group.highest, ""]
    # a fleet anomaly's count is the routers it spans, not repeats: the title counts kinds
    if len(listed) == 1:
        title = "routerwatch: %s fleet detection: %s" % (group.highest,
                                                         _clip(listed[0].summary, 120))
    else:
        title = "routerwatch: fleet detections up to %s: %s" % (group.highest, _clip(
            ", ".join(sorted(group.kinds)), 120))
    lines = ["Fleet detection (several routers, seen by the collector)"]
    devices, total = _fleet_devices(listed)
    if devices:
        named = ", ".join(_clip(name, 64) for name in devices[:MAX_FLEET_DEVICES])
        more = total - min(len(devices), MAX_FLEET_DEVICES)
        lines.append("Routers: %s%s" % (named, " and %d more" % more if more > 0 else ""))
    return title, lines + ["Severity: %s" % group.highest, ""]


def render(group, dashboard_url=""):
    shown = group.shown()
    listed = sorted(shown, key=lambda row: -severity_rank(row.severity))
    title, lines = _heading(group, listed)
    for row in listed:
        repeat = " (x%d)" % row.count if getattr(row, "count", 1) > 1 \
            and group.device != FLEET_DEVICE else ""
        lines.append("- %s %s%s: %s" % (row.severity, printable(row.kind), repeat,
                                        _clip(row.summary, MAX_SUMMARY)))
    unlisted = group.total - sum(max(1, getattr(row, "count", 1)) for row in shown)
    if unlisted > 0 and group.device != FLEET_DEVICE:
        lines.append("- and %d more: %s" % (unlisted, ", ".join(
            "%s %d" % (printable(kind), n) for kind, n in sorted(group.kinds.items()))))
    lines += ["", "What to do:"]
    seen = []
    for row in listed:
        if row.kind not in seen:
            seen.append(row.kind)
            lines.append("- %s: %s" % (printable(row.kind), what_to_do(row.kind)))
    link = dashboard_link(dashboard_url, group.device)
    if link:
        lines += ["", "Dashboard: %s" % link]
    body = "\n".join(lines)
    if len(body) > MAX_BODY:
        body = body[: MAX_BODY - 1] + "\u2026"
    return Message(device=group.device, severity=group.highest, count=group.total,
                   title=title, body=body)
