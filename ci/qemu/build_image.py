#!/usr/bin/env python3
"""Build the emulated OpenWrt-style router: a Debian kernel, an initramfs that does OpenWrt's
preinit (squashfs /rom + writable /overlay, overlayfs as /), a squashfs root built from the
host's Debian binaries, and a separate package layer holding the routerwatch agent.

    python ci/qemu/build_image.py            # build (or reuse) both, print the paths
    python ci/qemu/build_image.py --force    # rebuild even when cached
    python ci/qemu/build_image.py --arch mipsel    # for another CPU (see arches.py)

Everything is cached outside the repository under ~/.cache/routerwatch-qemu (or
$ROUTERWATCH_QEMU_CACHE):
    base-<hash>/   vmlinuz, initramfs.cpio.gz, rootfs.squashfs   (hash of the build inputs:
                   this script, ci/qemu/guest/, the kernel package, host package versions)
    agent-<hash>.cpio                                            (hash of the agent sources and
                   the packaging), so an agent change rebuilds only this small layer.
    <arch>/        the same for a foreign CPU, plus debs/ (its downloaded packages)

On x86_64 the guest userland is copied from the host: busybox-static, dropbear, nft, conntrack,
microsocks and Debian's python3.11 with a trimmed standard library, every shared library found
with ldd. On a foreign CPU (mipsel, s390x) the same Debian packages of that architecture are
fetched with `apt-get download`, unpacked into a sysroot, and copied from there the same way, the
libraries found from the ELF NEEDED entries. The kernel package is fetched with `apt-get download`
and never installed. What differs between CPUs is in arches.py.
"""
import argparse
import functools
import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import arches  # noqa: E402

REPO = HERE.parent.parent
GUEST = HERE / "guest"
CACHE = Path(os.environ.get("ROUTERWATCH_QEMU_CACHE",
                            Path.home() / ".cache" / "routerwatch-qemu"))

HOST_PACKAGES = ("busybox-static", "dropbear-bin", "nftables", "conntrack", "microsocks",
                 "python3.11-minimal", "libpython3.11-stdlib")
# executables copied from the host into the router (guest path = host path)
HOST_BINARIES = ("/usr/sbin/dropbear", "/usr/bin/dropbearkey", "/usr/sbin/nft",
                 "/usr/sbin/conntrack", "/usr/bin/microsocks", "/usr/bin/python3.11")
PYTHON = "/usr/bin/python3.11"
PYLIB = "/usr/lib/python3.11"
SITE = "usr/lib/python3.11/site-packages"     # where OpenWrt's python3 packages put modules
PY_PACKAGES = (("paho-mqtt", "paho"), ("psutil", "psutil"), ("ujson", "ujson"))
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
               "site-packages", "dist-packages", "config-3.11-x86_64-linux-gnu", "venv",
               "unittest", "sqlite3", "dbm", "curses", "msilib"}
DYNLOAD_SKIP = re.compile(r"^(_test|xx|_ctypes_test|_tkinter|_curses|readline|_dbm|_gdbm|nis|"
                          r"ossaudiodev|audioop|_sqlite3|_xxsub|_xxtest)")


