"""The package's postinst/prerm and its uci-defaults under the OpenWrt test doubles: on a live
router the install runs the uci-defaults, enables and starts the service and removal stops and
disables it; inside an image root (IPKG_INSTROOT, ImageBuilder) they only enable and disable."""
import gzip
import io
import shutil
import stat
import sys
import tarfile
from pathlib import Path

import pytest

from routerdouble import FILES, SHIM, RouterDouble, busybox

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "openwrt"))
import build_ipk  # noqa: E402

MINIMAL = """
config agent 'agent'
	option enabled '1'

config mqtt 'mqtt'
	option host 'broker.example'
"""


@pytest.fixture(scope="module")
def ipk(tmp_path_factory):
    return build_ipk.build_ipk(tmp_path_factory.mktemp("dist"))


def opkg_install(ipk_path, root):
    """What opkg does before it runs postinst: unpack data.tar.gz into root and keep the control
    files and the file list in usr/lib/opkg/info."""
    with tarfile.open(ipk_path, "r:gz") as outer:
        data = outer.extractfile("./data.tar.gz").read()
        control = outer.extractfile("./control.tar.gz").read()
    info = root / "usr/lib/opkg/info"
    info.mkdir(parents=True, exist_ok=True)
    listed = []
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        tar.extractall(root, filter="tar")
        listed = ["/" + m.name[2:] for m in tar.getmembers() if m.isfile()]
    (info / "routerwatch.list").write_text("".join(p + "\n" for p in listed))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(control))) as tar:
        for member in tar.getmembers():
            if member.isfile():
                target = info / ("routerwatch." + member.name[2:])
                target.write_bytes(tar.extractfile(member).read())
                target.chmod(member.mode)
    for script in ("postinst", "prerm"):
        # on a router /lib/functions.sh is base-files'; here the double stands in for it
        path = info / ("routerwatch." + script)
        path.write_text(path.read_text().replace("${IPKG_INSTROOT}/lib/functions.sh",
                                                 "${IPKG_INSTROOT:-$SHIM_DIR}/lib/functions.sh"))


@pytest.fixture
def live(tmp_path, ipk):
    busybox()
    router = RouterDouble(tmp_path)
    router.init_path.unlink()
    opkg_install(ipk, router.root)
    router.write_uci(MINIMAL)
    return router


@pytest.fixture
def image(tmp_path, ipk):
    """An image root being assembled, with base-files' scripts (here: the doubles) in it."""
    busybox()
    router = RouterDouble(tmp_path)
    router.init_path.unlink()
    opkg_install(ipk, router.root)
    (router.root / "lib").mkdir(exist_ok=True)
    shutil.copy(SHIM / "lib/functions.sh", router.root / "lib/functions.sh")
    shutil.copy(SHIM / "etc/rc.common", router.root / "etc/rc.common")
    return router


def run_script(router, name, **env):
    return router.sh(str(router.root / ("usr/lib/opkg/info/routerwatch.%s" % name)), **env)


def rc_d(router):
    path = router.root / "etc/rc.d"
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def test_install_on_a_live_router_runs_uci_defaults_enables_and_starts(live):
    result = run_script(live, "postinst")
    assert result.returncode == 0, result.stderr + live.syslog()
    assert not (live.root / "etc/uci-defaults/99_routerwatch").exists(), "ran and was removed"
    assert rc_d(live) == ["K10routerwatch", "S99routerwatch"]
    names = [name for name, _ in live.procd_calls()]
    assert names.count("procd_open_instance") == 1, "started"
    assert live.config_json.is_file()
    assert stat.S_IMODE(live.uci_path.stat().st_mode) == 0o600


def test_install_into_an_image_root_only_enables(image):
    result = run_script(image, "postinst", IPKG_INSTROOT=str(image.root))
    assert result.returncode == 0, result.stderr
    assert rc_d(image) == ["K10routerwatch", "S99routerwatch"]
    assert (image.root / "etc/uci-defaults/99_routerwatch").exists(), "runs at first boot"
    assert image.procd_calls() == [], "nothing starts while an image is assembled"
    assert not image.config_json.exists()


def test_ipkg_no_script_skips_everything(live):
    assert run_script(live, "postinst", IPKG_NO_SCRIPT="1").returncode == 0
    assert rc_d(live) == [] and live.procd_calls() == []
    assert (live.root / "etc/uci-defaults/99_routerwatch").exists()


def test_removal_from_a_live_router_stops_and_disables(live):
    assert run_script(live, "postinst").returncode == 0
    live.clear_procd_log()
    result = run_script(live, "prerm")
    assert result.returncode == 0, result.stderr
    assert rc_d(live) == []
    assert live.procd_calls() == [("procd_kill", ("routerwatch", ""))]


def test_removal_from_an_image_root_only_disables(image):
    assert run_script(image, "postinst", IPKG_INSTROOT=str(image.root)).returncode == 0
    assert run_script(image, "prerm", IPKG_INSTROOT=str(image.root)).returncode == 0
    assert rc_d(image) == [] and image.procd_calls() == []


# --------------------------------------------------------------------------- uci-defaults

def run_defaults(router):
    script = router.root / "etc/uci-defaults/99_routerwatch"
    shutil.copy(FILES / "routerwatch.defaults", script)
    return router.sh(str(script))


def test_uci_defaults_completes_an_image_providers_config_and_makes_it_private(tmp_path):
    busybox()
    router = RouterDouble(tmp_path)
    router.write_uci("config mqtt 'mqtt'\n\toption host 'broker.example'\n"
                     "\toption password 'secret'\n")
    router.uci_path.chmod(0o644)
    result = run_defaults(router)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(router.uci_path.stat().st_mode) == 0o600
    text = router.uci_path.read_text()
    assert "config agent 'agent'" in text
    assert "option host 'broker.example'" in text and "option password 'secret'" in text
    # idempotent: a second run changes nothing
    assert run_defaults(router).returncode == 0
    assert router.uci_path.read_text() == text


def test_uci_defaults_leaves_the_shipped_config_as_it_is(tmp_path):
    busybox()
    router = RouterDouble(tmp_path)
    before = router.uci_path.read_text()
    assert run_defaults(router).returncode == 0
    assert router.uci_path.read_text() == before, "device_id stays empty: the agent derives it"


def test_uci_defaults_creates_a_missing_config(tmp_path):
    busybox()
    router = RouterDouble(tmp_path)
    router.uci_path.unlink()
    assert run_defaults(router).returncode == 0
    assert router.uci_path.read_text() == "config agent 'agent'\n\nconfig mqtt 'mqtt'\n"
    assert stat.S_IMODE(router.uci_path.stat().st_mode) == 0o600


def test_uci_defaults_ends_with_exit_0():
    lines = (FILES / "routerwatch.defaults").read_text().strip().splitlines()
    assert lines[0] == "#!/bin/sh" and lines[-1] == "exit 0"
