"""LanNetworkSource: the LAN networks from the routes under the root, plus config.lan_networks;
an event on the first poll and on a change only."""
import sys

from routerwatch import config as cfg
from routerwatch.events import LanNetworks
from routerwatch.sources.lan_networks import LanNetworkSource


def _hex_ipv4(text):
    return "%08X" % int.from_bytes(bytes(int(p) for p in text.split(".")), sys.byteorder)


def write_routes(root, lan="192.168.1.0"):
    net = root / "proc" / "net"
    net.mkdir(parents=True, exist_ok=True)
    (net / "route").write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "wan\t00000000\t%s\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "br-lan\t%s\t00000000\t0001\t0\t0\t0\t%s\t0\t0\t0\n"
        % (_hex_ipv4("198.51.100.1"), _hex_ipv4(lan), _hex_ipv4("255.255.255.0")))
    z = "0" * 32
    (net / "ipv6_route").write_text(
        "%s 00 %s 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 wan\n"
        "20010db8000700000000000000000000 40 %s 00 %s 00000100 00000001 00000000 00000001 br-lan\n"
        % (z, z, z, z))


def test_reads_routes_and_config_and_reports_changes(tmp_path):
    write_routes(tmp_path)
    conf = cfg.load(defaults={"root": str(tmp_path), "lan_networks": "10.99.0.0/16, junk"})
    source = LanNetworkSource(conf)
    first = source.poll(100)
    assert first == [LanNetworks(time=100, networks=(
        "10.99.0.0/16", "192.168.1.0/24", "2001:db8:7::/64"))]
    assert source.poll(160) == []
    write_routes(tmp_path, lan="192.168.9.0")
    assert source.poll(220)[0].networks == ("10.99.0.0/16", "192.168.9.0/24", "2001:db8:7::/64")


def test_no_proc_files_is_no_lan_networks(tmp_path):
    source = LanNetworkSource(cfg.load(defaults={"root": str(tmp_path)}))
    assert source.poll(1) == [LanNetworks(time=1, networks=())]


def test_unchanged_routes_are_not_parsed_again(tmp_path, monkeypatch):
    write_routes(tmp_path)
    source = LanNetworkSource(cfg.load(defaults={"root": str(tmp_path)}))
    assert source.poll(100)
    calls = []
    for parsed in source._files:
        monkeypatch.setattr(parsed, "parse",
                            lambda lines, parse=parsed.parse: calls.append(1) or parse(lines))
    assert source.poll(160) == [] and calls == []
    write_routes(tmp_path, lan="192.168.9.0")
    assert source.poll(220)[0].networks == ("192.168.9.0/24", "2001:db8:7::/64")
    assert calls == [1]            # the IPv6 routes did not change
