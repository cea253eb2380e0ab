"""House rules that keep the detector set honest, like fail2ban's sample-per-filter rule:
every registered detector has its module named after its kind, a test file, a README row, and
a Config whose options all carry a reason."""
from dataclasses import fields
from pathlib import Path

import pytest

from routerwatch.detectors import DETECTOR_MODULES, detector_classes

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
CLASSES = detector_classes()


def test_registry_lists_each_module_once():
    assert len(set(DETECTOR_MODULES)) == len(DETECTOR_MODULES)


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_detector_follows_the_conventions(kind):
    module = kind.replace(".", "_")
    assert module in DETECTOR_MODULES, "module name must be the kind with '_' for '.'"
    assert (REPO / ("tests/agent/detectors/test_%s.py" % module)).is_file(), "needs a test file"
    assert "| `%s` |" % kind in README, "needs a row in the README's table of anomaly kinds"
    for f in fields(CLASSES[kind].Config):
        assert f.metadata.get("why"), "%s.%s needs a reason beside its default" % (kind, f.name)