def log(msg):
    print("build_image: %s" % msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def output(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


# --------------------------------------------------------------------------- inputs and hashes

def qualified(arch, package):
    """apt's name of `package` for the router's CPU (the host's own needs no suffix)."""
    return package if arch.host_userland else "%s:%s" % (package, arch.debian)


@functools.lru_cache(maxsize=None)      # apt-cache takes seconds; asked three times a build
def kernel_package(arch):
    """The exact linux-image-<abi>-<flavour> the meta package points at, and its version."""
    meta = qualified(arch, arch.kernel_meta)
    pattern = r"Depends: (linux-image-[0-9][^\s:]*-%s)(?::\S+)?\s" % re.escape(arch.kernel_flavour)
    text = output(["apt-cache", "depends", meta])
    match = re.search(pattern, text)
    if not match and os.geteuid() == 0:    # a fresh machine whose package lists are empty
        run(["apt-get", "update", "-q"], stdout=subprocess.DEVNULL)
        text = output(["apt-cache", "depends", meta])
        match = re.search(pattern, text)
    if not match:
        hint = "" if arch.host_userland else " and dpkg --add-architecture %s" % arch.debian
        raise SystemExit("build_image: cannot resolve %s (run apt-get update%s?)" % (meta, hint))
    name = match.group(1)
    policy = output(["apt-cache", "policy", qualified(arch, name)])
    version = re.search(r"Candidate: (\S+)", policy).group(1)
    return name, version


def host_package_versions():
    text = output(["dpkg-query", "-W", "-f", "${Package}=${Version}\n"] + list(HOST_PACKAGES))
    return text.strip()


def package_versions(arch):
    """package=version lines of the router's userland packages."""
    if arch.host_userland:
        return host_package_versions()
    lines = []
    for deb in sorted(download_debs(arch, arches.USERLAND + arches.FOREIGN_EXTRA).values()):
        fields = output(["dpkg-deb", "-f", str(deb), "Package", "Version"])
        meta = dict(re.findall(r"^(\S+): (.*)$", fields, re.M))
        lines.append("%s=%s" % (meta["Package"], meta["Version"]))
    return "\n".join(lines)


def cache_dir(arch):
    """Where `arch`'s images live: the cache itself for x86_64 (as before), a subdirectory
    for the others, so each CPU keeps its own newest builds."""
    return CACHE if arch.host_userland else CACHE / arch.name


def download_debs(arch, packages):
    """{package: path of its .deb for arch.debian}, fetched once with apt-get download."""
    debs = cache_dir(arch) / "debs"
    debs.mkdir(parents=True, exist_ok=True)

    def find(package):
        found = sorted(debs.glob("%s_*_%s.deb" % (package, arch.debian))) or \
            sorted(debs.glob("%s_*_all.deb" % package))
        return found[-1] if found else None

    missing = [p for p in packages if find(p) is None]
    if missing:
        log("apt-get download (%s): %s" % (arch.debian, " ".join(missing)))
        done = subprocess.run(["apt-get", "download", "-q"] + [qualified(arch, p) for p in missing],
                              cwd=debs, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit("build_image: apt-get download failed for %s (needs `dpkg "
                             "--add-architecture %s && apt-get update`):\n%s"
                             % (arch.debian, arch.debian, done.stderr[-2000:]))
    return {p: find(p) for p in packages}


def python_package_dirs(arch):
    """(distribution, version, [paths]) of paho-mqtt, psutil, ujson as installed for this Python;
    for a foreign CPU only the pure-Python paho-mqtt (the others are its Debian packages)."""
    found = []
    for dist_name, module in PY_PACKAGES:
        if not arch.host_userland and dist_name != "paho-mqtt":
            continue
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit("build_image: %s is not installed for %s (make venv installs it)"
                             % (dist_name, sys.executable))
        paths = set()
        for rel in dist.files or ():
            top = rel.parts[0]
            if top.endswith((".dist-info", ".egg-info")) or top == "__pycache__" \
                    or top.endswith("-stubs") or top.startswith(".."):
                continue
            paths.add(Path(dist.locate_file(top)))
        found.append((dist_name, dist.version, sorted(paths)))
    return found


def tree_digest(digest, root, exclude=("__pycache__",)):
    root = Path(root)
    if not root.exists():
        return
    for path in sorted(root.rglob("*")):
        if any(part in exclude for part in path.parts) or path.suffix == ".pyc":
            continue
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        if path.is_file():
            digest.update(path.read_bytes())


def base_key(arch):
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    # what of arches.py goes into the image (its package lists are in package_versions)
    digest.update(repr((arch, arches.COMMON_MODULES)).encode())
    tree_digest(digest, GUEST)
    digest.update(repr(kernel_package(arch)).encode())
    digest.update(package_versions(arch).encode())
    for name, version, _ in python_package_dirs(arch):
        digest.update(("%s=%s" % (name, version)).encode())
    return digest.hexdigest()[:16]


def agent_key():
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    for rel in ("agent/routerwatch", "openwrt", "files", "tests/openwrt/shim"):
        tree_digest(digest, REPO / rel)
    for rel in ("setup.py",):
        digest.update((REPO / rel).read_bytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- helpers

def shared_libraries(binary):
    """Absolute paths of the libraries ldd resolves for `binary` (plus the dynamic loader)."""
    try:
        text = output(["ldd", str(binary)])
    except subprocess.CalledProcessError:
        return []          # static, or not an ELF
    libs = []
    for line in text.splitlines():
        match = re.match(r"^\s*(?:\S+ => )?(/\S+) \(0x", line)
        if match:
            libs.append(match.group(1))
    return libs


class MissingLibrary(SystemExit):
    pass


ELF_NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]")
ELF_INTERP = re.compile(r"Requesting program interpreter: ([^\]]+)\]")


class HostUserland:
    """The host's own files: guest path = host path, libraries found with ldd."""
    sysroot = Path("/")

    def file(self, path):
        return str(path)

    def libraries(self, path):
        return shared_libraries(path)


class ForeignUserland:
    """Files of Debian packages of another CPU unpacked under `sysroot`; a binary's libraries
    are the closure of its ELF NEEDED entries (readelf reads any ELF), found in the multiarch
    and plain library directories of the sysroot, plus its program interpreter."""

    def __init__(self, sysroot, arch):
        self.sysroot = Path(sysroot)
        self.dirs = ("/lib/" + arch.triplet, "/usr/lib/" + arch.triplet, "/lib", "/usr/lib")

    def file(self, path):
        """Host path of guest `path`, following symlinks inside the sysroot (an absolute
        link target is read relative to the sysroot, never the host)."""
        parts = [p for p in str(path).split("/") if p]
        resolved, hops = [], 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                resolved = resolved[:-1]
                continue
            candidate = self.sysroot.joinpath(*resolved, part)
            if candidate.is_symlink():
                hops += 1
                if hops > 40:
                    raise SystemExit("build_image: symlink loop at %s" % candidate)
                target = os.readlink(candidate)
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p and p != "."] + parts
                continue
            resolved.append(part)
        return str(self.sysroot.joinpath(*resolved))

    def _elf(self, path):
        try:
            text = output(["readelf", "-dlW", self.file(path)])
        except subprocess.CalledProcessError:
            return [], None
        interp = ELF_INTERP.search(text)
        return ELF_NEEDED.findall(text), interp.group(1).strip() if interp else None

    def _find(self, soname):
        for directory in self.dirs:
            guest = "%s/%s" % (directory, soname)
            if os.path.exists(self.file(guest)):
                return guest
        return None

    def libraries(self, path):
        found, todo = [], [path]
        while todo:
            names, interp = self._elf(todo.pop())
            if interp and interp not in found:
                found.append(interp)
            for soname in names:
                guest = self._find(soname)
                if guest is None:
                    raise MissingLibrary("build_image: %s needs %s, in none of the downloaded "
                                         "packages (add it to arches.FOREIGN_EXTRA)"
                                         % (path, soname))
                if guest not in found:
                    found.append(guest)
                    todo.append(guest)
        return found


def unpack_userland(arch, work):
    """The userland to copy the router's programs from: the host's, or arch's packages
    unpacked into work/sysroot."""
    if arch.host_userland:
        return HostUserland()
    sysroot = work / "sysroot"
    sysroot.mkdir()
    for deb in download_debs(arch, arches.USERLAND + arches.FOREIGN_EXTRA).values():
        run(["dpkg-deb", "-x", str(deb), str(sysroot)])
    return ForeignUserland(sysroot, arch)


def copy_file(src, root, dest=None):
    """Copy src to root/<dest or src> following symlinks, keeping the mode."""
    dest = Path(root) / (dest or str(src)).lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(src), dest)
    return dest


def copy_with_libraries(binaries, root, userland):
    needed = set()
    for binary in binaries:
        copy_file(userland.file(binary), root, binary)
        needed.update(userland.libraries(binary))
    for lib in sorted(needed):
        copy_file(userland.file(lib), root, lib)


def install_busybox(root, userland, skip=()):
    """busybox plus one symlink per applet, the way OpenWrt's busybox package lays them out
    (the applet list is the host's busybox-static's: the same Debian version on every CPU)."""
    source = "/usr/bin/busybox" if userland.sysroot == Path("/") else userland.file("/bin/busybox")
    copy_file(source, root, "bin/busybox")
    for path in output(["/usr/bin/busybox", "--list-full"]).split():
        if path in skip or path.endswith("/busybox"):
            continue
        link = Path(root) / path
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath("/bin/busybox", "/" + os.path.dirname(path)))


