"""integrity.deleted_exe: given a process whose program was deleted, then high (critical from
/tmp); lowered when a file of that name exists again (a package upgrade of a running service)."""
from integrity_helpers import process, snapshot
from routerwatch.detectors.integrity_deleted_exe import Config, IntegrityDeletedExe


def run(snap, **config):
    return IntegrityDeletedExe(Config(**config)).observe(snap)


def test_a_deleted_program_from_tmp_is_critical():
    (finding,) = run(snapshot(process(4242, "/tmp/.x", deleted=True, ports=(7777,))))
    assert (finding.kind, finding.severity) == ("integrity.deleted_exe", "critical")
    assert finding.evidence["exe"] == "/tmp/.x" and finding.evidence["replaced_on_disk"] is False
    assert finding.evidence["listening_ports"] == [7777]


def test_a_deleted_program_elsewhere_is_high():
    (finding,) = run(snapshot(process(77, "/usr/bin/relay", deleted=True)))
    assert finding.severity == "high"


def test_replaced_on_disk_is_lower():
    (finding,) = run(snapshot(process(1024, "/usr/sbin/dropbear", deleted=True, replaced=True)))
    assert finding.severity == "medium" and finding.evidence["replaced_on_disk"] is True
    assert "replaced" in finding.summary


def test_programs_still_on_disk_are_not_reported():
    assert run(snapshot(process(1, "/sbin/procd"), process(2, None))) == []
