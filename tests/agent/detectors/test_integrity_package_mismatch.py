"""integrity.package_mismatch: given checksum failures and unowned executables, then findings
judged without history; owner-installed (listed) packages never appear here by existing."""
from integrity_helpers import file_finding
from routerwatch.detectors.integrity_package_mismatch import Config, IntegrityPackageMismatch


def run(event, **config):
    return IntegrityPackageMismatch(Config(**config)).observe(event)


def test_a_program_failing_its_apk_checksum_is_high():
    (finding,) = run(file_finding("package_mismatch", "/usr/sbin/tcpdump", "executable",
                                  package="tcpdump", version="4.99.5-r1",
                                  algorithm="sha256-160", expected="34" * 20, actual="64" * 20,
                                  sha256="6" * 64, size=308, conffile=False))
    assert (finding.kind, finding.severity) == ("integrity.package_mismatch", "high")
    assert finding.evidence["reason"] == "checksum"
    assert finding.evidence["package"] == "tcpdump"
    assert finding.evidence["expected"] == "34" * 20 and finding.evidence["actual"] == "64" * 20
    assert "tcpdump" in finding.summary and "sha256-160" in finding.summary


def test_edited_config_files_are_info_or_silent_scripts_medium():
    edited = file_finding("package_mismatch", "/etc/config/dropbear", "routine", conffile=True,
                          package="dropbear")
    assert run(edited) == []
    assert run(edited, report_routine=True)[0].severity == "info"
    assert run(file_finding("package_mismatch", "/etc/sysctl.conf", "config",
                            package="procps"))[0].severity == "info"
    assert run(file_finding("package_mismatch", "/usr/libexec/rpcd/x", "script",
                            package="rpcd"))[0].severity == "medium"


def test_an_unowned_binary_is_high_and_unowned_scripts_depend_on_where():
    (binary,) = run(file_finding("new_executable", "/usr/bin/xlogin", "executable", elf=True,
                                 sha256="9" * 64, size=1000, mode="100755"))
    assert binary.severity == "high" and binary.evidence["reason"] == "unowned"
    (autostart,) = run(file_finding("new_executable", "/etc/init.d/xlogin", "script"))
    assert autostart.severity == "medium"
    (own_script,) = run(file_finding("new_executable", "/root/backup.sh", "script"))
    assert own_script.severity == "low"
    assert run(file_finding("new_executable", "/root/backup.sh", "script"),
               unowned_script_severity="info")[0].severity == "info"


def test_other_findings_are_not_this_detectors():
    assert run(file_finding("shadowed", "/usr/sbin/dropbear", "executable")) == []