def make_cpio(src_dir, dest, compress=False):
    """newc cpio of src_dir (owned by root), optionally gzipped."""
    names = output(["sh", "-c", "cd '%s' && find . -mindepth 1 | LC_ALL=C sort" % src_dir])
    data = subprocess.run(["cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet"], cwd=src_dir,
                          input=names.encode(), capture_output=True, check=True).stdout
    if compress:
        data = gzip.compress(data, compresslevel=6, mtime=0)
    else:
        data += b"\0" * (-len(data) % 4096)   # a disk image: whole sectors
    Path(dest).write_bytes(data)


def compile_python(root):
    """Byte-compile with the guest's own interpreter so the read-only /rom needs no writes."""
    run([PYTHON, "-m", "compileall", "-q", "-j", "0", str(root)], stdout=subprocess.DEVNULL)


# --------------------------------------------------------------------------- the base image

def fetch_kernel(work, arch):
    name, version = kernel_package(arch)
    deb = download_debs(arch, (name,))[name]
    kernel = work / "kernel"
    run(["dpkg-deb", "-x", str(deb), str(kernel)])
    release = next((kernel / "lib" / "modules").iterdir()).name
    run(["busybox", "depmod", "-b", str(kernel), release])
    return kernel, release


def module_load_order(kernel, release, arch):
    """Paths (relative to lib/modules/<release>) of the router's modules and their dependencies,
    dependencies first, from modules.dep."""
    deps = {}
    for line in (kernel / "lib/modules" / release / "modules.dep").read_text().splitlines():
        module, _, rest = line.partition(":")
        deps[module] = rest.split()
    by_name = {Path(m).name.split(".ko")[0].replace("-", "_"): m for m in deps}
    order = []

    def visit(module):
        if module in order:
            return
        # modules.dep lists the full closure, deepest last; load the deepest first
        for dep in reversed(deps[module]):
            visit(dep)
        order.append(module)

    for name in arch.bus_modules + arches.COMMON_MODULES:
        if name not in by_name:
            builtin = (kernel / "lib/modules" / release / "modules.builtin").read_text()
            if "/%s.ko" % name in builtin:
                continue
            raise SystemExit("build_image: kernel module %s not found" % name)
        visit(by_name[name])
    return order


