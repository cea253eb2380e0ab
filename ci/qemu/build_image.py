#!/usr/bin/env python3
"""Build the emulated OpenWrt-style router: a Debian kernel, an initramfs that does OpenWrt's
preinit (squashfs /rom + writable /overlay, overlayfs as /), a squashfs root built from the
host's Debian binaries, and a separate package layer holding the routerwatch agent.

    python ci/qemu/build_image.py            # build (or reuse) both, print the paths
    python ci/qemu/build_image.py --force    # rebuild even when cached

Everything is cached outside the repository under ~/.cache/routerwatch-qemu (or
$ROUTERWATCH_QEMU_CACHE):
    base-<hash>/   vmlinuz, initramfs.cpio.gz, rootfs.squashfs   (hash of the build inputs:
                   this script, ci/qemu/guest/, the kernel package, host package versions)
    agent-<hash>.cpio                                            (hash of the agent sources and
                   the packaging), so an agent change rebuilds only this small layer.

The guest userland is copied from the host: busybox-static, dropbear, nft, conntrack, microsocks
and Debian's python3.11 with a trimmed standard library, every shared library found with ldd.
The kernel package is fetched with `apt-get download` and never installed.
"""
import argparse
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
REPO = HERE.parent.parent
GUEST = HERE / "guest"
CACHE = Path(os.environ.get("ROUTERWATCH_QEMU_CACHE",
                            Path.home() / ".cache" / "routerwatch-qemu"))

KERNEL_META_PACKAGE = "linux-image-cloud-amd64"   # the small flavour: virtio guests only
# what the router needs from the kernel; dependencies come from modules.dep
KERNEL_MODULES = (
    "virtio_pci", "virtio_net", "virtio_blk", "virtio_console",
    "squashfs", "overlay", "bridge",
    "nf_conntrack", "nf_nat", "nf_tables", "nft_ct", "nft_nat", "nft_masq", "nft_chain_nat",
    "nft_reject_inet", "nf_conntrack_netlink",
)
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

def kernel_package():
    """The exact linux-image-<abi>-cloud-amd64 the meta package points at, and its version."""
    text = output(["apt-cache", "depends", KERNEL_META_PACKAGE])
    match = re.search(r"Depends: (linux-image-[0-9][^\s]*-cloud-amd64)\s", text)
    if not match and os.geteuid() == 0:    # a fresh machine whose package lists are empty
        run(["apt-get", "update", "-q"], stdout=subprocess.DEVNULL)
        text = output(["apt-cache", "depends", KERNEL_META_PACKAGE])
        match = re.search(r"Depends: (linux-image-[0-9][^\s]*-cloud-amd64)\s", text)
    if not match:
        raise SystemExit("build_image: cannot resolve %s (run apt-get update?)"
                         % KERNEL_META_PACKAGE)
    name = match.group(1)
    policy = output(["apt-cache", "policy", name])
    version = re.search(r"Candidate: (\S+)", policy).group(1)
    return name, version


def host_package_versions():
    text = output(["dpkg-query", "-W", "-f", "${Package}=${Version}\n"] + list(HOST_PACKAGES))
    return text.strip()


def python_package_dirs():
    """(distribution, version, [paths]) of paho-mqtt, psutil, ujson as installed for this Python."""
    found = []
    for dist_name, module in PY_PACKAGES:
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


def base_key():
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    tree_digest(digest, GUEST)
    digest.update(repr(kernel_package()).encode())
    digest.update(host_package_versions().encode())
    for name, version, _ in python_package_dirs():
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


def copy_file(src, root, dest=None):
    """Copy src to root/<dest or src> following symlinks, keeping the mode."""
    dest = Path(root) / (dest or str(src)).lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(src), dest)
    return dest


def copy_with_libraries(binaries, root):
    needed = set()
    for binary in binaries:
        copy_file(binary, root)
        needed.update(shared_libraries(binary))
    for lib in sorted(needed):
        copy_file(lib, root)


def install_busybox(root, skip=()):
    """busybox plus one symlink per applet, the way OpenWrt's busybox package lays them out."""
    copy_file("/usr/bin/busybox", root, "bin/busybox")
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

