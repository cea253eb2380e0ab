"""Inside or outside: is an address on the owner's side of the router, or the world's?

Inside are
  * the router's own LAN networks: the networks its interfaces are connected to, except those of
    the interface its default route leaves by (the WAN), read from /proc/net/route and
    /proc/net/ipv6_route (sources/lan_networks.py) plus config.lan_networks - on IPv6 a LAN
    client has a global address, so the ranges below alone cannot tell it from a stranger;
  * RFC 1918, ULA (fc00::/7), link-local and loopback;
  * as destinations: multicast, broadcast and the unspecified address, which no host of the
    world owns (they can never be the source of a login).
Everything else is outside, including CGNAT (100.64.0.0/10: the ISP's other customers) and the
documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32). Python's
ipaddress.is_private counts those as private; on a real WAN they are as foreign as any address,
so it is not used here.

Every detector that tells the owner's side from the world's asks `self.inside` (detectors/base.py),
an Inside the runtime replaces whenever the LAN networks change.
"""
import ipaddress

from .parsers.login_address import _ipv4_value

FIXED_INSIDE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8",
                "fc00::/7", "fe80::/10", "::1/128")
NO_HOST = ("0.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32", "::/128", "ff00::/8")
MAX_LAN_NETWORKS = 256
CACHE_ENTRIES = 4096


def _ranges(networks, version):
    return tuple((int(n.network_address), int(n.netmask)) for n in networks if n.version == version)


class Inside:
    """The rule, with the router's LAN networks. `address in inside` takes normalised address
    text (as the parsers produce it; a scope id such as "%br-lan" is ignored)."""

    __slots__ = ("lan_networks", "_v4", "_v6", "_cache")

    def __init__(self, lan_networks=()):
        lan = set()
        for item in lan_networks:
            try:
                lan.add(ipaddress.ip_network(item, strict=False))
            except (ValueError, TypeError):
                continue
        lan = sorted(lan, key=lambda n: (n.version, n))[:MAX_LAN_NETWORKS]
        self.lan_networks = tuple(str(n) for n in lan)
        fixed = [ipaddress.ip_network(n) for n in FIXED_INSIDE + NO_HOST]
        self._v4 = _ranges(fixed + lan, 4)
        self._v6 = _ranges(fixed + lan, 6)
        self._cache = {}

    def __contains__(self, address):
        if not address:
            return False
        cache = self._cache
        known = cache.get(address)
        if known is not None:
            return known
        result = self._judge(address)
        if len(cache) >= CACHE_ENTRIES:
            cache.clear()        # a flood of random sources: start over rather than grow
        cache[address] = result
        return result

    def _judge(self, address):
        if ":" not in address:
            value = _ipv4_value(address)
            ranges = self._v4
        else:
            try:
                value = int(ipaddress.IPv6Address(address.split("%", 1)[0]))
            except ValueError:
                return False
            ranges = self._v6
            if value >> 32 == 0xFFFF:        # IPv4-mapped: judged as the IPv4 address
                value &= 0xFFFFFFFF
                ranges = self._v4
        if value is None:
            return False
        return any(value & mask == network for network, mask in ranges)

    def __eq__(self, other):
        return isinstance(other, Inside) and self.lan_networks == other.lan_networks

    __hash__ = None


NOWHERE = Inside()     # the rule before the router's networks are known


def is_inside(address, inside=NOWHERE):
    """True when `address` is on the owner's side (see the module docstring)."""
    return address in inside