def build_initramfs(work, kernel, release, order, userland):
    root = work / "initramfs"
    for d in ("proc", "sys", "dev", "rom", "overlay", "newroot"):
        (root / d).mkdir(parents=True, exist_ok=True)
    install_busybox(root, userland)
    moddir = root / "lib/modules"
    for module in order:
        copy_file(kernel / "lib/modules" / release / module, moddir, module)
    (moddir / "load-order").write_text("".join(m + "\n" for m in order))
    shutil.copy2(GUEST / "init", root / "init")
    os.chmod(root / "init", 0o755)
    make_cpio(root, work / "initramfs.cpio.gz", compress=True)


def rom_packages(root, arch):
    """The ROM's package database (/usr/lib/opkg/status + info/*), one package per component."""
    components = {
        "busybox": ["/bin/busybox"],
        "dropbear": ["/usr/sbin/dropbear", "/usr/bin/dropbearkey", "/etc/config/dropbear"],
        "nftables-json": ["/usr/sbin/nft"],
        "conntrack": ["/usr/sbin/conntrack"],
        "microsocks": ["/usr/bin/microsocks"],
        "python3-light": ["/usr/bin/python3.11", "/usr/bin/python3"],
        "base-files": ["/etc/openwrt_release", "/etc/openwrt_version", "/etc/inittab",
                       "/etc/init.d/rcS", "/etc/passwd", "/etc/group", "/etc/shadow",
                       "/etc/config/system", "/etc/config/network", "/usr/lib/os-release"],
        "firewall4": ["/etc/config/firewall", "/etc/nftables.d/fw4.nft"],
    }
    versions = dict(line.split("=", 1) for line in package_versions(arch).splitlines())
    info = Path(root) / "usr/lib/opkg/info"
    info.mkdir(parents=True, exist_ok=True)
    status = []
    for package, files in sorted(components.items()):
        version = {"busybox": versions.get("busybox-static"), "dropbear": versions.get(
            "dropbear-bin"), "conntrack": versions.get("conntrack"),
            "microsocks": versions.get("microsocks")}.get(package) or "1"
        control = ("Package: %s\nVersion: %s\nDepends: libc\nSection: base\nArchitecture: "
                   "%s\nInstalled-Size: 0\nDescription: %s (from the %s Debian "
                   "package)\n" % (package, version, arch.opkg_arch, package,
                                    "host's" if arch.host_userland else arch.debian))
        (info / (package + ".control")).write_text(control)
        (info / (package + ".list")).write_text("".join(f + "\n" for f in files))
        conffiles = [f for f in files if f.startswith("/etc/config/")]
        entry = "Package: %s\nVersion: %s\nDepends: libc\nStatus: install user installed\n" \
                "Architecture: %s\n" % (package, version, arch.opkg_arch)
        if conffiles:
            entry += "Conffiles:\n" + "".join(
                " %s %s\n" % (f, hashlib.sha256((Path(root) / f.lstrip("/")).read_bytes())
                              .hexdigest()) for f in conffiles)
        entry += "Installed-Time: 1700000000\n"
        status.append(entry)
    (Path(root) / "usr/lib/opkg/status").write_text("\n".join(status) + "\n")


