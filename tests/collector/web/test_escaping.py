"""Whatever text a router sends, the page shows it as text: fuzzed summaries and evidence go
through the store and the anomaly page, and the parsed HTML holds exactly the text (control and
bidi characters as escapes) and no element the text could have made."""
from dataclasses import replace
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from collector_messages import T0, anomaly
from routerwatch_collector.cli import printable
from routerwatch_collector.store import AnomalyFilter, open_store

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HOSTILE_BITS = ["<script>", "</p>", "<img src=x onerror=alert(1)>", '"', "'", "&amp;", "{{", "{%",
                "\u202e", "\u2066", "\x1b[2J", "\x07", "\x85", "</pre>", "<!--", "]]>", "`"]
text = st.lists(st.one_of(st.sampled_from(HOSTILE_BITS), st.text(max_size=20)),
                max_size=12).map("".join).filter(lambda t: "\x00" not in t)


class Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.stack, self.summary = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.stack.append(dict(attrs).get("id"))

    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "summary":
            self.summary = (self.summary or "") + data


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from starlette.testclient import TestClient
    from routerwatch_collector.web.app import create_app
    db = tmp_path_factory.mktemp("escaping") / "c.sqlite"
    open_store(db).close()
    client = TestClient(create_app(lambda: open_store(db, create=False, read_only=True),
                                   clock=lambda: T0 + 100))
    with client:
        yield db, client


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(summary=text, value=text)
def test_any_text_is_shown_as_text(site, summary, value):
    db, client = site
    store = open_store(db)
    seq = store.anomaly_count() + 1
    store.add_anomalies([replace(anomaly(seq, user=value), summary=summary[:240])], T0 + 1)
    (row,) = store.find_anomalies(AnomalyFilter(), limit=1)
    store.close()
    html = client.get("/anomalies/%d" % row.id).text
    parser = Tags()
    parser.feed(html)
    assert (parser.summary or "") == printable(summary[:240])
    tags = {tag for tag, _ in parser.tags}
    assert not tags & {"script", "img", "iframe", "object", "embed"}
    assert not [a for _, attrs in parser.tags for a in attrs if a.startswith("on")]
