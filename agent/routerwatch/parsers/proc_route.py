"""/proc/net/route and /proc/net/ipv6_route -> the networks of the router's LAN side.

  route       Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT
              br-lan 0001A8C0 00000000 0001 0 0 0 00FFFFFF 0 0 0
              (addresses are network-order values printed as host-order u32, like /proc/net/tcp:
              the byte order of the machine that wrote the file is a parameter)
  ipv6_route  dest plen src plen nexthop metric refcnt use flags iface   (network order)
              20010db8000100000000000000000000 40 000...0 00 000...0 00000100 00000001 00000000 00000001 br-lan

A LAN network is a connected route (no gateway) of an interface that does not hold a default
route: the default route leaves by the WAN, whose connected network (the ISP's) is outside.
A router without a default route (an access point) has only LAN networks. Loopback, link-local,
multicast, host (/32, /128) and reject routes are left out (the fixed ranges cover the first two).
"""
import ipaddress
import re
import sys

RTF_UP = 0x0001
RTF_GATEWAY = 0x0002
RTF_REJECT = 0x0200
MAX_LINES = 10000

_ROUTE_RE = re.compile(r"\A(\S{1,16})\t([0-9A-Fa-f]{8})\t([0-9A-Fa-f]{8})\t([0-9A-Fa-f]{4})\t"
                       r"-?\d+\t\d+\t\d+\t([0-9A-Fa-f]{8})\t")
_ROUTE6_RE = re.compile(r"\A([0-9a-fA-F]{32}) ([0-9a-fA-F]{2}) [0-9a-fA-F]{32} [0-9a-fA-F]{2} "
                        r"([0-9a-fA-F]{32}) [0-9a-fA-F]{8} [0-9a-fA-F]{8} [0-9a-fA-F]{8} "
                        r"([0-9a-fA-F]{8}) +(\S{1,16})\s*\Z")


def _ipv4(hex_text, byteorder):
    return ipaddress.IPv4Address(int(hex_text, 16).to_bytes(4, byteorder))


def _lan(connected, default_ifaces):
    return {net for iface, net in connected if iface not in default_ifaces and iface != "lo"}


def parse_route(lines, byteorder=sys.byteorder):
    """LAN networks (IPv4Network) of /proc/net/route."""
    connected, default_ifaces = [], set()
    for count, line in enumerate(lines):
        if count >= MAX_LINES:
            break
        m = _ROUTE_RE.match(line)
        if m is None:
            continue
        iface, dest, gateway, flags, mask = m.groups()
        flags = int(flags, 16)
        if not flags & RTF_UP or flags & RTF_REJECT:
            continue
        if int(mask, 16) == 0:
            default_ifaces.add(iface)
            continue
        if flags & RTF_GATEWAY or int(gateway, 16) != 0:
            continue
        try:
            net = ipaddress.IPv4Network("%s/%s" % (_ipv4(dest, byteorder), _ipv4(mask, byteorder)),
                                        strict=False)
        except ValueError:
            continue
        if net.prefixlen < 32 and not net.is_loopback and not net.is_link_local:
            connected.append((iface, net))
    return _lan(connected, default_ifaces)


def parse_ipv6_route(lines):
    """LAN networks (IPv6Network) of /proc/net/ipv6_route."""
    connected, default_ifaces = [], set()
    for count, line in enumerate(lines):
        if count >= MAX_LINES:
            break
        m = _ROUTE6_RE.match(line)
        if m is None:
            continue
        dest, plen, nexthop, flags, iface = m.groups()
        plen, flags = int(plen, 16), int(flags, 16)
        if flags & RTF_REJECT or plen > 128:
            continue
        if plen == 0:
            default_ifaces.add(iface)
            continue
        if flags & RTF_GATEWAY or int(nexthop, 16) != 0 or plen == 128:
            continue
        net = ipaddress.IPv6Network((int(dest, 16), plen), strict=False)
        if not (net.is_multicast or net.is_link_local or net.is_loopback):
            connected.append((iface, net))
    return _lan(connected, default_ifaces)