def build_rootfs(work, kernel, release, order, arch, userland):
    root = work / "rootfs"
    shutil.copytree(GUEST / "rootfs", root, symlinks=True)
    distrib = root / "etc/openwrt_release"     # the CPU's package architecture, as opkg names it
    distrib.write_text(distrib.read_text().replace("DISTRIB_ARCH='x86_64'",
                                                   "DISTRIB_ARCH='%s'" % arch.opkg_arch))
    if arch.console != "ttyS0":     # the login prompt on the console this machine has
        inittab = root / "etc/inittab"
        inittab.write_text(inittab.read_text().replace("ttyS0::", arch.console + "::"))
    for d in ("proc", "sys", "dev", "tmp", "rom", "overlay", "root", "mnt", "www"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "var").symlink_to("tmp")
    os.chmod(root / "tmp", 0o1777)
    # base-files' /lib/functions.sh, which a package's postinst and prerm source, is the TEST
    # DOUBLE of tests/openwrt/shim: the harness copies it to /tmp/e2e-shim before it runs the
    # maintainer scripts, so until then the link dangles and the scripts do nothing
    (root / "lib").mkdir(exist_ok=True)
    (root / "lib/functions.sh").symlink_to("/tmp/e2e-shim/lib/functions.sh")
    os.chmod(root / "root", 0o700)
    # OpenWrt's dropbear reads root's keys from /etc/dropbear/authorized_keys; Debian's reads
    # ~/.ssh/authorized_keys, so the ROM points one at the other
    (root / "root/.ssh").mkdir(mode=0o700)
    (root / "root/.ssh/authorized_keys").symlink_to("/etc/dropbear/authorized_keys")
    os.chmod(root / "etc/shadow", 0o600)
    os.chmod(root / "etc/init.d/rcS", 0o755)
    install_busybox(root, userland)
    copy_with_libraries(HOST_BINARIES, root, userland)
    (root / "usr/bin/python3").symlink_to("python3.11")
    # OpenWrt ships dropbear's client as dbclient/ssh; the router only needs the server here
    copy_python(root, arch, userland)
    for module in order:
        copy_file(kernel / "lib/modules" / release / module, root / "lib/modules" / release,
                  module)
    for name in ("modules.dep", "modules.alias", "modules.builtin", "modules.order",
                 "modules.symbols"):
        copy_file(kernel / "lib/modules" / release / name, root / "lib/modules" / release, name)
    rom_packages(root, arch)
    squash = work / "rootfs.squashfs"
    run(["mksquashfs", str(root), str(squash), "-comp", "xz", "-all-root", "-noappend",
         "-quiet", "-no-progress", "-processors", str(os.cpu_count() or 2)],
        stdout=subprocess.DEVNULL)


