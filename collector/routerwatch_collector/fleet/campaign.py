"""fleet.campaign: one attacker source in the login anomalies of many devices.

A router sees one source failing a few times and cannot tell chance from a campaign; the fleet
sees the same source on N routers within a window. The source is the address (IPv4) or its /64
(IPv6: one host holds a whole /64), and also the enclosing /24 or /48 when several of its
addresses are involved (a botnet rotating through a hosting range). Only global addresses
count: every router's LAN is 192.168.1.0/24, and a LAN client failing on many routers is no
attacker of the fleet.
"""
import functools
import ipaddress
from dataclasses import dataclass

from routerwatch.options import option

from .base import FLEET_DEVICE, FleetFinding, SpreadConfig, SpreadDetector

LOGIN_PREFIX = "login."
# login.spray lists the sources it saw; a router's list is bounded, so is what is read of it
MAX_SOURCES_PER_ANOMALY = 16


@functools.lru_cache(maxsize=4096)   # a campaign repeats its sources; parsing one costs ~20 µs
def _address_keys(text):
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return ()
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not address.is_global:
        return ()
    if address.version == 4:
        own = str(address)
        wide = str(ipaddress.ip_network("%s/24" % address, strict=False))
    else:
        own = str(ipaddress.ip_network("%s/64" % address, strict=False))
        wide = str(ipaddress.ip_network("%s/48" % address, strict=False))
    return ((own, None), (wide, own))


def source_keys(text):
    """[(key, address key or None)] for one source address: the address (IPv4) or /64 (IPv6),
    then the enclosing /24 or /48 with the address key as its detail. [] for anything that is
    not a global address."""
    if not isinstance(text, str) or len(text) > 64:
        return []
    return list(_address_keys(text))


def anomaly_sources(anomaly):
    evidence = anomaly.evidence if isinstance(anomaly.evidence, dict) else {}
    found = []
    if anomaly.kind == "login.spray":
        sources = evidence.get("sources")
        if isinstance(sources, list):
            found.extend(sources[:MAX_SOURCES_PER_ANOMALY])
    elif evidence.get("inside") is not True:
        found.append(evidence.get("source_ip"))
    return [s for s in found if isinstance(s, str)]


class Campaign(SpreadDetector):
    kind = "fleet.campaign"
    consumes = ("anomaly",)

    @dataclass(frozen=True)
    class Config(SpreadConfig):
        min_devices: int = option(
            5, 2, 1000000, "distinct devices one source must reach: 2-3 routers can share a "
            "CGNAT neighbour or a VPN exit by chance, 5 unrelated routers in a day cannot")
        window: int = option(
            86400, 600, 30 * 86400, "seconds the devices are counted over: slow scanners reach "
            "each address once a day, and a campaign ends after a window without a new sighting")
        min_prefix_addresses: int = option(
            4, 2, 65536, "addresses of one /24 (IPv4) or /48 (IPv6) that make the range itself a "
            "source: one host is the address, a rotating botnet shows as many")

    def observe(self, store, anomaly, now):
        if not anomaly.kind.startswith(LOGIN_PREFIX) or anomaly.device == FLEET_DEVICE:
            return []
        keys = []
        for source in anomaly_sources(anomaly):
            for key, address in source_keys(source):
                detail = anomaly.kind if address is None else address
                store.fleet_sight(self.kind, key, anomaly.device, detail, now)
                if key not in keys:
                    keys.append(key)
        findings = []
        cfg = self.config
        since = now - cfg.window
        for key in keys:
            wide = key.endswith("/24") or key.endswith("/48")
            devices, details, first, last = store.fleet_spread_counts(self.kind, key, since)
            if devices < cfg.min_devices or (wide and details < cfg.min_prefix_addresses):
                continue
            device_list, detail_list = store.fleet_spread_samples(
                self.kind, key, since, cfg.max_listed_devices)
            evidence = {"source": key, "devices": devices, "device_list": device_list,
                        "window": cfg.window, "min_devices": cfg.min_devices,
                        "first": first, "last": last}
            if wide:
                evidence.update(addresses=details, address_list=detail_list)
                what = "%d addresses of %s" % (details, key)
            else:
                evidence["kinds"] = detail_list
                what = key
            summary = "login attacks from %s on %d devices within %d h" % (
                what, devices, max(1, cfg.window // 3600))
            findings.append(FleetFinding(kind=self.kind, severity="high", summary=summary,
                                         evidence=evidence, device=FLEET_DEVICE, incident=key,
                                         devices=devices))
        return findings
