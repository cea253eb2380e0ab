"""The fleet detections' conventions: each kind has its module, test, README row and catalogue
entry, and each threshold is a `run` option with its range."""
from pathlib import Path

import pytest
from routerwatch_collector.catalogue import WHAT_TO_DO
from routerwatch_collector.cli import build_parser, fleet_configs
from routerwatch_collector.fleet import fleet_detector_classes

ROOT = Path(__file__).resolve().parents[3]


def test_every_fleet_kind_has_a_module_a_test_a_readme_row_and_advice():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for kind in fleet_detector_classes():
        name = kind.split(".", 1)[1]
        assert (ROOT / ("collector/routerwatch_collector/fleet/%s.py" % name)).exists()
        assert (ROOT / ("tests/collector/fleet/test_%s.py" % name)).exists()
        assert "| `%s` |" % kind in readme
        assert kind in WHAT_TO_DO


def test_thresholds_are_run_options_with_defaults_and_ranges():
    args = build_parser().parse_args(["run"])
    configs = fleet_configs(args)
    assert configs["fleet.campaign"].min_devices == 5
    assert configs["fleet.firmware_outlier"].consensus == 0.95
    args = build_parser().parse_args(["run", "--fleet-campaign-min-devices", "12",
                                      "--fleet-firmware-outlier-consensus", "0.9"])
    configs = fleet_configs(args)
    assert configs["fleet.campaign"].min_devices == 12
    assert configs["fleet.firmware_outlier"].consensus == 0.9
    for bad in (["--fleet-campaign-min-devices", "1"], ["--fleet-implant-window", "x"],
                ["--fleet-firmware-outlier-consensus", "1.5"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["run"] + bad)
