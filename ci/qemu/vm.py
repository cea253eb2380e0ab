"""Boot the emulated router in QEMU and drive it through its command channel.

    net = RouterNetwork().setup()
    vm = RouterVM(net, workdir).start()         # builds/reuses the image, boots, waits for init
    vm.sh("logread | tail")                     # -> (rc, stdout, stderr)
    vm.spawn("microsocks -p 11288", log="/tmp/socks.log")  # detached, returns the guest pid
    vm.close(); net.close()

The CPU is ROUTERWATCH_QEMU_ARCH's (x86_64, mipsel, s390x: see arches.py) or RouterVM(arch=...).
QEMU runs with TCG unless a short boot test shows KVM works (nested virtualisation often hangs;
other CPUs than the host's are always emulated): ROUTERWATCH_QEMU_ACCEL=kvm|tcg skips the test.
The router gets two virtio NICs (PCI, or channel I/O on s390x) on the taps of
RouterNetwork (eth0 = LAN, eth1 = WAN as on OpenWrt x86/64), the squashfs on /dev/vda, the
package layer on /dev/vdb, the serial console in <workdir>/console.log and the command channel on
a virtio-serial port (see guest/rootfs/usr/libexec/rw-guestd).
"""
import atexit
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import arches  # noqa: E402
import build_image  # noqa: E402
import netns  # noqa: E402

QEMU = "qemu-system-x86_64"
ROOT_PASSWORD = "rw-e2e-Passw0rd"
# a boot that never answers on the command channel is tried once more (see RouterVM.start)
BOOT_ATTEMPTS = 2
_accel_cache = {}


def qemu_available(arch=None):
    return shutil.which((arch or arches.get()).qemu) is not None


def base_args(base, memory=256, cpus=2, arch=None):
    arch = arch or arches.get()
    args = [arch.qemu] + list(arch.machine) + [
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-m", str(memory), "-smp", str(cpus), "-kernel", str(base / "vmlinuz"),
            "-initrd", str(base / "initramfs.cpio.gz")]
    qboot = Path("/usr/share/qemu/qboot.rom")
    if arch.name == "x86_64" and qboot.exists():   # a 1-second firmware, not SeaBIOS' menu
        args += ["-bios", str(qboot)]
    return args


def choose_accel(base, arch=None):
    """'kvm' when a guest boots under KVM within seconds, else 'tcg' (and why)."""
    arch = arch or arches.get()
    if arch.name != "x86_64":
        return "tcg", "%s is emulated on this host" % arch.name
    forced = os.environ.get("ROUTERWATCH_QEMU_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced, "forced by ROUTERWATCH_QEMU_ACCEL"
    if "accel" in _accel_cache:
        return _accel_cache["accel"]
    result = ("tcg", "/dev/kvm is not usable")
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        # the initramfs' busybox as init exits at once: the kernel panics and QEMU quits
        cmd = base_args(base, memory=128, cpus=1, arch=arch) + [
            "-accel", "kvm", "-serial", "stdio", "-append",
            "console=ttyS0 panic=-1 quiet rdinit=/bin/true"]
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=8)
            if done.returncode == 0 and b"Kernel panic" in done.stdout:
                result = ("kvm", "a test boot under KVM finished")
            else:
                result = ("tcg", "a test boot under KVM failed (rc %d)" % done.returncode)
        except subprocess.TimeoutExpired:
            result = ("tcg", "a test boot under KVM hung (nested virtualisation)")
    _accel_cache["accel"] = result
    return result


class GuestError(RuntimeError):
    pass


