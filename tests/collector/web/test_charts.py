"""The server-side SVG charts: well-formed for any data, scaled to it, and no text unescaped."""
import xml.etree.ElementTree as ET

from routerwatch_collector.web.charts import severity_bars, sparkline

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup):
    return ET.fromstring(str(markup).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def histogram(counts, size=3600, start=1764000000.0):
    return {"bucket_seconds": size, "buckets": [
        {"start": start + i * size, "counts": dict({"info": 0, "low": 0, "medium": 0, "high": 0,
                                                    "critical": 0}, **c)}
        for i, c in enumerate(counts)]}


def test_bars_stack_by_severity_and_scale_to_the_busiest_bucket():
    svg = parse(severity_bars(histogram([{"high": 3, "critical": 1}, {}, {"info": 10}])))
    rects = svg.findall(SVG + "rect")
    assert [r.get("class") for r in rects] == ["sev-high", "sev-critical", "sev-info"]
    heights = {r.get("class"): float(r.get("height")) for r in rects}
    assert heights["sev-info"] == 10 / 3 * heights["sev-high"]
    assert rects[0].find(SVG + "title").text.endswith(": 3 high")
    # the y axis ends at a round number at or above the peak
    labels = [t.text for t in svg.findall(SVG + "text")]
    assert "10" in labels


def test_an_empty_range_and_empty_buckets_draw_no_bars():
    assert str(severity_bars({"bucket_seconds": 60, "buckets": []})) == ""
    svg = parse(severity_bars(histogram([{}, {}])))
    assert svg.findall(SVG + "rect") == []


def test_sparkline_for_one_sample_many_samples_and_none():
    one = parse(sparkline([{"at": 1.0, "rss_kb": 5000}], "rss_kb", unit=" kB"))
    assert one.find(SVG + "polyline") is not None
    assert "5000 kB" in [t.text for t in one.findall(SVG + "text")]
    samples = [{"at": float(i), "cpu_percent": v} for i, v in enumerate((0.5, 2.0, 1.0))]
    points = parse(sparkline(samples, "cpu_percent")).find(SVG + "polyline").get("points").split()
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[1] < ys[2] < ys[0]            # higher values are drawn higher
    assert "no samples" in str(sparkline([], "drops"))
    assert "no samples" in str(sparkline([{"at": 1.0, "drops": None}], "drops"))