def copy_python(root, arch, userland):
    """Debian's python3.11 with a trimmed stdlib, and paho-mqtt/psutil/ujson in site-packages."""
    dest = Path(root) / PYLIB.lstrip("/")
    source = Path(userland.file(PYLIB))
    needed = set()
    for src in sorted(source.rglob("*")):
        rel = src.relative_to(source)
        if rel.parts[0] in STDLIB_SKIP or rel.parts[0].startswith("config-3.11-") or src.is_dir():
            continue
        if rel.parts[0] == "lib-dynload":
            if DYNLOAD_SKIP.match(src.name):
                continue
            try:
                needed.update(userland.libraries(PYLIB + "/" + str(rel)))
            except MissingLibrary as exc:
                log("leaving out %s: %s" % (src.name, exc))
                continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    if not arch.host_userland:
        # Debian's packages carry no byte code (postinst compiles it); /rom is read-only, so
        # compile here with the host's python3.11: .pyc files are the same on every CPU
        compile_python(dest)
    site = Path(root) / SITE
    site.mkdir(parents=True, exist_ok=True)
    if not arch.host_userland:
        # the compiled modules (psutil, ujson) from the CPU's own Debian packages
        dist = "/usr/lib/python3/dist-packages"
        for src in sorted(Path(userland.file(dist)).iterdir()):
            if not src.name.startswith(("psutil", "ujson")) or src.name.endswith("-info"):
                continue
            sos = sorted(src.rglob("*.so")) if src.is_dir() else [src]
            libraries = set()
            try:
                for so in sos:
                    libraries.update(userland.libraries(dist + "/" + str(so.relative_to(
                        userland.file(dist)))))
            except MissingLibrary as exc:
                if src.name.startswith("psutil"):
                    raise
                log("leaving out %s (the agent runs without it): %s" % (src.name, exc))
                continue
            needed.update(libraries)
            if src.is_dir():
                shutil.copytree(src, site / src.name, ignore=shutil.ignore_patterns(
                    "__pycache__", "tests"))
            else:
                shutil.copy2(src, site / src.name)
    for _, _, paths in python_package_dirs(arch):
        for path in paths:
            if path.is_dir():
                shutil.copytree(path, site / path.name, ignore=shutil.ignore_patterns(
                    "__pycache__", "tests", "*.pyi", "py.typed"))
            else:
                shutil.copy2(path, site / path.name)
            for so in ([path] if path.suffix == ".so" else path.rglob("*.so")
                       if path.is_dir() else []):
                needed.update(shared_libraries(so))
    # Debian's python reads /usr/lib/python3/dist-packages; point it at OpenWrt's site-packages
    dist = Path(root) / "usr/lib/python3/dist-packages"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "openwrt-site-packages.pth").write_text("/" + SITE + "\n")
    for lib in sorted(needed):
        copy_file(userland.file(lib), root, lib)
    compile_python(site)


