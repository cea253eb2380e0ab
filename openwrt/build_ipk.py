#!/usr/bin/env python3
"""Build routerwatch's OpenWrt package (.ipk) from this checkout, without the OpenWrt SDK.

    python3 openwrt/build_ipk.py --out dist        (what `make ipk` runs)
    from build_ipk import build_ipk; build_ipk("dist")  -> path of the .ipk

The result is what OpenWrt's scripts/ipkg-build makes and opkg reads: a gzip'd tar (not an `ar`
archive) of ./debian-binary ("2.0"), ./data.tar.gz and ./control.tar.gz, in that order; every tar
in GNU format with numeric owner root:root, names sorted and every mtime SOURCE_DATE_EPOCH
(else the last commit's time); gzip without a name and with mtime 0. Building twice gives the
same bytes.

The metadata comes from openwrt/Makefile (release, license, maintainer, section, DEPENDS,
description, conffiles, and the files/ it installs with which modes); the version from
agent/routerwatch/__init__.py, and the build stops if the Makefile's PKG_VERSION differs.

One deliberate difference from the SDK's Py3Package: this package is `Architecture: all` and
ships the agent's .py sources in /usr/lib/routerwatch (a .pyc is tied to one Python version, and
site-packages is /usr/lib/python3.X), with a /usr/bin/routerwatch-agent launcher that puts that
directory on sys.path, so one package works with every python3 the feed has had (3.11 and on).
"""
import argparse
import gzip
import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAKEFILE = REPO / "openwrt" / "Makefile"
AGENT_PACKAGE = REPO / "agent" / "routerwatch"
PACKAGE_NAME = "routerwatch"
LIB_DIR = "/usr/lib/routerwatch"           # holds routerwatch/ (the Python package)
LAUNCHER_PATH = "/usr/bin/routerwatch-agent"
INSTALL_MODES = {"INSTALL_BIN": 0o755, "INSTALL_CONF": 0o600, "INSTALL_DATA": 0o644}

LAUNCHER = '''#!/usr/bin/python3
"""routerwatch-agent (noarch package): the agent's sources are in %(lib)s, so this
package works with whichever python3 the router has."""
import sys

# no byte code written beside the sources on flash (nor left behind by opkg remove): the init
# script points PYTHONPYCACHEPREFIX at a directory in RAM instead
if sys.pycache_prefix is None:
    sys.dont_write_bytecode = True
sys.path.insert(0, "%(lib)s")

from routerwatch.cli import main  # noqa: E402

sys.exit(main())
''' % {"lib": LIB_DIR}

# the maintainer scripts OpenWrt's package-pack.mk writes for every package: the work is done
# by default_postinst/default_prerm of the router's /lib/functions.sh (run the package's
# uci-defaults, enable and start its init script; in an image root only enable; on removal
# stop and disable)
POSTINST = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
"""
PRERM = """#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
"""


class PackageError(Exception):
    """The checkout cannot be packaged as it is; the text says why."""


# --------------------------------------------------------------------------- metadata

def agent_version():
    text = (AGENT_PACKAGE / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([0-9A-Za-z.+~-]+)"$', text, re.M)
    if not match:
        raise PackageError("no __version__ in %s" % (AGENT_PACKAGE / "__init__.py"))
    return match.group(1)


def _defines(text):
    """{name: body} of every `define NAME ... endef` block."""
    return {m.group(1): m.group(2)
            for m in re.finditer(r"^define (\S+)\n(.*?)^endef$", text, re.M | re.S)}


def _assignments(text):
    """{VAR: value} of the `VAR:=value` lines (backslash continuations joined)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return {m.group(1): m.group(2).strip()
            for m in re.finditer(r"^\s*([A-Z][A-Z0-9_]*)\s*:=(.*)$", joined, re.M)}


def makefile_metadata(path=MAKEFILE):
    """What the package's control file and file list need, read from openwrt/Makefile."""
    text = Path(path).read_text(encoding="utf-8")
    top = _assignments(re.sub(r"^define .*?^endef$", "", text, flags=re.M | re.S))
    defines = _defines(text)
    package = _assignments(defines["Package/%s" % PACKAGE_NAME])
    # like package-defaults.mk: every package depends on libc first; '+' selects, '@' is a
    # build-time condition that never reaches the control file
    depends = ["libc"] + [d.lstrip("+") for d in package.get("DEPENDS", "").split()
                          if not d.startswith("@") and d.lstrip("+") != "libc"]
    installs = []
    for match in re.finditer(r"\$\((INSTALL_BIN|INSTALL_CONF|INSTALL_DATA)\) \./files/(\S+) "
                             r"\$\(1\)(/\S+)", defines["Py3Package/%s/install" % PACKAGE_NAME]):
        installs.append((match.group(2), match.group(3), INSTALL_MODES[match.group(1)]))
    return {
        "version": top["PKG_VERSION"],
        "release": top["PKG_RELEASE"],
        "license": top.get("PKG_LICENSE", ""),
        "maintainer": top.get("PKG_MAINTAINER", ""),
        "section": package.get("SECTION", "opt"),
        "url": package.get("URL", ""),
        "depends": depends,
        "description": defines.get("Package/%s/description" % PACKAGE_NAME, "").strip("\n"),
        "conffiles": defines.get("Package/%s/conffiles" % PACKAGE_NAME, "").split(),
        "installs": installs,   # (file under files/, absolute target, mode)
    }


