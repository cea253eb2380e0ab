"""End-to-end scenarios against the emulated router (ci/qemu): one booted router, broker and
collector for the whole session; the scenario files run in name order, normal life first and the
agent being killed last, so one scenario's traffic does not land in another's window.

The router's CPU is ROUTERWATCH_QEMU_ARCH's (x86_64 by default, mipsel, s390x; `make e2e
ARCH=mipsel`). A scenario runs on x86_64 only unless it is marked
@pytest.mark.router_arches("x86_64", "mipsel", ...) with the CPUs it is meant for; on the others
it is deselected, so `pytest tests/e2e` with ROUTERWATCH_QEMU_ARCH=mipsel runs the mipsel subset.

Skipped, with the reason, without the CPU's qemu-system-*, root, network namespaces or the tools
the attacks use (ci/install-system-packages.sh installs them all); under CI=true a missing tool
is a failure instead.

The session's work dir (/tmp/routerwatch-e2e-*: the router's disk and console log, the broker,
the collector's database, the owner's private SSH key) is removed at the end;
ROUTERWATCH_E2E_KEEP=1 keeps it to look at after a failure.
"""
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from router_harness import Bench, netns  # noqa: E402
from broker import find_mosquitto, missing_tool  # noqa: E402

import arches  # noqa: E402  (ci/qemu, put on sys.path by router_harness)

TOOLS = ("hydra", "dbclient", "dropbearkey", "mksquashfs", "cpio",
         "busybox", "apt-get", "dpkg-deb", "curl")
FOREIGN_TOOLS = ("readelf",)


def router_arch():
    return arches.get()


def _missing():
    arch = router_arch()
    tools = (arch.qemu,) + TOOLS + (() if arch.host_userland else FOREIGN_TOOLS)
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not find_mosquitto():
        missing.append("mosquitto")
    return missing


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    arch = router_arch().name
    kept, deselected = [], []
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(pytest.mark.e2e)
            marker = item.get_closest_marker("router_arches")
            if arch not in (marker.args if marker else (arches.DEFAULT,)):
                deselected.append(item)
                continue
        kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture(scope="session")
def bench():
    missing = _missing()
    if missing and os.environ.get("CI") == "true":
        pytest.fail("end-to-end tests need %s (ci/install-system-packages.sh installs them)"
                    % ", ".join(missing))
    if missing:
        missing_tool("end-to-end tests need %s (ci/install-system-packages.sh installs them)"
                    % ", ".join(missing))
    reason = netns.netns_available()
    if reason:
        pytest.skip("end-to-end tests: %s" % reason)
    with bench_session() as started:
        yield started


@contextlib.contextmanager
def bench_session():
    """The started Bench in a fresh work dir, closed and its work dir removed at the end."""
    workdir = Path(tempfile.mkdtemp(prefix="routerwatch-e2e-"))
    bench = Bench(workdir)
    t0 = time.monotonic()
    try:
        bench.start()
        print("\n[e2e] %s router up (%s: %s), agent online after %.1f s; work dir %s"
              % (bench.vm.arch.name, bench.vm.accel, bench.vm.accel_reason,
                 time.monotonic() - t0, workdir))
        yield bench
    finally:
        bench.metrics["session_seconds"] = round(time.monotonic() - t0, 1)
        bench.close()
        remove_workdir(workdir)


def remove_workdir(workdir, keep=None):
    """Remove the session's work dir (a private key is in it) unless ROUTERWATCH_E2E_KEEP=1."""
    if keep is None:
        keep = os.environ.get("ROUTERWATCH_E2E_KEEP") == "1"
    if keep:
        print("\n[e2e] work dir kept: %s" % workdir)
        return
    shutil.rmtree(workdir, ignore_errors=True)