def build_base(arch, force=False):
    key = base_key(arch)
    cache = cache_dir(arch)
    final = cache / ("base-" + key)
    if final.is_dir() and not force:
        return final
    log("building the %s base image %s (kernel %s)" % (arch.name, key, kernel_package(arch)[0]))
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="base-", dir=cache))
    try:
        kernel, release = fetch_kernel(work, arch)
        order = module_load_order(kernel, release, arch)
        userland = unpack_userland(arch, work)
        build_initramfs(work, kernel, release, order, userland)
        build_rootfs(work, kernel, release, order, arch, userland)
        out = work / "out"
        out.mkdir()
        shutil.copy2(next((kernel / "boot").glob("vmlinuz-*")), out / "vmlinuz")
        shutil.move(str(work / "initramfs.cpio.gz"), out / "initramfs.cpio.gz")
        shutil.move(str(work / "rootfs.squashfs"), out / "rootfs.squashfs")
        shutil.copy2(work / "rootfs/usr/lib/opkg/status", out / "rom-opkg-status")
        (out / "kernel-release").write_text(release + "\n")
        if final.exists():
            shutil.rmtree(final)
        out.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


# --------------------------------------------------------------------------- the agent layer

def agent_package(work):
    """Path of the agent .ipk from openwrt/build_ipk.py, or None while that does not exist."""
    builder = REPO / "openwrt" / "build_ipk.py"
    if not builder.exists():
        return None
    spec = importlib.util.spec_from_file_location("routerwatch_build_ipk", builder)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(builder.parent))
    try:
        spec.loader.exec_module(module)
        if not hasattr(module, "build_ipk"):
            return None
        return Path(module.build_ipk(str(work)))
    finally:
        sys.path.remove(str(builder.parent))


def unpack_ipk(ipk, root):
    """Install an .ipk into root the way opkg does: data.tar.gz into /, control files into
    /usr/lib/opkg/info/<pkg>.*, an entry in /usr/lib/opkg/status. Returns (name, control dict)."""
    members = {}
    with tarfile.open(ipk, "r:gz") as outer:
        for member in outer.getmembers():
            name = member.name[2:] if member.name.startswith("./") else member.name
            if name in ("control.tar.gz", "data.tar.gz"):
                members[name] = outer.extractfile(member).read()
    with tarfile.open(fileobj=io.BytesIO(members["data.tar.gz"]), mode="r:gz") as data:
        files = [m.name[1:] if m.name.startswith("./") else "/" + m.name
                 for m in data.getmembers() if not m.isdir()]
        data.extractall(root, filter="fully_trusted")
    control_files = {}
    with tarfile.open(fileobj=io.BytesIO(members["control.tar.gz"]), mode="r:gz") as control:
        for member in control.getmembers():
            if member.isfile():
                control_files[os.path.basename(member.name)] = (
                    control.extractfile(member).read(), member.mode)
    text = control_files["control"][0].decode()
    fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*)$", text, re.M))
    name = fields["Package"]
    info = Path(root) / "usr/lib/opkg/info"
    info.mkdir(parents=True, exist_ok=True)
    for fname, (data_bytes, mode) in control_files.items():
        target = info / ("%s.%s" % (name, fname))
        target.write_bytes(data_bytes)
        os.chmod(target, mode or 0o644)
    (info / (name + ".list")).write_text("".join(f + "\n" for f in sorted(files)))
    return name, fields, text


