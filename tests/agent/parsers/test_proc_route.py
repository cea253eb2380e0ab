"""/proc/net/route and ipv6_route -> the LAN networks: connected routes of interfaces that do not
carry the default route."""
from routerwatch.parsers.proc_route import parse_ipv6_route, parse_route

# SHAPED LIKE an OpenWrt router's /proc/net/route on little-endian ARM: WAN eth1 (DHCP from the
# ISP, default route), LAN br-lan 192.168.1.0/24, guest 192.168.3.0/24, a routed public /29
ROUTE_LE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth1\t00000000\t0171000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth1\t0071000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
br-lan\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
br-guest\t0003A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
br-dmz\t007100CB\t00000000\t0001\t0\t0\t0\tF8FFFFFF\t0\t0\t0
br-lan\t0A0A0A0A\t0101A8C0\t0003\t0\t0\t0\tFFFFFFFF\t0\t0\t0
"""
# the same on big-endian MIPS (ath79): the hex is in the other byte order
ROUTE_BE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
pppoe-wan\t00000000\tC6336401\t0003\t0\t0\t0\t00000000\t0\t0\t0
pppoe-wan\tC6336401\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0
br-lan\tC0A80100\t00000000\t0001\t0\t0\t0\tFFFFFF00\t0\t0\t0
"""
Z = "0" * 32
IPV6_ROUTE = "\n".join((
    # default via the WAN
    "%s 00 %s 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth1"
    % (Z, Z),
    # the WAN's own /64 (the ISP's link)
    "20010db8ffff00010000000000000000 40 %s 00 %s 00000100 00000001 00000000 00000001     eth1"
    % (Z, Z),
    # the delegated prefix on br-lan and a ULA
    "20010db8000100000000000000000000 40 %s 00 %s 00000100 00000001 00000000 00000001   br-lan"
    % (Z, Z),
    "fd0012345678aa000000000000000000 40 %s 00 %s 00000100 00000001 00000000 00000001   br-lan"
    % (Z, Z),
    # the rest of the delegation: unreachable on lo; link-local; multicast; a host route
    "20010db8000100000000000000000000 30 %s 00 %s 00000000 00000001 00000000 00200200       lo"
    % (Z, Z),
    "fe800000000000000000000000000000 40 %s 00 %s 00000100 00000001 00000000 00000001   br-lan"
    % (Z, Z),
    "ff000000000000000000000000000000 08 %s 00 %s 00000100 00000001 00000000 00000001   br-lan"
    % (Z, Z),
    "20010db8000100000000000000000001 80 %s 00 %s 00000000 00000001 00000000 80200001   br-lan"
    % (Z, Z),
    "garbage line",
))


def test_ipv4_lan_networks_little_endian():
    assert {str(n) for n in parse_route(ROUTE_LE.splitlines(), "little")} == {
        "192.168.1.0/24", "192.168.3.0/24", "203.0.113.0/29"}


def test_ipv4_lan_networks_big_endian_with_pppoe():
    assert {str(n) for n in parse_route(ROUTE_BE.splitlines(), "big")} == {"192.168.1.0/24"}


def test_ipv6_lan_networks():
    assert {str(n) for n in parse_ipv6_route(IPV6_ROUTE.splitlines())} == {
        "2001:db8:1::/64", "fd00:1234:5678:aa00::/64"}


def test_an_access_point_without_default_route_has_only_lan():
    lines = ROUTE_LE.splitlines()
    lines = [line for line in lines if not line.startswith("eth1\t00000000")]
    assert "10.0.113.0/24" in {str(n) for n in parse_route(lines, "little")}


def test_junk_gives_nothing():
    assert parse_route(["", "x" * 5000, "br-lan\tZZ\t"], "little") == set()
    assert parse_ipv6_route(["", "1" * 200]) == set()
