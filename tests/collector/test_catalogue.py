"""The README's tables of anomaly kinds and the collector's catalogue say the same: every row's
"what to do" is the catalogue's text for that kind, and the catalogue has no kind the README
does not explain."""
import re
from pathlib import Path

from routerwatch_collector.catalogue import WHAT_TO_DO, what_to_do

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
ROW_RE = re.compile(r"^\| `([a-z]+(?:\.[a-z][a-z0-9_]*)+)` \|(.*)\|\s*$", re.M)


def readme_rows():
    return {kind: [cell.strip() for cell in rest.split(" | ")] for kind, rest in
            ROW_RE.findall(README)}


def test_every_readme_row_says_what_the_catalogue_says():
    rows = readme_rows()
    assert len(rows) >= 18
    for kind, cells in rows.items():
        assert kind in WHAT_TO_DO, "%s has a README row but no catalogue entry" % kind
        # a | inside a table cell is written \\| in the README
        assert cells[-1].replace("\\|", "|") == WHAT_TO_DO[kind], \
            "%s: README and catalogue differ" % kind


def test_the_catalogue_has_no_kind_the_readme_lacks():
    assert set(WHAT_TO_DO) == set(readme_rows())


def test_every_agent_detector_has_advice():
    from routerwatch.detectors import detector_classes
    for kind in detector_classes():
        assert what_to_do(kind) == WHAT_TO_DO[kind]
