"""End-to-end scenarios against the emulated router (ci/qemu): one booted router, broker and
collector for the whole session; the scenario files run in name order, normal life first and the
agent being killed last, so one scenario's traffic does not land in another's window.

Skipped, with the reason, without qemu-system-x86_64, root, network namespaces or the tools the
attacks use (ci/install-system-packages.sh installs them all).

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

TOOLS = ("qemu-system-x86_64", "hydra", "dbclient", "dropbearkey", "mksquashfs", "cpio",
         "busybox", "apt-get", "dpkg-deb", "curl")


def _missing():
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not find_mosquitto():
        missing.append("mosquitto")
    return missing


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def bench():
    missing = _missing()
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
        print("\n[e2e] router up (%s: %s), agent online after %.1f s; work dir %s"
              % (bench.vm.accel, bench.vm.accel_reason, time.monotonic() - t0, workdir))
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
