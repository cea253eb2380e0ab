"""The router's LAN networks, for telling the owner's side from the world's (inside.py).

Read from <root>/proc/net/route and <root>/proc/net/ipv6_route every `interval` seconds (a new
IPv6 prefix from the ISP changes the LAN's /64), parsed only when their text changed, plus
config.lan_networks. A LanNetworks event is
given on the first poll and whenever the set changed, so detectors judge sources by the current
LAN; the runtime hands it to every detector.
"""
import logging
import os

from ..events import LanNetworks
from ..parsers.address_list import parse_network_list
from ..parsers.proc_route import parse_ipv6_route, parse_route
from .procfile import ParsedFile

log = logging.getLogger("routerwatch")


class LanNetworkSource:
    interval = 60

    def __init__(self, config):
        self.root = config.root
        self.extra, bad = parse_network_list(config.lan_networks)
        if bad:
            log.warning("lan_networks: ignoring %s (not networks)",
                        ", ".join(repr(item[:64]) for item in bad[:5]))
        self._last = None
        net = os.path.join(self.root, "proc", "net")
        self._files = (ParsedFile(os.path.join(net, "route"), parse_route),
                       ParsedFile(os.path.join(net, "ipv6_route"), parse_ipv6_route))

    def read(self):
        """(networks, whether a routes file changed since the last read)."""
        networks = set(self.extra)
        changed = False
        for parsed in self._files:
            found, differs = parsed.read()
            networks |= found
            changed = changed or differs
        return tuple(sorted((str(n) for n in networks))), changed

    def poll(self, now):
        networks, changed = self.read()
        if not changed and self._last is not None or networks == self._last:
            return []
        self._last = networks
        return [LanNetworks(time=now, networks=networks)]

    def counters(self):
        return {}

    def drops(self):
        return {}

    def close(self):
        pass