def control_text(meta, version, installed_size):
    """The control file, fields in the order package-pack.mk writes them."""
    lines = ["Package: %s" % PACKAGE_NAME, "Version: %s" % version,
             "Depends: %s" % ", ".join(meta["depends"]),
             "Source: package/%s" % PACKAGE_NAME, "SourceName: %s" % PACKAGE_NAME]
    if meta["license"]:
        lines.append("License: %s" % meta["license"])
    lines.append("Section: %s" % meta["section"])
    if meta["url"]:
        lines.append("URL: %s" % meta["url"])
    if meta["maintainer"]:
        lines.append("Maintainer: %s" % meta["maintainer"])
    lines += ["Architecture: all", "Installed-Size: %d" % installed_size]
    # package-pack.mk: printf "Description: "; echo "$DESCRIPTION" | sed 's,^[[:space:]]*, ,g'
    description = [re.sub(r"^\s*", " ", line) for line in meta["description"].split("\n")]
    lines.append("Description: " + "\n".join(description))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- archives

def source_date_epoch():
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value:
        if not value.isdigit():
            raise PackageError("SOURCE_DATE_EPOCH must be a whole number, got %r" % value)
        return int(value)
    try:
        out = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"],
                             capture_output=True, text=True, check=True, timeout=30).stdout
        return int(out.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return 0


def _gzip(data):
    """gzip -n: no file name, mtime 0."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as out:
        out.write(data)
    return buffer.getvalue()


def _tar(entries, mtime):
    """GNU tar of {"./path" or "./dir/": (mode, bytes or None)}, root-owned, names sorted the
    way `tar --sort=name` walks a tree (a directory's entry, then its contents)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(entries, key=lambda n: n.rstrip("/").split("/")):
            mode, data = entries[name]
            info = tarfile.TarInfo(name.rstrip("/") if name != "./" else ".")
            info.mode, info.mtime = mode, mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _add_file(entries, path, mode, data):
    """Add ./path with its parent directories (0755)."""
    parts = path.strip("/").split("/")
    entries.setdefault("./", (0o755, None))
    for depth in range(1, len(parts)):
        entries.setdefault("./" + "/".join(parts[:depth]) + "/", (0o755, None))
    entries["./" + "/".join(parts)] = (mode, data)


def data_entries(meta):
    """The package root: the agent's sources, the launcher and the files/ the Makefile installs."""
    entries = {}
    for source in sorted(AGENT_PACKAGE.rglob("*.py")):
        relative = source.relative_to(AGENT_PACKAGE.parent)
        if "__pycache__" in relative.parts:
            continue
        _add_file(entries, "%s/%s" % (LIB_DIR, relative.as_posix()), 0o644, source.read_bytes())
    _add_file(entries, LAUNCHER_PATH, 0o755, LAUNCHER.encode())
    for name, target, mode in meta["installs"]:
        _add_file(entries, target, mode, (REPO / "files" / name).read_bytes())
    return entries


def build_ipk(out_dir):
    """Write routerwatch_<version>-<release>_all.ipk into out_dir; return its path."""
    meta = makefile_metadata()
    version = agent_version()
    if meta["version"] != version:
        raise PackageError("openwrt/Makefile has PKG_VERSION:=%s but agent/routerwatch/"
                           "__init__.py has __version__ = %r: make them the same"
                           % (meta["version"], version))
    full_version = "%s-%s" % (version, meta["release"])
    mtime = source_date_epoch()

    entries = data_entries(meta)
    missing = [c for c in meta["conffiles"] if "." + c not in entries]
    if missing:
        raise PackageError("conffiles not in the package: %s" % ", ".join(missing))
    data_tar = _tar(entries, mtime)

    control = {"./": (0o755, None),
               "./control": (0o644, control_text(meta, full_version, len(data_tar)).encode()),
               "./postinst": (0o755, POSTINST.encode()),
               "./prerm": (0o755, PRERM.encode())}
    if meta["conffiles"]:
        control["./conffiles"] = (0o644, "".join(c + "\n" for c in sorted(meta["conffiles"]))
                                  .encode())
    control_tar = _tar(control, mtime)

    # ipkg-build names the three members on the command line, so they keep this order
    outer = io.BytesIO()
    with tarfile.open(fileobj=outer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in (("./debian-binary", b"2.0\n"), ("./data.tar.gz", _gzip(data_tar)),
                           ("./control.tar.gz", _gzip(control_tar))):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("%s_%s_all.ipk" % (PACKAGE_NAME, full_version))
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(_gzip(outer.getvalue()))
    temporary.replace(path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="dist", help="directory for the .ipk (default: dist)")
    args = parser.parse_args(argv)
    try:
        path = build_ipk(args.out)
    except PackageError as exc:
        print("build_ipk: %s" % exc, file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
