#!/usr/bin/env python3
"""Boot the emulated router by hand (needs root for the network namespaces).

    python ci/qemu/run_router.py --shell        # boot, then a prompt whose lines run in the router
    python ci/qemu/run_router.py --check        # boot, print what the router looks like, stop
    python ci/qemu/run_router.py --arch s390x --check   # the same router on another CPU

At the prompt every line runs with /bin/sh in the router (through the command channel, so no SSH
login is logged); `!wan CMD` and `!lan CMD` run CMD in the WAN / LAN namespace instead, e.g.
`!wan ssh root@198.51.100.2` or `!lan wget -O- http://203.0.113.10:8080/`. Ctrl-D stops it all.
"""
import argparse
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import arches  # noqa: E402
import netns  # noqa: E402
from vm import RouterVM  # noqa: E402

CHECKS = (
    "cat /etc/openwrt_release",
    "uname -m; python3 -c 'import sys; print(sys.byteorder)'",
    "grep -E ' (/|/rom|/overlay) ' /proc/mounts",
    "ip addr show eth1; ip route",
    "ping -c1 -W2 198.51.100.1 && ping -c1 -W2 203.0.113.10 && ping -6 -c1 -W2 2001:db8:1::1",
    "nft list ruleset | head -20",
    "python3 -c 'import paho.mqtt.client, psutil, ujson; print(\"python ok\", psutil.__version__)'",
    "routerwatch-agent --version",
    "logread | tail -5",
    "ps w | grep -E 'dropbear|syslogd' | grep -v grep",
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--shell", action="store_true", help="a prompt into the router")
    mode.add_argument("--check", action="store_true", help="print the router's state and stop")
    parser.add_argument("--arch", choices=sorted(arches.ARCHES),
                        help="the router's CPU (default: $%s or %s)" % (arches.ENV, arches.DEFAULT))
    parser.add_argument("--keep", action="store_true",
                        help="keep the work dir (disk, console log) instead of removing it")
    args = parser.parse_args(argv)
    reason = netns.netns_available()
    if reason:
        print("run_router: %s" % reason, file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="routerwatch-vm-"))
    with netns.RouterNetwork() as net:
        vm = RouterVM(net, workdir, arch=arches.get(args.arch))
        try:
            t0 = time.monotonic()
            vm.start()
            print("%s router up in %.1f s (%s: %s); console log %s" % (
                vm.arch.name, time.monotonic() - t0, vm.accel, vm.accel_reason, vm.console_log))
            print("WAN ns %s, LAN ns %s, router WAN %s, LAN %s" % (
                net.wan, net.lan, netns.ROUTER_WAN, netns.ROUTER_LAN))
            if args.shell:
                return shell(vm, net)
            for cmd in CHECKS:
                rc, out, err = vm.sh(cmd)
                print("$ %s  (rc %s)\n%s%s" % (cmd, rc, out, err))
            return 0
        finally:
            vm.close()
            if args.keep:
                print("work dir kept: %s" % workdir)
            else:
                shutil.rmtree(workdir, ignore_errors=True)


def shell(vm, net):
    while True:
        try:
            line = input("router# ")
        except EOFError:
            print()
            return 0
        if not line.strip():
            continue
        if line.startswith(("!wan ", "!lan ")):
            done = net.run(line[1:4], shlex.split(line[5:]), timeout=600)
            sys.stdout.write(done.stdout + done.stderr)
            continue
        rc, out, err = vm.sh(line, timeout=600)
        sys.stdout.write(out + err)
        if rc:
            print("(exit %s)" % rc)


if __name__ == "__main__":
    sys.exit(main())
