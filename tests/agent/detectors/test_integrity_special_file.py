"""integrity.special_file: given a FIFO, device or socket the scan found in the overlay, then high
when it stands in for a /rom file or sits on a sensitive path, medium in a code directory."""
from integrity_helpers import file_finding
from routerwatch.detectors.integrity_special_file import Config, IntegritySpecialFile


def run(event, **config):
    return IntegritySpecialFile(Config(**config)).observe(event)


def test_a_fifo_over_etc_passwd_is_high():
    (finding,) = run(file_finding("special_file", "/etc/passwd", "config", sensitive=True,
                                  file_type="fifo", mode="10644", shadows_rom=True,
                                  rom_mode="100644", rom_size=120))
    assert (finding.kind, finding.severity) == ("integrity.special_file", "high")
    assert finding.evidence["file_type"] == "fifo" and finding.evidence["shadows_rom"] is True
    assert finding.evidence["rom_mode"] == "100644"
    assert "FIFO /etc/passwd" in finding.summary and "shadows the /rom file" in finding.summary


def test_a_device_node_in_a_program_directory_is_medium():
    (finding,) = run(file_finding("special_file", "/usr/sbin/helper", "data",
                                  file_type="block_device", mode="60600", shadows_rom=False,
                                  rdev="31:3"))
    assert finding.severity == "medium" and finding.evidence["rdev"] == "31:3"
    assert "block device /usr/sbin/helper" in finding.summary


def test_severities_are_configurable_and_other_findings_ignored():
    event = file_finding("special_file", "/etc/init.d/x", "script", sensitive=True,
                         file_type="socket", mode="140755", shadows_rom=False)
    assert run(event, severity="critical")[0].severity == "critical"
    assert run(file_finding("whiteout", "/etc/passwd", "config")) == []
