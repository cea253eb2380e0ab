"""The stable device id: from config, else remembered in the state dir, else from the board's MAC.

Never random per start: the collector keys everything on it. A derived id is written to
<state_dir>/device_id the first time, so it stays the same when the interfaces change later (a
USB network adapter, ports renamed by an upgrade to DSA, a board whose MAC comes up different).
"""
import hashlib
import logging
import os
import re
import secrets

from .baseline import state_path
from .contract import DEVICE_ID_RE

log = logging.getLogger("routerwatch")
ID_FILE = "device_id"

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
    """Configured id; else the remembered one; else derived now and remembered."""
    if config.device_id:
        return config.device_id
    path = state_path(config, ID_FILE)
    remembered = _read_remembered(path)
    if remembered:
        return remembered
    derived = derive_device_id(config.root)
    _remember(path, derived)
    return derived


def derive_device_id(root):
    """'rw-<12 hex of the MAC>', else one from /etc/machine-id, else random (then only the
    remembered copy keeps it stable)."""
    mac = board_mac(root)
    if mac:
        return "rw-" + mac.replace(":", "")
    for candidate in ("etc/machine-id",):  # not boot_id: that changes every boot
        try:
            with open(os.path.join(root, candidate)) as handle:
                text = handle.read(128).strip()
        except OSError:
            continue
        if text:
            return "rw-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return "rw-" + secrets.token_hex(6)


def _read_remembered(path):
    try:
        with open(path) as handle:
            text = handle.read(128).strip()
    except (OSError, UnicodeDecodeError):
        return None
    if DEVICE_ID_RE.match(text):
        return text
    log.warning("ignoring %s: %r is not a device id", path, text[:80])
    return None


def _remember(path, ident):
    temporary = path + ".new"
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(temporary, "w") as handle:
            handle.write(ident + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("cannot remember the device id %s in %s (%s); set device_id to keep it "
                    "stable", ident, path, exc.strerror or exc)
