"""integrity.baseline_drift: given a changed tracked file, then a severity by path: access and
autostart paths high, shadow and /www medium, routine config info, package-owned at most low."""
from integrity_helpers import file_finding
from routerwatch.detectors.integrity_baseline_drift import Config, IntegrityBaselineDrift


def drift(path, cls, change="modified", **detail):
    return file_finding("baseline_drift", path, cls, first_scan=False, change=change,
                        sha256="1" * 64, baseline_sha256="2" * 64, **detail)


def severity(event, **config):
    found = IntegrityBaselineDrift(Config(**config)).observe(event)
    return found[0].severity if found else None


def test_an_edited_authorized_keys_is_high_with_evidence():
    (finding,) = IntegrityBaselineDrift(Config()).observe(
        drift("/etc/dropbear/authorized_keys", "config", sensitive=True, size=185,
              baseline_size=92))
    assert (finding.kind, finding.severity) == ("integrity.baseline_drift", "high")
    assert finding.evidence["change"] == "modified"
    assert finding.evidence["sha256"] == "1" * 64
    assert finding.evidence["baseline_sha256"] == "2" * 64
    assert finding.incident == "/etc/dropbear/authorized_keys"


def test_severity_by_path():
    assert severity(drift("/etc/crontabs/root", "script", change="added")) == "high"
    assert severity(drift("/etc/rc.local", "script")) == "high"
    assert severity(drift("/etc/passwd", "config")) == "high"
    assert severity(drift("/etc/init.d/xlogin", "script", change="added")) == "high"
    assert severity(drift("/etc/shadow", "routine")) == "medium"
    assert severity(drift("/www/index.html", "script")) == "medium"
    assert severity(drift("/etc/config/firewall", "routine")) == "low"
    assert severity(drift("/etc/config/network", "routine")) == "info"
    assert severity(drift("/usr/bin/new", "executable", change="added")) == "high"
    assert severity(drift("/etc/sysctl.conf", "config")) == "low"


def test_package_owned_files_are_at_most_low_and_info_when_verified():
    assert severity(drift("/etc/init.d/tcpdumpd", "script", change="added",
                          package_owned=True)) == "low"
    assert severity(drift("/usr/sbin/tcpdump", "executable", package_owned=True,
                          package_verified=True)) == "info"


def test_removed_files_run_nothing_new():
    assert severity(drift("/etc/crontabs/root", "script", change="removed")) == "low"
    assert severity(drift("/etc/config/wireless", "routine", change="removed")) == "info"


def test_routine_changes_can_be_silenced_and_paths_ignored():
    assert severity(drift("/etc/config/network", "routine"), report_routine=False) is None
    assert severity(drift("/etc/myapp/state", "config"), ignore="/etc/myapp/*") is None


def test_other_findings_are_not_this_detectors():
    assert severity(file_finding("shadowed", "/etc/passwd", "config")) is None
