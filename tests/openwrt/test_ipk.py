"""The .ipk from openwrt/build_ipk.py, opened the way opkg opens it (a gzip'd tar, no `ar`):
member order and names, control fields, file list and modes, conffiles, Installed-Size, and the
same bytes from two builds."""
import gzip
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "openwrt"))
import build_ipk  # noqa: E402

EPOCH = 1700000000


@pytest.fixture(scope="module")
def ipk(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
        return build_ipk.build_ipk(out)


def members(data):
    """[(TarInfo, bytes or None)] of a gzip'd tar, in archive order; directory names end in '/'
    as they are stored (tarfile drops that '/' when it reads)."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:") as tar:
        entries = []
        for info in tar.getmembers():
            if info.isdir():
                info.name += "/"
            entries.append((info, tar.extractfile(info).read() if info.isfile() else None))
        return entries


def inner(ipk_path, name):
    for info, data in members(ipk_path.read_bytes()):
        if info.name == name:
            return data
    raise AssertionError("%s not in the package" % name)


def control_fields(ipk_path):
    control = dict((i.name, d) for i, d in members(inner(ipk_path, "./control.tar.gz")))
    text = control["./control"].decode()
    return text, dict(re.findall(r"^([A-Za-z-]+): ?(.*)$", text, re.M))


def test_named_like_ipkg_build_names_it(ipk):
    version = "%s-%s" % (build_ipk.agent_version(), build_ipk.makefile_metadata()["release"])
    assert ipk.name == "routerwatch_%s_all.ipk" % version


def test_outer_file_is_a_gzipped_gnu_tar_in_ipkg_build_order(ipk):
    raw = ipk.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08", "gzip, not an ar archive (opkg has no ar code path)"
    flags, mtime = raw[3], int.from_bytes(raw[4:8], "little")
    assert flags & 0x08 == 0 and mtime == 0, "gzip -n: no file name, no time stamp"
    tar_bytes = gzip.decompress(raw)
    assert tar_bytes[257:265] == b"ustar  \x00", "GNU tar header"
    entries = members(raw)
    assert [info.name for info, _ in entries] == ["./debian-binary", "./data.tar.gz",
                                                  "./control.tar.gz"]
    assert entries[0][1] == b"2.0\n"
    for info, data in entries:
        assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", "")
        assert info.mtime == EPOCH and info.isfile()
        assert data[:2] == b"\x1f\x8b" and int.from_bytes(data[4:8], "little") == 0 \
            if info.name.endswith(".gz") else True


def test_data_holds_the_agent_launcher_and_openwrt_files_with_their_modes(ipk):
    entries = members(inner(ipk, "./data.tar.gz"))
    modes = {info.name: info.mode for info, _ in entries}
    assert modes["./etc/init.d/routerwatch"] == 0o755
    assert modes["./etc/config/routerwatch"] == 0o600
    assert modes["./etc/uci-defaults/99_routerwatch"] == 0o755
    assert modes["./usr/bin/routerwatch-agent"] == 0o755
    assert modes["./"] == 0o755
    sources = {p.relative_to(REPO / "agent").as_posix()
               for p in (REPO / "agent/routerwatch").rglob("*.py") if "__pycache__" not in p.parts}
    shipped = {name[len("./usr/lib/routerwatch/"):] for name in modes
               if name.startswith("./usr/lib/routerwatch/") and not name.endswith("/")}
    assert shipped == sources, "every .py of the agent, and nothing else"
    for name, mode in modes.items():
        if name.endswith("/"):
            assert mode == 0o755, name
        elif name.endswith(".py"):
            assert mode == 0o644, name
    files = dict((info.name, data) for info, data in entries)
    for shipped_name, source in (("./etc/init.d/routerwatch", "routerwatch.init"),
                                 ("./etc/config/routerwatch", "routerwatch.config"),
                                 ("./etc/uci-defaults/99_routerwatch", "routerwatch.defaults")):
        assert files[shipped_name] == (REPO / "files" / source).read_bytes()
    assert not [n for n in modes if n.endswith(".pyc") or "__pycache__" in n]


def test_data_tar_is_sorted_root_owned_and_dated(ipk):
    entries = members(inner(ipk, "./data.tar.gz"))
    assert gzip.decompress(inner(ipk, "./data.tar.gz"))[:3] == b"./\x00", "stored as ./"
    names = [info.name for info, _ in entries]
    walk = sorted(names, key=lambda n: n.rstrip("/").split("/"))
    assert names == walk, "tar --sort=name order"
    for info, _ in entries:
        assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", "")
        assert info.mtime == EPOCH
        # every parent directory comes before what it holds
        parent = info.name.rstrip("/").rsplit("/", 1)[0] + "/"
        if info.name != "./":
            assert parent in names[:names.index(info.name)]


def test_control_fields(ipk):
    text, control = control_fields(ipk)
    meta = build_ipk.makefile_metadata()
    order = [line.split(":")[0] for line in text.splitlines() if not line.startswith(" ")]
    assert order == ["Package", "Version", "Depends", "Source", "SourceName", "License",
                     "Section", "Maintainer", "Architecture", "Installed-Size", "Description"]
    assert control["Package"] == "routerwatch"
    assert control["Version"] == "%s-%s" % (build_ipk.agent_version(), meta["release"])
    assert control["Architecture"] == "all"
    assert control["License"] == "GPL-2.0-only"
    assert control["SourceName"] == "routerwatch"
    depends = control["Depends"].split(", ")
    assert depends[0] == "libc"
    for needed in ("python3-light", "python3-logging", "python3-paho-mqtt"):
        assert needed in depends
    assert control["Maintainer"] == meta["maintainer"]
    description = text.split("Description: ", 1)[1]
    assert all(line.startswith(" ") for line in description.splitlines()[1:])


def test_installed_size_is_the_uncompressed_data_tar(ipk):
    _text, control = control_fields(ipk)
    assert int(control["Installed-Size"]) == len(gzip.decompress(inner(ipk, "./data.tar.gz")))


def test_control_tar_has_conffiles_and_the_feeds_maintainer_scripts(ipk):
    entries = members(inner(ipk, "./control.tar.gz"))
    assert [info.name for info, _ in entries] == ["./", "./conffiles", "./control",
                                                  "./postinst", "./prerm"]
    files = {info.name: (info.mode, data) for info, data in entries}
    assert files["./conffiles"] == (0o644, b"/etc/config/routerwatch\n")
    assert files["./control"][0] == 0o644
    postinst_mode, postinst = files["./postinst"]
    prerm_mode, prerm = files["./prerm"]
    assert postinst_mode == prerm_mode == 0o755
    assert postinst.decode().splitlines() == [
        "#!/bin/sh", '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0',
        "[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0",
        ". ${IPKG_INSTROOT}/lib/functions.sh", "default_postinst $0 $@"]
    assert prerm.decode().splitlines() == [
        "#!/bin/sh", "[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0",
        ". ${IPKG_INSTROOT}/lib/functions.sh", "default_prerm $0 $@"]


def test_two_builds_give_the_same_bytes(ipk, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    again = build_ipk.build_ipk(tmp_path)
    assert again.read_bytes() == ipk.read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH + 1))
    later = build_ipk.build_ipk(tmp_path / "later")
    assert later.read_bytes() != ipk.read_bytes(), "the time stamps do come from the epoch"


def test_launcher_runs_the_packaged_agent(ipk, tmp_path):
    root = tmp_path / "root"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(inner(ipk, "./data.tar.gz")))) as tar:
        tar.extractall(root, filter="tar")
    launcher = (root / "usr/bin/routerwatch-agent").read_text()
    assert launcher.startswith("#!/usr/bin/python3\n")
    # the launcher looks in /usr/lib/routerwatch; here that directory is under the test's root
    script = tmp_path / "routerwatch-agent"
    script.write_text(launcher.replace('"/usr/lib/routerwatch"',
                                       repr(str(root / "usr/lib/routerwatch"))))
    # -S: no site-packages, so the agent can only come from the unpacked package
    result = subprocess.run([sys.executable, "-S", str(script), "--version"], capture_output=True,
                            text=True, timeout=60, cwd=str(tmp_path),
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "routerwatch %s" % build_ipk.agent_version()
    assert not list((root / "usr/lib/routerwatch").rglob("__pycache__")), (
        "no byte code written beside the sources (flash)")


def test_version_mismatch_stops_the_build(tmp_path, monkeypatch):
    monkeypatch.setattr(build_ipk, "agent_version", lambda: "9.9.9")
    with pytest.raises(build_ipk.PackageError, match="PKG_VERSION:=.* __version__ = '9.9.9'"):
        build_ipk.build_ipk(tmp_path)


def test_make_ipk_command_line(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "openwrt/build_ipk.py"), "--out",
                             str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_file()
    assert Path(result.stdout.strip()).parent == tmp_path
