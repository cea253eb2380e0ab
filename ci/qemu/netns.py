"""The emulated router's networks: network namespaces and tap devices, documentation addresses
only, nothing routed out of the machine.

    WAN namespace  rw<id>w   tap "wan0" = the router's eth1 segment, 198.51.100.0/25 and
                             2001:db8:1::/64; attacker addresses 198.51.100.10-.49 and
                             2001:db8:1::66-67;
                             "internet" test hosts 203.0.113.10-.89 on its loopback, and
                             203.0.113.128/25 a black hole (unanswered SYNs stay UNREPLIED)
    LAN namespace  rw<id>l   tap "lan0" = the router's br-lan segment, a client at 192.0.2.100
    host link      veth pair root ns <-> WAN namespace, a free /30 out of 198.51.100.128/25:
                   the broker listens on the root side, so the collector and the tests (in the
                   root namespace) and the router (via the WAN namespace, masqueraded to the
                   link's address) all reach it; the root namespace gets no other route

Taps are created inside their namespace and opened there (setns + TUNSETIFF); QEMU gets the
open file descriptors (-netdev tap,fd=N), so no device ever moves while in use.
Everything is removed by close(), which is idempotent and also registered with atexit.
"""
import atexit
import ctypes
import fcntl
import ipaddress
import os
import secrets
import signal
import struct
import subprocess
import time

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000

ROUTER_LAN = "192.0.2.1"
LAN_CLIENT = "192.0.2.100"
ROUTER_WAN = "198.51.100.2"
WAN_GATEWAY = "198.51.100.1"
ROUTER_WAN6 = "2001:db8:1::2"
WAN_GATEWAY6 = "2001:db8:1::1"
WAN_ATTACKERS = tuple("198.51.100.%d" % i for i in range(10, 50))
WAN_ATTACKERS6 = ("2001:db8:1::66", "2001:db8:1::67")
INTERNET_HOSTS = tuple("203.0.113.%d" % i for i in range(10, 90))
SCAN_NETWORK = "203.0.113.128/25"        # nobody answers there

_libc = ctypes.CDLL(None, use_errno=True)


def sh(*args, check=True, ns=None, capture=False, timeout=60):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), done.returncode,
                                                    done.stderr.strip()))
    return done.stdout if capture else done


