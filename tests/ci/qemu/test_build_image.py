"""ci/qemu/build_image.py: the parts that need no QEMU - module load order from modules.dep, and
installing an .ipk the way opkg does (files, info/<pkg>.*, the status entry)."""
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "ci" / "qemu"))

import build_image  # noqa: E402


def write_modules(root, release, dep_lines):
    moddir = root / "lib" / "modules" / release
    moddir.mkdir(parents=True)
    (moddir / "modules.dep").write_text("".join(line + "\n" for line in dep_lines))
    (moddir / "modules.builtin").write_text("kernel/net/ipv6/ipv6.ko\n")
    return root


def test_dependencies_load_before_the_modules_that_need_them(tmp_path, monkeypatch):
    monkeypatch.setattr(build_image, "KERNEL_MODULES", ("nft_masq", "virtio_net", "ipv6"))
    root = write_modules(tmp_path, "6.1.0-test", [
        "kernel/net/netfilter/nft_masq.ko: kernel/net/netfilter/nf_tables.ko "
        "kernel/net/netfilter/nf_nat.ko kernel/net/netfilter/nf_conntrack.ko",
        "kernel/net/netfilter/nf_tables.ko: kernel/net/netfilter/nfnetlink.ko",
        "kernel/net/netfilter/nf_nat.ko: kernel/net/netfilter/nf_conntrack.ko",
        "kernel/net/netfilter/nf_conntrack.ko:",
        "kernel/net/netfilter/nfnetlink.ko:",
        "kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio.ko",
        "kernel/drivers/virtio/virtio.ko:",
    ])
    order = build_image.module_load_order(root, "6.1.0-test")
    names = [Path(m).stem for m in order]
    assert names.index("nf_conntrack") < names.index("nf_nat") < names.index("nft_masq")
    assert names.index("nfnetlink") < names.index("nf_tables") < names.index("nft_masq")
    assert names.index("virtio") < names.index("virtio_net")
    assert len(names) == len(set(names)) == 7      # ipv6 is built in: nothing to load


def test_a_missing_module_stops_the_build(tmp_path, monkeypatch):
    monkeypatch.setattr(build_image, "KERNEL_MODULES", ("no_such_module",))
    root = write_modules(tmp_path, "6.1.0-test", ["kernel/fs/overlayfs/overlay.ko:"])
    with pytest.raises(SystemExit, match="no_such_module"):
        build_image.module_load_order(root, "6.1.0-test")


def test_the_agent_ipk_installs_like_opkg(tmp_path):
    builder = REPO / "openwrt" / "build_ipk.py"
    if not builder.exists():
        pytest.skip("openwrt/build_ipk.py is not there")
    spec = importlib.util.spec_from_file_location("build_ipk_for_test", builder)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ipk = Path(module.build_ipk(str(tmp_path / "dist")))
    root = tmp_path / "root"
    root.mkdir()
    name, fields, _ = build_image.unpack_ipk(ipk, root)
    assert name == "routerwatch" and fields["Version"]
    listed = (root / "usr/lib/opkg/info/routerwatch.list").read_text().split()
    assert "/usr/bin/routerwatch-agent" in listed and "/etc/init.d/routerwatch" in listed
    for path in listed:
        assert (root / path.lstrip("/")).exists(), path
    assert (root / "usr/lib/opkg/info/routerwatch.control").read_text().startswith(
        "Package: routerwatch")
    assert (root / "usr/lib/opkg/info/routerwatch.postinst").exists()
