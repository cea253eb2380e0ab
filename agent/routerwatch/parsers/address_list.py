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
