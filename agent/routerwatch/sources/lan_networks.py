"""The router's LAN networks, for telling the owner's side from the world's (inside.py).

Read from <root>/proc/net/route and <root>/proc/net/ipv6_route every `interval` seconds (a new
IPv6 prefix from the ISP changes the LAN's /64), plus config.lan_networks. A LanNetworks event is
given on the first poll and whenever the set changed, so detectors judge sources by the current
LAN; the runtime hands it to every detector.
"""
import logging
import os

from ..events import LanNetworks
from ..parsers.address_list import parse_network_list
from ..parsers.proc_route import parse_ipv6_route, parse_route

log = logging.getLogger("routerwatch")


def _read(path, parse):
    try:
        with open(path, "r", encoding="ascii", errors="replace") as handle:
            return parse(handle)
    except OSError:
        return set()


class LanNetworkSource:
    interval = 60

    def __init__(self, config):
        self.root = config.root
        self.extra, bad = parse_network_list(config.lan_networks)
        if bad:
            log.warning("lan_networks: ignoring %s (not networks)",
                        ", ".join(repr(item[:64]) for item in bad[:5]))
        self._last = None

    def read(self):
        net = os.path.join(self.root, "proc", "net")
        networks = set(self.extra)
        networks |= _read(os.path.join(net, "route"), parse_route)
        networks |= _read(os.path.join(net, "ipv6_route"), parse_ipv6_route)
        return tuple(sorted((str(n) for n in networks)))

    def poll(self, now):
        networks = self.read()
        if networks == self._last:
            return []
        self._last = networks
        return [LanNetworks(time=now, networks=networks)]

    def counters(self):
        return {}

    def drops(self):
        return {}

    def close(self):
        pass
