"""The text of a notification: which router, how bad, what happened, what to do, and where to look.

Summaries and evidence come from the router, which may be compromised: they are sent as plain
text (never markdown or HTML), with control characters shown as \\xNN, and cut to a length, so a
crafted summary cannot reshape the message, hide a part of it or make it huge.
"""
from dataclasses import dataclass

from ..catalogue import what_to_do
from ..cli import printable
from .grouping import severity_rank

MAX_SUMMARY = 240       # characters of a router's summary shown (the contract's own cap)
MAX_BODY = 6000         # characters of the whole text; chat services cut at 4096-65536


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
    """`--dashboard-url` with {device} replaced by the device id, or as given."""
    if not dashboard_url:
        return ""
    return dashboard_url.replace("{device}", device)


def render(group, dashboard_url=""):
    device = printable(group.device)
    shown = group.shown()
    listed = sorted(shown, key=lambda row: -severity_rank(row.severity))
    if group.total == 1:
        title = "routerwatch: %s on %s: %s" % (group.highest, device,
                                               _clip(listed[0].summary, 120))
    else:
        title = "routerwatch: %d anomalies on %s, up to %s" % (group.total, device,
                                                               group.highest)
    lines = ["Router: %s" % device, "Severity: %s" % group.highest, ""]
    for row in listed:
        repeat = " (x%d)" % row.count if getattr(row, "count", 1) > 1 else ""
        lines.append("- %s %s%s: %s" % (row.severity, printable(row.kind), repeat,
                                        _clip(row.summary, MAX_SUMMARY)))
    unlisted = group.total - sum(max(1, getattr(row, "count", 1)) for row in shown)
    if unlisted > 0:
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
