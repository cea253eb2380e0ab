"""The stable device id: from config, else remembered in the state dir, else from the board's MAC.

Never random per start: the collector keys everything on it.
"""
import hashlib
import os
import re

_MAC_RE = re.compile(r"\A([0-9a-f]{2}:){5}[0-9a-f]{2}\Z")
# interfaces whose MAC is burnt into the board on common OpenWrt targets, most stable first
_PREFERRED = ("eth0", "eth1", "wan", "lan1", "br-lan")


def board_mac(root):
    net = os.path.join(root, "sys/class/net")
    try:
        names = sorted(os.listdir(net))
    except OSError:
        return None
    ordered = [n for n in _PREFERRED if n in names] + [n for n in names if n not in _PREFERRED]
    for name in ordered:
        if name == "lo":
            continue
        try:
            with open(os.path.join(net, name, "address")) as handle:
                mac = handle.read(64).strip().lower()
        except OSError:
            continue
        if _MAC_RE.match(mac) and mac != "00:00:00:00:00:00":
            return mac
    return None


def device_id(config):
    """Configured id, else 'rw-<12 hex of the MAC>', else one derived from /etc/machine-id."""
    if config.device_id:
        return config.device_id
    mac = board_mac(config.root)
    if mac:
        return "rw-" + mac.replace(":", "")
    for candidate in ("etc/machine-id",):  # not boot_id: that changes every boot
        try:
            with open(os.path.join(config.root, candidate)) as handle:
                text = handle.read(128).strip()
        except OSError:
            continue
        if text:
            return "rw-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return "rw-unknown"
