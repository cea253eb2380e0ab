"""The CPUs the emulated router is built for, as one table of what differs between them; the
builder (build_image.py) and the harness (vm.py) read it and are otherwise the same code.

    x86_64   OpenWrt x86/64 stand-in; the userland is copied from the host (the default)
    mipsel   QEMU's Malta board with Debian's 4kc-malta kernel: a 32-bit little-endian MIPS
             CPU, like the ramips mt7621 routers
    s390x    Debian's s390x kernel on QEMU's s390-ccw-virtio machine: a big-endian Linux, which
             stands in for the big-endian MIPS routers (ath79, lantiq) because Debian no longer
             builds big-endian MIPS; what it proves is the byte order of /proc, not the CPU

Foreign userlands come from `apt-get download <pkg>:<arch>` (needs `dpkg --add-architecture`),
unpacked with dpkg-deb; the shared libraries each binary needs are found from its ELF NEEDED
entries among the unpacked packages.

ROUTERWATCH_QEMU_ARCH chooses one (run_router.py --arch and `make e2e ARCH=...` set it).
"""
import os
from dataclasses import dataclass, field

ENV = "ROUTERWATCH_QEMU_ARCH"
DEFAULT = "x86_64"

# the router's programs: the same Debian packages on every CPU (host-installed on x86_64)
USERLAND = ("busybox-static", "dropbear-bin", "nftables", "conntrack", "microsocks",
            "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib")
# for a foreign CPU also the libraries those link against, and the Python modules that are
# compiled code (paho-mqtt is pure Python and comes from the build's own environment)
FOREIGN_EXTRA = (
    "libc6", "libgcc-s1", "zlib1g", "libexpat1", "libffi8", "libssl3", "libbz2-1.0",
    "liblzma5", "libuuid1", "libcrypt1", "libtomcrypt1", "libtommath1", "libgmp10",
    "libnftables1", "libnftnl11", "libmnl0", "libjansson4", "libxtables12", "libedit2",
    "libbsd0", "libmd0", "libtinfo6", "libncursesw6", "libnetfilter-conntrack3",
    "libnfnetlink0", "libsqlite3-0", "libtirpc3", "libgssapi-krb5-2", "libkrb5-3",
    "libk5crypto3", "libkrb5support0", "libcom-err2", "libkeyutils1", "libnsl2",
    "libatomic1", "libstdc++6", "libdouble-conversion3", "python3-psutil", "python3-ujson",
)
COMMON_MODULES = (
    # virtio_rng: without it getrandom() (Python's startup, paho's client ids) can wait for
    # entropy for minutes on an emulated CPU
    "virtio_net", "virtio_blk", "virtio_console", "virtio_rng",
    "squashfs", "overlay", "bridge",
    "nf_conntrack", "nf_nat", "nf_tables", "nft_ct", "nft_nat", "nft_masq", "nft_chain_nat",
    "nft_reject_inet", "nf_conntrack_netlink",
)


@dataclass(frozen=True)
class Arch:
    name: str               # routerwatch's name (ROUTERWATCH_QEMU_ARCH)
    debian: str             # dpkg's architecture name
    triplet: str            # multiarch directory (lib/<triplet>)
    qemu: str               # the system emulator
    machine: tuple          # -M ... and board options
    kernel_meta: str        # Debian meta package naming the current kernel
    kernel_flavour: str     # suffix of the versioned kernel package
    console: str            # the kernel's console device for QEMU's -serial
    bus: str                # virtio transport: "pci" or "ccw"
    bus_modules: tuple      # drivers for that transport (and what this kernel's modules need
                            # but modules.dep does not name), loaded before COMMON_MODULES
    cpus: int               # what the board and kernel take
    tcg: str                # -accel value under emulation
    cpu_model: str          # -cpu under emulation ("" = the board's default)
    host_userland: bool     # copy binaries from the host instead of downloading them
    big_endian: bool
    opkg_arch: str          # what OpenWrt's package lists call this CPU
    # how much longer than on x86_64 the harness waits for the router (each python3 start
    # takes seconds on an emulated 32-bit MIPS); not part of the image (repr: its cache key)
    time_scale: float = field(default=1, repr=False)
    pci_slots: tuple = ()   # PCI slots that have an interrupt line (empty: any); the devices
                            # are packed into them as functions 0 and 1 of each

    @property
    def foreign(self):
        return not self.host_userland

    def device(self, kind, slot):
        """QEMU -device value of the virtio `kind` (net, blk, serial, rng) in `slot` (1, 2 ...):
        on channel I/O the slot is the device number, so the disks and NICs are found by the
        guest in the order the init scripts expect (vda = ROM, eth0 = LAN)."""
        if self.bus == "ccw":
            return "virtio-%s-ccw,devno=fe.0.%04x" % (kind, slot)
        if not self.pci_slots:
            return "virtio-%s-pci" % kind
        # two functions per slot, in slot order: PCI enumerates them in this order too
        pci_slot, function = self.pci_slots[(slot - 1) // 2], (slot - 1) % 2
        return "virtio-%s-pci,addr=0x%02x.%d%s" % (kind, pci_slot, function,
                                                    ",multifunction=on" if function == 0 else "")


ARCHES = {
    "x86_64": Arch(
        name="x86_64", debian="amd64", triplet="x86_64-linux-gnu", qemu="qemu-system-x86_64",
        machine=("-M", "q35"), kernel_meta="linux-image-cloud-amd64", kernel_flavour="cloud-amd64",
        console="ttyS0", bus="pci", bus_modules=("virtio_pci",), cpus=2, tcg="tcg,thread=multi",
        cpu_model="max", host_userland=True, big_endian=False,
        opkg_arch="x86_64"),
    "mipsel": Arch(
        name="mipsel", debian="mipsel", triplet="mipsel-linux-gnu", qemu="qemu-system-mipsel",
        machine=("-M", "malta"), kernel_meta="linux-image-4kc-malta", kernel_flavour="4kc-malta",
        # the 4kc kernel is uniprocessor; QEMU's MIPS emulation is single-threaded anyway
        # crc32c_generic: libcrc32c (for nf_conntrack) asks the crypto API for it
        console="ttyS0", bus="pci", bus_modules=("virtio_pci", "crc32c_generic"), cpus=1,
        tcg="tcg",
        cpu_model="24Kc", host_userland=False, big_endian=False,
        # Linux routes interrupts only for Malta's slots 18-21; a virtio device beyond them gets
        # no IRQ and fails (virtio_console: "Error -22 initializing vqs")
        opkg_arch="mipsel_24kc", pci_slots=(18, 19, 20, 21), time_scale=10),
    "s390x": Arch(
        name="s390x", debian="s390x", triplet="s390x-linux-gnu", qemu="qemu-system-s390x",
        machine=("-M", "s390-ccw-virtio"), kernel_meta="linux-image-s390x",
        kernel_flavour="s390x", console="ttysclp0", bus="ccw",
        # channel I/O is built in; libcrc32c (for nf_conntrack) asks the crypto API for crc32c,
        # a module here, and fails to load without it
        bus_modules=("crc32c_generic",), cpus=2,
        tcg="tcg,thread=multi", cpu_model="max", host_userland=False, big_endian=True,
        opkg_arch="s390x", time_scale=3),
}


def get(name=None):
    """The Arch named `name`, or by ROUTERWATCH_QEMU_ARCH, or x86_64; SystemExit if unknown."""
    name = name or os.environ.get(ENV) or DEFAULT
    try:
        return ARCHES[name]
    except KeyError:
        raise SystemExit("unknown router CPU %r (%s=%s)" % (name, ENV, "|".join(ARCHES)))
