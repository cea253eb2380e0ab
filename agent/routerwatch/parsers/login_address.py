"""Addresses as dropbear and LuCI print them, and user names as they may be shown.

dropbear's address string is "host:port" with a numeric host (getnameinfo NI_NUMERICHOST):
  1.2.3.4:5555                  IPv4
  2001:db8::5:40022             IPv6 up to 2026.93: unbracketed, so the port is after the LAST colon
  [2001:db8::5]:40022           IPv6 from 2026.94 ("Child connection from" only)
  [2001:db8::5]:400  [..]:      2026.94 auth/exit lines: the buffer is 2 bytes short, so the last
                                two characters of the port are cut (port 22 leaves "]:")
LuCI prints REMOTE_ADDR alone: "192.168.1.2", "2001:db8::5", or "?".
"""
import ipaddress
import re
from functools import lru_cache

from ..text import clip

MAX_ADDRESS_CHARS = 64      # longest IPv6 with a scope id is well below this
MAX_USER_CHARS = 64


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE = re.compile(r"%s(?:\.%s){3}\Z" % (_OCTET, _OCTET))   # canonical dotted quad only


def _ipv4_value(text):
    """The 32-bit value of a canonical dotted quad ("192.0.2.1"), or None; no leading zeros,
    like ipaddress. A flood brings a new address per line: this skips building objects."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not (0 < len(part) <= 3 and part.isdigit() and part.isascii()) \
                or (part[0] == "0" and len(part) > 1):
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = value << 8 | octet
    return value


@lru_cache(maxsize=2048)
def normalise_ip(text):
    """Canonical text of an IP address (IPv4-mapped IPv6 becomes IPv4), or None if it is none."""
    if not text or len(text) > MAX_ADDRESS_CHARS:
        return None
    if ":" not in text:
        return text if _IPV4_RE.match(text) else None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _port(text):
    if not text or len(text) > 5 or not text.isdigit() or not text.isascii():
        return None
    value = int(text)
    return value if value <= 65535 else None


@lru_cache(maxsize=2048)
def split_host_port(text):
    """(ip, port, bracketed) from dropbear's address text, or None when it is not an address.

    A bracketed address may have a short or empty port (the 2026.94 cut); the port is returned as
    printed (None when empty) and `bracketed` tells the caller it may be cut.
    """
    if not text or len(text) > MAX_ADDRESS_CHARS + 8:
        return None
    if text[0] == "[":
        # the cut may reach into the bracket itself for a 1-3 digit port: "[2001:db8::1"
        close = text.find("]")
        if close < 0:
            close = len(text)
        ip = normalise_ip(text[1:close])
        rest = text[close + 1:]
        if rest and rest[0] != ":":
            return None
        port_text = rest[1:]
        if ip is None or (port_text and _port(port_text) is None):
            return None
        return ip, _port(port_text), True
    # dropbear logs the port after a colon; IPv6 addresses contain colons too
    host, sep, port_text = text.rpartition(":")
    if not sep:
        return None
    port = _port(port_text)
    ip = normalise_ip(host)
    if port is None or ip is None:
        return None
    return ip, port, False


def clean_user(text):
    """A user name cut to MAX_USER_CHARS. It stays as logged (control characters, undecodable
    bytes): the runtime escapes every router string once, where it becomes a payload."""
    if text is None:
        return None
    return clip(text, MAX_USER_CHARS)


def source_group(ip, ipv4_prefix=32, ipv6_prefix=64):
    """The network a source is judged by: "198.51.100.0/24" or "2001:db8:1:2::/64", or the address
    itself at full length. One host's IPv6 privacy addresses change daily within its /64.
    `ip` is normalise_ip's output."""
    if ip is None:
        return None
    if ":" not in ip:
        if ipv4_prefix >= 32:
            return ip
        value = _ipv4_value(ip)
        if value is not None:
            value &= (0xFFFFFFFF << (32 - ipv4_prefix)) & 0xFFFFFFFF
            return "%d.%d.%d.%d/%d" % (value >> 24, value >> 16 & 255, value >> 8 & 255,
                                       value & 255, ipv4_prefix)
    return _source_group(ip, ipv4_prefix, ipv6_prefix)


@lru_cache(maxsize=2048)
def _source_group(ip, ipv4_prefix, ipv6_prefix):
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = ipv4_prefix if address.version == 4 else ipv6_prefix
    if prefix >= address.max_prefixlen:
        return str(address)
    try:
        return str(ipaddress.ip_network("%s/%d" % (address, prefix), strict=False))
    except ValueError:    # a scoped link-local address ("fe80::1%br-lan") has no network form
        return str(address)
