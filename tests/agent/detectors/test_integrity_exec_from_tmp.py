"""integrity.exec_from_tmp: given a process snapshot, then programs (and interpreted scripts)
running from /tmp, /var or /dev/shm are reported on the first scan."""
from integrity_helpers import process, snapshot
from routerwatch.detectors.integrity_exec_from_tmp import Config, IntegrityExecFromTmp


def run(snap, **config):
    return IntegrityExecFromTmp(Config(**config)).observe(snap)


def test_a_program_from_tmp_is_high_with_its_ports():
    (finding,) = run(snapshot(process(1, "/sbin/procd"),
                              process(4242, "/tmp/.x", deleted=True, ports=(7777, 11288))))
    assert (finding.kind, finding.severity) == ("integrity.exec_from_tmp", "high")
    assert finding.evidence["pid"] == 4242 and finding.evidence["exe"] == "/tmp/.x"
    assert finding.evidence["deleted"] is True
    assert finding.evidence["listening_ports"] == [7777, 11288]
    assert "7777" in finding.summary and finding.incident == "/tmp/.x"


def test_var_and_dev_shm_too_but_not_normal_programs_or_kernel_threads():
    found = run(snapshot(process(5, "/var/run/m"), process(6, "/dev/shm/k"),
                         process(7, "/usr/sbin/dropbear"), process(2, None)))
    assert [f.evidence["pid"] for f in found] == [5, 6]


def test_an_interpreter_running_a_script_from_tmp_is_medium():
    (finding,) = run(snapshot(process(9, "/bin/busybox", name="sh",
                                      cmdline="sh /tmp/dl.sh 198.51.100.66")))
    assert finding.severity == "medium" and finding.evidence["what"] == "script"
    assert finding.incident == "/tmp/dl.sh"
    assert run(snapshot(process(9, "/bin/busybox", cmdline="sh /etc/rc.common start"))) == []


def test_allowed_prefixes_are_not_reported():
    assert run(snapshot(process(5, "/tmp/vendor/tool")), allowed="/tmp/vendor/") == []