def open_tap_in(namespace, name):
    """An open fd attached to tap `name` inside `namespace` (the calling thread returns to its
    own namespace afterwards)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open("/run/netns/%s" % namespace, os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into %s" % namespace)
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR)
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(own)
        os.close(target)
    return fd


class RouterNetwork:
    def __init__(self, run_id=None):
        self.run_id = run_id or secrets.token_hex(3)
        self.wan = "rw%sw" % self.run_id
        self.lan = "rw%sl" % self.run_id
        self.host_if = "rw%sh" % self.run_id       # root-namespace end of the host link
        self.peer_if = "rw%sp" % self.run_id
        link = _free_host_link(int(self.run_id, 16))
        self.host_addr = str(link.network_address + 1)   # the broker's address
        self.peer_addr = str(link.network_address + 2)
        self.host_link = str(link)
        self.tap_fds = {}
        self._closed = False
        self._made = []
        atexit.register(self.close)

    # ------------------------------------------------------------------ setup
    def setup(self):
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def _setup(self):
        for ns in (self.wan, self.lan):
            sh("ip", "netns", "add", ns)
            self._made.append(ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        # WAN: the router's upstream segment, the attackers, the "internet"
        sh("ip", "tuntap", "add", "dev", "wan0", "mode", "tap", ns=self.wan)
        sh("ip", "link", "set", "wan0", "up", ns=self.wan)
        sh("ip", "addr", "add", WAN_GATEWAY + "/25", "dev", "wan0", ns=self.wan)
        for addr in WAN_ATTACKERS:
            sh("ip", "addr", "add", addr + "/25", "dev", "wan0", ns=self.wan)
        sh("ip", "-6", "addr", "add", WAN_GATEWAY6 + "/64", "dev", "wan0", "nodad", ns=self.wan)
        for addr in WAN_ATTACKERS6:
            sh("ip", "-6", "addr", "add", addr + "/64", "dev", "wan0", "nodad", ns=self.wan)
        for addr in INTERNET_HOSTS:
            sh("ip", "addr", "add", addr + "/32", "dev", "lo", ns=self.wan)
        sh("ip", "route", "add", "blackhole", SCAN_NETWORK, ns=self.wan)
        sh("ip", "route", "add", "192.0.2.0/24", "via", ROUTER_WAN, ns=self.wan, check=False)
        sh("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", ns=self.wan)
        # host link for the broker
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if)
        self._made.append(self.host_if)
        sh("ip", "link", "set", self.peer_if, "netns", self.wan)
        sh("ip", "addr", "add", self.host_addr + "/30", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")
        sh("ip", "addr", "add", self.peer_addr + "/30", "dev", self.peer_if, ns=self.wan)
        sh("ip", "link", "set", self.peer_if, "up", ns=self.wan)
        # what the WAN namespace sends to the host leaves from the link's own address, so the
        # root namespace needs no route to the router (runs side by side would fight over it)
        done = subprocess.run(["ip", "netns", "exec", self.wan, "nft", "-f", "-"], input=(
            "table ip hostlink {\n chain post {\n  type nat hook postrouting priority srcnat;\n"
            "  oifname \"%s\" masquerade\n }\n}\n" % self.peer_if), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError("nft in %s failed: %s" % (self.wan, done.stderr.strip()))
        # LAN: one client behind the router
        sh("ip", "tuntap", "add", "dev", "lan0", "mode", "tap", ns=self.lan)
        sh("ip", "link", "set", "lan0", "up", ns=self.lan)
        sh("ip", "addr", "add", LAN_CLIENT + "/24", "dev", "lan0", ns=self.lan)
        sh("ip", "route", "add", "default", "via", ROUTER_LAN, ns=self.lan)
        self.tap_fds = {"wan": open_tap_in(self.wan, "wan0"),
                        "lan": open_tap_in(self.lan, "lan0")}

    # ------------------------------------------------------------------ use
    def popen(self, side, args, **kw):
        """Start a process in the 'wan' or 'lan' namespace."""
        ns = self.wan if side == "wan" else self.lan
        kw.setdefault("start_new_session", True)
        return subprocess.Popen(["ip", "netns", "exec", ns] + [str(a) for a in args], **kw)

    def run(self, side, args, timeout=120, check=False):
        ns = self.wan if side == "wan" else self.lan
        return subprocess.run(["ip", "netns", "exec", ns] + [str(a) for a in args],
                              capture_output=True, text=True, timeout=timeout, check=check)

    # ------------------------------------------------------------------ teardown
    def close(self):
        if self._closed:
            return
        self._closed = True
        for fd in self.tap_fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.tap_fds = {}
        for ns in (self.wan, self.lan):
            if ns not in self._made:
                continue
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            if pids:
                time.sleep(0.2)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if self.host_if in self._made:
            subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        self._made = []

    def __enter__(self):
        return self.setup()

    def __exit__(self, *exc):
        self.close()


def _free_host_link(seed):
    """A /30 of 198.51.100.128/25 that no interface of the root namespace uses yet."""
    used = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True,
                          text=True).stdout
    for i in range(32):
        link = ipaddress.ip_network("198.51.100.%d/30" % (128 + 4 * ((seed + i) % 32)))
        if " %s/" % (link.network_address + 1) not in used:
            return link
    raise RuntimeError("all 32 host links of 198.51.100.128/25 are in use")


def netns_available():
    """None when namespaces and taps can be made here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespaces and tap devices need root"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing"
    probe = "rwprobe%d" % os.getpid()
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return "ip netns add failed: %s" % done.stderr.strip()
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None
