"""Comma-separated address options (router_addresses, ignore_destinations): text -> addresses."""
import ipaddress


def parse_address_list(text):
    """config.router_addresses 'a, b' -> (addresses, [items that are not addresses])."""
    good, bad = set(), []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            if "%" in item:
                raise ValueError(item)
            good.add(ipaddress.ip_address(item))
        except ValueError:
            bad.append(item)
    return good, bad


def parse_network_list(text):
    """config.lan_networks '192.168.7.0/24, 2001:db8:7::/64' -> (networks, [bad items]).
    A bare address stands for itself (/32, /128)."""
    good, bad = set(), []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            if "%" in item:
                raise ValueError(item)
            good.add(ipaddress.ip_network(item, strict=False))
        except ValueError:
            bad.append(item)
    return good, bad
