"""ci/install-system-packages.sh: `demo` installs what the demo needs and nothing of the test
toolchain; `test` (the default, what CI runs) installs everything. Run against stand-ins for
dpkg-query (nothing installed) and apt-get (records what it was asked to install)."""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "ci" / "install-system-packages.sh"


def asked_to_install(tmp_path, *args):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "apt-get.args"
    (bin_dir / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")          # nothing is installed
    # `apt-get download` leaves a package in the current directory, as the real one does
    (bin_dir / "apt-get").write_text('#!/bin/sh\necho "$@" >> %s\n'
                                     '[ "$1" = download ] && touch prometheus_0_amd64.deb\n'
                                     'exit 0\n' % record)
    (bin_dir / "dpkg-deb").write_text('#!/bin/sh\necho "dpkg-deb $@" >> %s\n' % record)
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    # no foreign architecture yet: the test set adds them (recorded, never done here)
    (bin_dir / "dpkg").write_text('#!/bin/sh\necho "dpkg $@" >> %s\n' % record)
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    result = subprocess.run(["bash", str(SCRIPT)] + list(args), capture_output=True, text=True,
                            env=dict(os.environ, PATH="%s:/usr/bin:/bin" % bin_dir,
                                     ROUTERWATCH_PROMETHEUS_DIR=str(tmp_path / "prometheus")),
                            timeout=60)
    calls = record.read_text().splitlines() if record.exists() else []
    installs = [line.split() for line in calls if line.split()[:1] == ["install"]]
    return result, {word for call in installs for word in call if not word.startswith("-")
                    and word != "install"}


def test_the_demo_set_is_make_mosquitto_and_a_venv(tmp_path):
    result, packages = asked_to_install(tmp_path, "demo")
    assert result.returncode == 0, result.stderr
    assert packages == {"make", "mosquitto", "python3-venv"}


def test_the_test_set_is_the_default_and_holds_the_demo_set(tmp_path):
    result, packages = asked_to_install(tmp_path)
    assert result.returncode == 0, result.stderr
    assert {"mosquitto", "python3-venv", "qemu-system-x86", "hydra", "fail2ban",
            "busybox-static", "openssl"} <= packages
    (tmp_path / "named").mkdir()
    _, named = asked_to_install(tmp_path / "named", "test")
    assert named == packages


def test_an_unknown_set_is_refused(tmp_path):
    result, packages = asked_to_install(tmp_path, "everything")
    assert result.returncode == 2 and "usage:" in result.stderr and not packages


@pytest.mark.parametrize("target, packages_set", [("demo", "demo"), ("test", "test"),
                                                  ("unit", None)])
def test_make_targets_install_their_own_set(target, packages_set):
    plan = subprocess.run(["make", "-n", "-C", str(REPO), target], capture_output=True,
                          text=True, timeout=60).stdout
    installs = [line for line in plan.splitlines() if "install-system-packages.sh" in line]
    if packages_set is None:
        assert installs == []
    else:
        assert installs == ["bash ci/install-system-packages.sh %s" % packages_set]


def test_the_test_set_adds_the_router_cpus_architectures_for_their_packages(tmp_path):
    result, packages = asked_to_install(tmp_path)
    assert result.returncode == 0, result.stderr
    assert {"qemu-system-mips", "qemu-system-misc", "binutils"} <= packages
    calls = (tmp_path / "apt-get.args").read_text().splitlines()
    assert "dpkg --add-architecture mipsel" in calls and "dpkg --add-architecture s390x" in calls
    # the new architectures' package lists are fetched before anything is downloaded
    assert calls.index("dpkg --add-architecture s390x") < calls.index("update -q")
    (tmp_path / "demo").mkdir()
    asked_to_install(tmp_path / "demo", "demo")
    demo_calls = (tmp_path / "demo" / "apt-get.args").read_text().splitlines()
    assert not [c for c in demo_calls if "add-architecture" in c]


def test_the_test_set_fetches_prometheus_without_installing_it(tmp_path):
    result, packages = asked_to_install(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "prometheus" not in packages      # no service, no system user: only its binary
    calls = (tmp_path / "apt-get.args").read_text().splitlines()
    assert "download -q prometheus" in calls
    assert "dpkg-deb -x %s %s" % (tmp_path / "prometheus" / "prometheus_0_amd64.deb",
                                  tmp_path / "prometheus" / "root") in calls
    assert not list((tmp_path / "prometheus").glob("*.deb"))   # the package is not kept
    (tmp_path / "demo").mkdir()
    asked_to_install(tmp_path / "demo", "demo")
    assert not [c for c in (tmp_path / "demo" / "apt-get.args").read_text().splitlines()
                if "download" in c]
