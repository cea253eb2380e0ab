"""Comma-separated address options (router_addresses, ignore_destinations): text -> addresses."""
import ipaddress


def _parse_list(text, parse):
    """'a, b' -> ({parse(item)}, [items parse refuses]); a zone index (%eth0) is refused."""
    good, bad = set(), []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            if "%" in item:
                raise ValueError(item)
            good.add(parse(item))
        except ValueError:
            bad.append(item)
    return good, bad


def parse_address_list(text):
    """config.router_addresses 'a, b' -> (addresses, [items that are not addresses])."""
    return _parse_list(text, ipaddress.ip_address)


def parse_network_list(text):
    """config.lan_networks '192.168.7.0/24, 2001:db8:7::/64' -> (networks, [bad items]).
    A bare address stands for itself (/32, /128)."""
    return _parse_list(text, lambda item: ipaddress.ip_network(item, strict=False))
