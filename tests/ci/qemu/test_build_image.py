"""ci/qemu/build_image.py: the parts that need no QEMU - module load order from modules.dep, and
installing an .ipk the way opkg does (files, info/<pkg>.*, the status entry)."""
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "ci" / "qemu"))

import arches  # noqa: E402
import build_image  # noqa: E402


def arch_loading(*modules):
    """x86_64's table row with `modules` as all the modules the router asks for."""
    import dataclasses
    return dataclasses.replace(arches.get("x86_64"), bus_modules=tuple(modules))


def write_modules(root, release, dep_lines):
    moddir = root / "lib" / "modules" / release
    moddir.mkdir(parents=True)
    (moddir / "modules.dep").write_text("".join(line + "\n" for line in dep_lines))
    (moddir / "modules.builtin").write_text("kernel/net/ipv6/ipv6.ko\n")
    return root


def test_dependencies_load_before_the_modules_that_need_them(tmp_path, monkeypatch):
    monkeypatch.setattr(arches, "COMMON_MODULES", ())
    arch = arch_loading("nft_masq", "virtio_net", "ipv6")
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
    order = build_image.module_load_order(root, "6.1.0-test", arch)
    names = [Path(m).stem for m in order]
    assert names.index("nf_conntrack") < names.index("nf_nat") < names.index("nft_masq")
    assert names.index("nfnetlink") < names.index("nf_tables") < names.index("nft_masq")
    assert names.index("virtio") < names.index("virtio_net")
    assert len(names) == len(set(names)) == 7      # ipv6 is built in: nothing to load


def test_a_missing_module_stops_the_build(tmp_path, monkeypatch):
    monkeypatch.setattr(arches, "COMMON_MODULES", ())
    root = write_modules(tmp_path, "6.1.0-test", ["kernel/fs/overlayfs/overlay.ko:"])
    with pytest.raises(SystemExit, match="no_such_module"):
        build_image.module_load_order(root, "6.1.0-test", arch_loading("no_such_module"))


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


def test_a_foreign_sysroot_resolves_absolute_links_inside_itself(tmp_path):
    """Debian's packages link /lib/ld.so.1 etc. with absolute targets; followed on the host
    they would copy the host's own (x86) files into a MIPS image."""
    sysroot = tmp_path / "sysroot"
    (sysroot / "lib/mipsel-linux-gnu").mkdir(parents=True)
    (sysroot / "lib/mipsel-linux-gnu/ld-linux.so.3").write_text("loader")
    (sysroot / "lib/ld.so.1").symlink_to("/lib/mipsel-linux-gnu/ld-linux.so.3")
    (sysroot / "usr/bin").mkdir(parents=True)
    (sysroot / "usr/bin/python3.11").write_text("python")
    (sysroot / "usr/bin/python3").symlink_to("python3.11")
    (sysroot / "lib/loop").symlink_to("loop")
    userland = build_image.ForeignUserland(sysroot, arches.get("mipsel"))
    assert userland.file("/lib/ld.so.1") == str(sysroot / "lib/mipsel-linux-gnu/ld-linux.so.3")
    assert userland.file("/usr/bin/python3") == str(sysroot / "usr/bin/python3.11")
    with pytest.raises(SystemExit, match="loop"):
        userland.file("/lib/loop")


def test_every_cpu_has_one_row_and_an_unknown_one_is_refused(monkeypatch):
    assert set(arches.ARCHES) == {"x86_64", "mipsel", "s390x"}
    assert arches.get("s390x").big_endian and not arches.get("mipsel").big_endian
    monkeypatch.delenv(arches.ENV, raising=False)
    assert arches.get().name == "x86_64"
    monkeypatch.setenv(arches.ENV, "mipsel")
    assert arches.get().name == "mipsel"
    monkeypatch.setenv(arches.ENV, "armhf")
    with pytest.raises(SystemExit, match="armhf"):
        arches.get()
    assert arches.get("s390x").device("net", 3) == "virtio-net-ccw,devno=fe.0.0003"
    assert arches.get("x86_64").device("net", 3) == "virtio-net-pci"
    # Malta: every device in a slot Linux gives an interrupt (18-21), two functions a slot
    mipsel = arches.get("mipsel")
    addresses = [mipsel.device(kind, slot).split(",")[1]
                 for slot, kind in enumerate(("blk", "blk", "net", "net", "serial", "rng"), 1)]
    assert addresses == ["addr=0x12.0", "addr=0x12.1", "addr=0x13.0", "addr=0x13.1",
                         "addr=0x14.0", "addr=0x14.1"]
    assert mipsel.device("blk", 1).endswith(",multifunction=on")