class RouterVM:
    def __init__(self, network, workdir, memory=256, cpus=None, admin_pubkey=None, arch=None):
        self.arch = arches.get(arch) if arch is None or isinstance(arch, str) else arch
        cpus = cpus or self.arch.cpus
        self.net = network
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.memory, self.cpus = memory, cpus
        self.process = None
        self.accel = None
        self.accel_reason = ""
        self.console_log = self.workdir / "console.log"
        self.control_path = self.workdir / "control.sock"
        self._sock = None
        self._buf = b""
        self._ids = itertools.count(1)
        self.boot_seconds = None
        self.build_seconds = None
        atexit.register(self.close)

    # ------------------------------------------------------------------ lifecycle
    def start(self, boot_timeout=None):
        t0 = time.monotonic()
        arch = self.arch
        base, layer = build_image.build(arch=arch)
        self.build_seconds = time.monotonic() - t0
        self.base, self.layer = base, layer
        self.accel, self.accel_reason = choose_accel(base, arch)
        if boot_timeout is None:
            boot_timeout = 60 if self.accel == "kvm" else 180 if arch.name == "x86_64" else 420
        cmdline = " ".join([
            "console=" + arch.console, "panic=-1", "quiet", "loglevel=4",
            "rw.lan=%s/24" % netns.ROUTER_LAN, "rw.wan=%s/25" % netns.ROUTER_WAN,
            "rw.gw=%s" % netns.WAN_GATEWAY, "rw.wan6=%s/64" % netns.ROUTER_WAN6,
            "rw.gw6=%s" % netns.WAN_GATEWAY6, "rw.rootpw=%s" % ROOT_PASSWORD])
        lan_fd, wan_fd = self.net.tap_fds["lan"], self.net.tap_fds["wan"]
        if self.accel == "kvm":
            accel = ["-accel", "kvm", "-cpu", "host"]
        else:
            accel = ["-accel", arch.tcg] + (["-cpu", arch.cpu_model] if arch.cpu_model else [])
        dev = arch.device
        args = base_args(base, self.memory, self.cpus, arch) + accel + [
            "-append", cmdline,
            "-serial", "file:%s" % self.console_log,
            "-drive", "file=%s,if=none,id=rom,format=raw,readonly=on" % (base / "rootfs.squashfs"),
            "-device", "%s,drive=rom" % dev("blk", 1),
            "-drive", "file=%s,if=none,id=pkg,format=raw,readonly=on" % layer,
            "-device", "%s,drive=pkg" % dev("blk", 2),
            "-netdev", "tap,id=lan,fd=%d" % lan_fd,
            "-device", "%s,netdev=lan,mac=52:54:00:12:34:01" % dev("net", 3),
            "-netdev", "tap,id=wan,fd=%d" % wan_fd,
            "-device", "%s,netdev=wan,mac=52:54:00:12:34:02" % dev("net", 4),
            "-device", dev("serial", 5),
            "-chardev", "socket,id=ctl,path=%s,server=on,wait=off" % self.control_path,
            "-device", "virtserialport,chardev=ctl,name=rw.control",
            "-device", dev("rng", 6),
        ]
        (self.workdir / "qemu.cmdline").write_text(" ".join(args) + "\n")
        for attempt in range(1, BOOT_ATTEMPTS + 1):
            qemu_log = open(self.workdir / "qemu.log", "ab")
            try:
                self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=qemu_log,
                                                stderr=qemu_log, pass_fds=(lan_fd, wan_fd),
                                                start_new_session=True)
            finally:
                qemu_log.close()
            try:
                self._connect(time.monotonic() + boot_timeout)
                break
            except GuestError as exc:
                if attempt == BOOT_ATTEMPTS:
                    raise
                # Under TCG an emulated kernel now and then stops for good early in its boot
                # (the console silent after its first second, seen on mipsel): that is the
                # emulator, not the router, so it gets one more boot before the suite fails
                sys.stderr.write("vm: the router did not come up within %.0f s; booting it "
                                 "once more\n%s\n" % (boot_timeout, exc))
                self.close()
                self._buf = b""
                try:
                    self.control_path.unlink()
                except FileNotFoundError:
                    pass
        # rcS has finished when the respawned guestd answers; wait for init's last line too
        self.wait_for("logread | grep -q 'init complete'", timeout=boot_timeout)
        self.boot_seconds = time.monotonic() - t0 - self.build_seconds
        return self

    def _connect(self, deadline):
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise GuestError("QEMU exited with %s:\n%s" % (self.process.returncode,
                                                               self.diagnostics()))
            if self.control_path.exists():
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(str(self.control_path))
                    self._sock = sock
                    break
                except OSError:
                    sock.close()
            time.sleep(0.1)
        else:
            raise GuestError("no QEMU control socket:\n" + self.diagnostics())
        while time.monotonic() < deadline:
            try:
                rc, out, _ = self.sh("echo up", timeout=5, deadline=time.monotonic() + 5)
                if rc == 0 and out.strip() == "up":
                    return
            except (GuestError, socket.timeout):
                pass
            if self.process.poll() is not None:
                raise GuestError("QEMU exited:\n" + self.diagnostics())
        raise GuestError("the router did not answer on its command channel:\n"
                         + self.diagnostics())

    def diagnostics(self):
        parts = []
        for name in ("qemu.log", "console.log"):
            try:
                text = (self.workdir / name).read_text(errors="replace")
                parts.append("--- %s (last 3000 chars)\n%s" % (name, text[-3000:]))
            except OSError:
                pass
        return "\n".join(parts)

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)

    # ------------------------------------------------------------------ commands
    def _request(self, request, timeout):
        request["id"] = next(self._ids)
        self._sock.sendall((json.dumps(request) + "\n").encode())
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                try:
                    reply = json.loads(line)
                except ValueError:
                    continue
                if reply.get("id") == request["id"]:
                    return reply
                if reply.get("ready") and request["id"] > 1:
                    # init respawned guestd: whatever it was running is lost, and waiting
                    # for the answer would only end in a timeout
                    raise GuestError("the router's command channel restarted while running %r:\n%s"
                                     % (request.get("cmd"), self.diagnostics()))
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuestError("no answer to %r within %.0f s" % (request.get("cmd"), timeout))
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise GuestError("the command channel closed")
            self._buf += chunk

    def sh(self, cmd, timeout=60, check=False, deadline=None):
        """Run `cmd` with /bin/sh in the router; (rc, stdout, stderr). `timeout` is x86_64's,
        stretched by the CPU's time_scale."""
        timeout = timeout * self.arch.time_scale
        wait = timeout + 15 if deadline is None else max(0.5, deadline - time.monotonic())
        reply = self._request({"cmd": cmd, "timeout": timeout}, wait)
        rc, out, err = reply.get("rc"), reply.get("out", ""), reply.get("err", "")
        if check and rc != 0:
            raise GuestError("router command failed (%s): %s\n%s%s" % (rc, cmd, out, err))
        return rc, out, err

    def out(self, cmd, timeout=60):
        return self.sh(cmd, timeout=timeout, check=True)[1]

    def spawn(self, cmd, log="/dev/null"):
        """Start `cmd` detached in its own session in the router; its pid (of /bin/sh -c)."""
        reply = self._request({"cmd": cmd, "detach": True, "log": log}, 30 * self.arch.time_scale)
        return reply["pid"]

    def write_file(self, path, text, mode=0o644):
        import base64
        data = base64.b64encode(text.encode()).decode()
        self.sh("mkdir -p \"$(dirname '%s')\" && echo '%s' | base64 -d > '%s' && chmod %o '%s'"
                % (path, data, path, mode, path), check=True)

    def wait_for(self, cmd, timeout=60, interval=0.5):
        deadline = time.monotonic() + timeout * self.arch.time_scale
        while True:
            rc, out, _ = self.sh(cmd, timeout=30)
            if rc == 0:
                return out
            if time.monotonic() > deadline:
                raise GuestError("router: %r still false after %.0f s" % (cmd, timeout))
            time.sleep(interval)
