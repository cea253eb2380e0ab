"""The e2e session's work dir holds the owner's private SSH key, the router's disk and the
collector's database: the `bench` fixture removes it when the session ends, whatever happened,
unless ROUTERWATCH_E2E_KEEP=1. Checked with a stand-in for the router, so no VM boots here."""
import contextlib
import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def load_conftest():
    spec = importlib.util.spec_from_file_location("e2e_conftest_under_test", HERE / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeBench:
    """What Bench leaves in its work dir, without a router: a private key and a database."""
    made = []

    def __init__(self, workdir):
        self.workdir = workdir
        self.metrics = {}
        arch = type("Arch", (), {"name": "stand-in"})()
        self.vm = type("VM", (), {"accel": "none", "accel_reason": "stand-in", "arch": arch})()
        FakeBench.made.append(self)

    def start(self):
        (self.workdir / "admin_ed25519").write_bytes(b"PRIVATE KEY")
        (self.workdir / "collector.sqlite").write_bytes(b"")

    def close(self):
        pass


@pytest.mark.parametrize("keep, fails", [("", False), ("", True), ("1", False)])
def test_the_session_work_dir_is_removed_with_its_private_key(monkeypatch, keep, fails):
    conftest = load_conftest()
    monkeypatch.setattr(conftest, "Bench", FakeBench)
    monkeypatch.setenv("ROUTERWATCH_E2E_KEEP", keep)
    workdir = None
    try:
        with pytest.raises(RuntimeError) if fails else contextlib.nullcontext():
            with conftest.bench_session() as bench:
                workdir = bench.workdir
                assert workdir.name.startswith("routerwatch-e2e-")
                assert (workdir / "admin_ed25519").exists()
                if fails:
                    raise RuntimeError("a scenario broke the session")
        assert workdir.exists() == (keep == "1")
    finally:
        if workdir is not None:
            conftest.remove_workdir(workdir, keep=False)
