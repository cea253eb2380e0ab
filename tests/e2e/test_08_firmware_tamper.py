"""Scenario 6: firmware tampering in the overlay.

Given the agent's baseline of a running router, when an intruder replaces a /rom program with
another binary (the copy lands in /overlay/upper and shadows /rom) and adds a key to dropbear's
authorized_keys, then the collector stores integrity.rom_shadowed (high) for the program and
integrity.baseline_drift (high, sensitive path) for authorized_keys.
"""
import time

import pytest

pytestmark = pytest.mark.router_arches("x86_64", "mipsel")

PROGRAM = "/usr/sbin/conntrack"
KEYS = "/etc/dropbear/authorized_keys"
ATTACKER_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0vCn6S0x0ayFd3cPFRpRqGq4WCSu1yfNvkdP9"
                "Wq4Bp persistence@implant")


def test_replaced_program_and_new_login_key_are_reported(bench):
    started = time.time()
    bench.vm.out("cp /bin/busybox %s && echo '%s' >> %s" % (PROGRAM, ATTACKER_KEY, KEYS))
    assert bench.vm.sh("test -f /overlay/upper%s" % PROGRAM)[0] == 0
    shadowed = bench.wait_anomaly("integrity.rom_shadowed", since=started,
                                  match=lambda a: a.evidence.get("path") == PROGRAM,
                                  timeout=120, what="for %s" % PROGRAM)
    assert shadowed.severity in ("high", "critical")
    bench.record("firmware_tamper", "integrity.rom_shadowed", started, shadowed)
    keys = bench.wait_anomaly("integrity.baseline_drift", since=started,
                              match=lambda a: a.evidence.get("path") == KEYS,
                              timeout=120, what="for %s" % KEYS)
    assert keys.severity in ("high", "critical")
    bench.record("firmware_tamper", "integrity.baseline_drift", started, keys)