def fetch_kernel(work):
    name, version = kernel_package()
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    existing = sorted(debs.glob("%s_*.deb" % name))
    if not existing:
        log("apt-get download %s" % name)
        run(["apt-get", "download", "-q", name], cwd=debs, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        existing = sorted(debs.glob("%s_*.deb" % name))
    kernel = work / "kernel"
    run(["dpkg-deb", "-x", str(existing[-1]), str(kernel)])
    release = next((kernel / "lib" / "modules").iterdir()).name
    run(["busybox", "depmod", "-b", str(kernel), release])
    return kernel, release


def module_load_order(kernel, release):
    """Paths (relative to lib/modules/<release>) of KERNEL_MODULES and their dependencies,
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

    for name in KERNEL_MODULES:
        if name not in by_name:
            builtin = (kernel / "lib/modules" / release / "modules.builtin").read_text()
            if "/%s.ko" % name in builtin:
                continue
            raise SystemExit("build_image: kernel module %s not found" % name)
        visit(by_name[name])
    return order


def build_initramfs(work, kernel, release, order):
    root = work / "initramfs"
    for d in ("proc", "sys", "dev", "rom", "overlay", "newroot"):
        (root / d).mkdir(parents=True, exist_ok=True)
    install_busybox(root)
    moddir = root / "lib/modules"
    for module in order:
        copy_file(kernel / "lib/modules" / release / module, moddir, module)
    (moddir / "load-order").write_text("".join(m + "\n" for m in order))
    shutil.copy2(GUEST / "init", root / "init")
    os.chmod(root / "init", 0o755)
    make_cpio(root, work / "initramfs.cpio.gz", compress=True)


def rom_packages(root):
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
    versions = dict(line.split("=", 1) for line in host_package_versions().splitlines())
    info = Path(root) / "usr/lib/opkg/info"
    info.mkdir(parents=True, exist_ok=True)
    status = []
    for package, files in sorted(components.items()):
        version = {"busybox": versions.get("busybox-static"), "dropbear": versions.get(
            "dropbear-bin"), "conntrack": versions.get("conntrack"),
            "microsocks": versions.get("microsocks")}.get(package) or "1"
        control = ("Package: %s\nVersion: %s\nDepends: libc\nSection: base\nArchitecture: "
                   "x86_64\nInstalled-Size: 0\nDescription: %s (from the host's Debian "
                   "package)\n" % (package, version, package))
        (info / (package + ".control")).write_text(control)
        (info / (package + ".list")).write_text("".join(f + "\n" for f in files))
        conffiles = [f for f in files if f.startswith("/etc/config/")]
        entry = "Package: %s\nVersion: %s\nDepends: libc\nStatus: install user installed\n" \
                "Architecture: x86_64\n" % (package, version)
        if conffiles:
            entry += "Conffiles:\n" + "".join(
                " %s %s\n" % (f, hashlib.sha256((Path(root) / f.lstrip("/")).read_bytes())
                              .hexdigest()) for f in conffiles)
        entry += "Installed-Time: 1700000000\n"
        status.append(entry)
    (Path(root) / "usr/lib/opkg/status").write_text("\n".join(status) + "\n")


def build_rootfs(work, kernel, release, order):
    root = work / "rootfs"
    shutil.copytree(GUEST / "rootfs", root, symlinks=True)
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
    install_busybox(root)
    copy_with_libraries(HOST_BINARIES, root)
    (root / "usr/bin/python3").symlink_to("python3.11")
    # OpenWrt ships dropbear's client as dbclient/ssh; the router only needs the server here
    copy_python(root)
    for module in order:
        copy_file(kernel / "lib/modules" / release / module, root / "lib/modules" / release,
                  module)
    for name in ("modules.dep", "modules.alias", "modules.builtin", "modules.order",
                 "modules.symbols"):
        copy_file(kernel / "lib/modules" / release / name, root / "lib/modules" / release, name)
    rom_packages(root)
    squash = work / "rootfs.squashfs"
    run(["mksquashfs", str(root), str(squash), "-comp", "xz", "-all-root", "-noappend",
         "-quiet", "-no-progress", "-processors", str(os.cpu_count() or 2)],
        stdout=subprocess.DEVNULL)


def copy_python(root):
    """Debian's python3.11 with a trimmed stdlib, and paho-mqtt/psutil/ujson in site-packages."""
    dest = Path(root) / PYLIB.lstrip("/")
    needed = set()
    for src in sorted(Path(PYLIB).rglob("*")):
        rel = src.relative_to(PYLIB)
        if rel.parts[0] in STDLIB_SKIP or src.is_dir():
            continue
        if rel.parts[0] == "lib-dynload":
            if DYNLOAD_SKIP.match(src.name):
                continue
            needed.update(shared_libraries(src))
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    site = Path(root) / SITE
    site.mkdir(parents=True, exist_ok=True)
    for _, _, paths in python_package_dirs():
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
        copy_file(lib, root)
    compile_python(site)


def build_base(force=False):
    key = base_key()
    final = CACHE / ("base-" + key)
    if final.is_dir() and not force:
        return final
    log("building the base image %s (kernel %s)" % (key, kernel_package()[0]))
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="base-", dir=CACHE))
    try:
        kernel, release = fetch_kernel(work)
        order = module_load_order(kernel, release)
        build_initramfs(work, kernel, release, order)
        build_rootfs(work, kernel, release, order)
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
    final = CACHE / ("agent-%s-%s.cpio" % (base.name[5:], key))
    if final.exists() and not force:
        return final
    work = Path(tempfile.mkdtemp(prefix="agent-", dir=CACHE))
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


def build(force=False):
    """(base directory, agent layer path), building what is not cached."""
    base = build_base(force)
    layer = build_agent_layer(base, force)
    prune_cache(keep=(base, layer))
    return base, layer


def prune_cache(keep, bases=2, layers=6, stale_seconds=3600):
    """Drop all but the newest few images and agent layers, and work directories that a killed
    build left behind; the agent layer changes with every agent edit."""
    import time
    entries = {"base": [], "agent": []}
    for path in CACHE.iterdir():
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
    args = parser.parse_args(argv)
    base, layer = build(args.force)
    print("kernel     %s" % (base / "vmlinuz"))
    print("initramfs  %s" % (base / "initramfs.cpio.gz"))
    print("rootfs     %s" % (base / "rootfs.squashfs"))
    print("agent      %s" % layer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
