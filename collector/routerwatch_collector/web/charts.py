"""Charts as inline SVG made on the server: no script, nothing to build, and the strict
Content-Security-Policy holds (colours come from classes in style.css, not style attributes).

Every text that goes into the markup passes through markupsafe.escape.
"""
import datetime

from markupsafe import Markup, escape

from routerwatch.contract import SEVERITIES


def _label_time(seconds, span):
    when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return when.strftime("%m-%d %H:%M" if span > 86400 else "%H:%M")


def _nice_max(value):
    if value <= 5:
        return 5
    step = 10 ** (len(str(int(value))) - 1)
    for factor in (1, 2, 5, 10):
        if value <= factor * step:
            return factor * step
    return 10 * step


def severity_bars(histogram, width=720, height=200):
    """Stacked bars: anomalies per time bucket, one colour per severity."""
    buckets = histogram["buckets"]
    if not buckets:
        return Markup("")
    left, bottom, top = 44, 22, 8
    plot_w, plot_h = width - left - 6, height - bottom - top
    totals = [sum(b["counts"].values()) for b in buckets]
    peak = _nice_max(max(totals))
    bar_w = plot_w / len(buckets)
    span = histogram["bucket_seconds"] * len(buckets)
    parts = ['<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="anomalies over time '
             'by severity">' % (width, height)]
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        parts.append('<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>'
                     % (left, width - 6, y, y))
        parts.append('<text class="axis" x="%d" y="%.1f" text-anchor="end">%s</text>'
                     % (left - 4, y + 4, escape(str(int(peak * fraction)))))
    for i, bucket in enumerate(buckets):
        x = left + i * bar_w
        y = top + plot_h
        for severity in SEVERITIES:
            n = bucket["counts"].get(severity, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append('<rect class="sev-%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f">'
                         '<title>%s: %d %s</title></rect>'
                         % (severity, x + 0.5, y, max(bar_w - 1, 0.5), h,
                            escape(_label_time(bucket["start"], span)), n, severity))
    ticks = max(1, len(buckets) // 6)
    for i in range(0, len(buckets), ticks):
        if left + i * bar_w > width - 70:      # a label there would run off the chart
            break
        parts.append('<text class="axis" x="%.1f" y="%d">%s</text>'
                     % (left + i * bar_w, height - 6,
                        escape(_label_time(buckets[i]["start"], span))))
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline(samples, field, width=320, height=48, unit=""):
    """One heartbeat value over time as a line, with its latest value written beside it."""
    points = [(s["at"], s[field]) for s in samples if isinstance(s.get(field), (int, float))]
    if not points:
        return Markup('<span class="muted">no samples yet</span>')
    t0, t1 = points[0][0], points[-1][0]
    lo = min(v for _, v in points)
    hi = max(v for _, v in points)
    spread = (hi - lo) or 1.0
    plot_w = width - 130
    coords = []
    for t, v in points:
        x = 2 + (plot_w - 4) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)
        y = height - 4 - (height - 8) * ((v - lo) / spread if hi > lo else 0.5)
        coords.append("%.1f,%.1f" % (x, y))
    latest = points[-1][1]
    latest_text = ("%.1f" % latest if isinstance(latest, float) else str(latest)) + unit
    return Markup(
        '<svg class="spark" viewBox="0 0 %d %d" role="img" aria-label="%s over time">'
        '<polyline class="line" points="%s"/>'
        '<text class="axis" x="%d" y="%d">%s</text>'
        '<text class="axis muted" x="%d" y="%d">min %s max %s</text></svg>'
        % (width, height, escape(field), " ".join(coords), plot_w + 6, height / 2,
           escape(latest_text), plot_w + 6, height / 2 + 14, escape(_short(lo)),
           escape(_short(hi))))


def _short(value):
    if isinstance(value, float) and not value.is_integer():
        return "%.1f" % value
    return "%d" % value
