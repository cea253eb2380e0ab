"""The one rule for the owner's side: the LAN networks, RFC 1918, ULA, link-local, loopback (and,
as destinations, multicast/broadcast/unspecified); everything else is outside, documentation
ranges and CGNAT included."""
import ipaddress

from hypothesis import given, strategies as st

from routerwatch.inside import Inside, is_inside

INSIDE = ("192.168.1.10", "10.0.0.1", "172.16.0.1", "172.31.255.254", "169.254.3.4",
          "127.0.0.1", "127.8.8.8", "fd00::1", "fc12:3456::9", "fe80::1", "fe80::1%br-lan",
          "::1", "224.0.0.251", "239.255.255.250", "255.255.255.255", "ff02::1", "0.0.0.0", "::",
          "::ffff:192.168.1.2")
OUTSIDE = ("192.0.2.1", "198.51.100.7", "203.0.113.200", "2001:db8::1", "2001:db8:1:2::3",
           "100.64.0.1", "100.127.255.254", "8.8.8.8", "172.32.0.1", "172.15.255.255",
           "192.169.0.1", "11.0.0.1", "2a00:1450::1", "fec0::1", "::ffff:198.51.100.2")


def test_fixed_ranges():
    for address in INSIDE:
        assert is_inside(address), address
    for address in OUTSIDE:
        assert not is_inside(address), address


def test_not_python_is_private():
    # the trap this rule avoids: Python calls the documentation ranges private
    assert ipaddress.ip_address("192.0.2.1").is_private
    assert ipaddress.ip_address("2001:db8::1").is_private
    assert not is_inside("192.0.2.1") and not is_inside("2001:db8::1")


def test_lan_networks_of_the_router_are_inside():
    inside = Inside(["2001:db8:1::/64", "203.0.113.0/29", "bogus", "198.51.100.7"])
    assert inside.lan_networks == ("198.51.100.7/32", "203.0.113.0/29", "2001:db8:1::/64")
    assert "2001:db8:1::77" in inside and "2001:db8:1:0:aaaa::1" in inside
    assert "2001:db8:1:1::77" not in inside
    assert "203.0.113.6" in inside and "203.0.113.9" not in inside
    assert "198.51.100.7" in inside and "198.51.100.8" not in inside
    assert "192.168.1.1" in inside          # the fixed ranges stay


def test_junk_is_outside():
    for text in ("", None, "nonsense", "1.2.3", "::g", "300.1.1.1"):
        assert not is_inside(text)


@given(st.ip_addresses())
def test_agrees_with_the_networks_it_names(address):
    text = str(address)
    fixed = [ipaddress.ip_network(n) for n in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8",
        "0.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32",
        "fc00::/7", "fe80::/10", "::1/128", "::/128", "ff00::/8")]
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    expected = any(address in n for n in fixed if n.version == address.version)
    assert is_inside(text) == expected