def build_agent_layer(base, force=False):
    key = agent_key()
    final = base.parent / ("agent-%s-%s.cpio" % (base.name[5:], key))
    if final.exists() and not force:
        return final
    work = Path(tempfile.mkdtemp(prefix="agent-", dir=base.parent))
    try:
        root = work / "root"
        root.mkdir()
        ipk = agent_package(work)
        status = (base / "rom-opkg-status").read_text()
        if ipk is not None:
            log("installing %s into the package layer" % ipk.name)
            name, fields, _ = unpack_ipk(ipk, root)
            entry = "Package: %s\nVersion: %s\nDepends: %s\nStatus: install user installed\n" \
                    "Architecture: %s\nInstalled-Time: 1700000100\n" % (
                        name, fields.get("Version", ""), fields.get("Depends", ""),
                        fields.get("Architecture", "all"))
            (root / "etc/routerwatch-e2e-packaging").parent.mkdir(parents=True, exist_ok=True)
            (root / "etc/routerwatch-e2e-packaging").write_text("ipk %s\n" % ipk.name)
        else:
            log("no openwrt/build_ipk.py yet: installing the wheel of this repository")
            wheels = work / "wheels"
            run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                 str(REPO)], stdout=subprocess.DEVNULL)
            wheel = next(wheels.glob("routerwatch-*.whl"))
            site = root / SITE
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(site)
            files = ["/" + SITE + "/" + n for n in zipfile.ZipFile(wheel).namelist()]
            script = root / "usr/bin/routerwatch-agent"
            script.parent.mkdir(parents=True, exist_ok=True)
            script.write_text("#!/usr/bin/python3\nimport sys\nfrom routerwatch.cli import "
                              "main\nsys.exit(main())\n")
            os.chmod(script, 0o755)
            files.append("/usr/bin/routerwatch-agent")
            info = root / "usr/lib/opkg/info"
            info.mkdir(parents=True)
            (info / "routerwatch.list").write_text("".join(f + "\n" for f in sorted(files)))
            version = wheel.name.split("-")[1]
            (info / "routerwatch.control").write_text(
                "Package: routerwatch\nVersion: %s\nDepends: python3-light, python3-paho-mqtt, "
                "python3-psutil\nArchitecture: all\n" % version)
            entry = "Package: routerwatch\nVersion: %s\nDepends: python3-light\nStatus: install" \
                    " user installed\nArchitecture: all\nInstalled-Time: 1700000100\n" % version
            (root / "etc").mkdir(exist_ok=True)
            (root / "etc/routerwatch-e2e-packaging").write_text("wheel %s\n" % wheel.name)
        (root / "usr/lib/opkg").mkdir(parents=True, exist_ok=True)
        (root / "usr/lib/opkg/status").write_text(status + "\n" + entry)
        if ipk is None:
            compile_python(root / SITE)   # an .ipk is installed as opkg would: no byte code added
        make_cpio(root, work / "layer.cpio")
        os.replace(work / "layer.cpio", final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def build(force=False, arch=None):
    """(base directory, agent layer path) for `arch` (an arches.Arch; default: chosen by
    ROUTERWATCH_QEMU_ARCH), building what is not cached."""
    arch = arch or arches.get()
    base = build_base(arch, force)
    layer = build_agent_layer(base, force)
    prune_cache(keep=(base, layer), cache=base.parent)
    return base, layer


def prune_cache(keep, cache=CACHE, bases=2, layers=6, stale_seconds=3600):
    """Drop all but the newest few images and agent layers, and work directories that a killed
    build left behind; the agent layer changes with every agent edit."""
    import time
    entries = {"base": [], "agent": []}
    for path in cache.iterdir():
        if re.match(r"\Abase-[0-9a-f]{16}\Z", path.name):
            entries["base"].append(path)
        elif re.match(r"\Aagent-[0-9a-f]{16}-[0-9a-f]{16}\.cpio\Z", path.name):
            entries["agent"].append(path)
        elif path.name.startswith(("base-", "agent-")) and path.is_dir() and \
                time.time() - path.stat().st_mtime > stale_seconds:
            shutil.rmtree(path, ignore_errors=True)
    for kind, limit in (("base", bases), ("agent", layers)):
        ordered = sorted(entries[kind], key=lambda p: p.stat().st_mtime, reverse=True)
        for path in ordered[limit:]:
            if path in keep:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument("--arch", choices=sorted(arches.ARCHES),
                        help="the router's CPU (default: $%s or %s)" % (arches.ENV, arches.DEFAULT))
    args = parser.parse_args(argv)
    base, layer = build(args.force, arches.get(args.arch))
    print("kernel     %s" % (base / "vmlinuz"))
    print("initramfs  %s" % (base / "initramfs.cpio.gz"))
    print("rootfs     %s" % (base / "rootfs.squashfs"))
    print("agent      %s" % layer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
