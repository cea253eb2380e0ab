"""integrity.firmware_changed: given the remembered and the current firmware identity, then
info after a sysupgrade, high when the same claimed version has other /rom content."""
from integrity_helpers import firmware, record_of
from routerwatch.detectors.integrity_firmware_changed import Config, IntegrityFirmwareChanged


def judge(current, **config):
    return IntegrityFirmwareChanged(Config(**config)).observe(current)


def test_first_start_and_unchanged_firmware_say_nothing():
    assert judge(firmware()) == []
    before = record_of(firmware())
    assert judge(firmware(previous=before)) == []


def test_a_sysupgrade_is_info():
    before = record_of(firmware("23.05.3", "r23809-234f1a2efa"))
    (finding,) = judge(firmware("23.05.5", "r24106-10cc5fcd00", kernel="5.15.167",
                                rom_hash="d" * 64, previous=before))
    assert (finding.kind, finding.severity) == ("integrity.firmware_changed", "info")
    assert finding.evidence["previous_release"] == "23.05.3 r23809-234f1a2efa"
    assert finding.evidence["release"] == "23.05.5 r24106-10cc5fcd00"
    assert "sysupgrade" in finding.summary


def test_a_downgrade_is_low():
    before = record_of(firmware("24.10.0", "r28427-6df0e3d02a"))
    (finding,) = judge(firmware("23.05.3", "r23809-234f1a2efa", previous=before))
    assert finding.severity == "low" and "downgrade" in finding.summary


def test_same_version_other_rom_content_is_high_with_same_packages():
    before = record_of(firmware())
    (finding,) = judge(firmware(rom_hash="e" * 64, previous=before))
    assert finding.severity == "high"
    assert finding.evidence["rom_hash"] == "e" * 64
    assert finding.evidence["previous_rom_hash"] == "a" * 64


def test_same_version_other_packages_is_medium():
    before = record_of(firmware())
    (finding,) = judge(firmware(rom_hash="e" * 64, packages_hash="f" * 64, previous=before))
    assert finding.severity == "medium"


def test_same_rom_other_kernel_is_medium():
    before = record_of(firmware())
    (finding,) = judge(firmware(kernel="5.15.999", previous=before))
    assert finding.severity == "medium" and "kernel" in finding.summary


def test_reported_once_per_run():
    detector = IntegrityFirmwareChanged(Config())
    before = record_of(firmware())
    changed = firmware(rom_hash="e" * 64, previous=before)
    assert len(detector.observe(changed)) == 1
    assert detector.observe(changed) == []
