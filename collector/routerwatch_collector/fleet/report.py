"""What the fleet detections know, for people and for other tools: `routerwatch-collector iocs`
(the open campaigns' sources and the implants' hashes as JSON lines, CSV or an nftables snippet
for a set an ISP, banIP or an ACS pushes to the routers; nothing is pushed from here) and
`routerwatch-collector fleet` (the fleet picture).

Everything printed is re-validated first: the store may have been written by anyone, and an
nftables snippet is code.
"""
import csv
import io
import ipaddress
import re

from .campaign import Campaign
from .firmware_outlier import FirmwareOutlier
from .implant import SHA256_RE, Implant

NFT_SET_V4 = "routerwatch_block"
NFT_SET_V6 = "routerwatch_block6"
NFT_TABLE = "inet fw4"
CSV_COLUMNS = ("type", "value", "kind", "devices", "first", "last")
_PRINTABLE = re.compile(r"[^\x20-\x7e]")


def _network(text):
    try:
        if "/" in text:
            return ipaddress.ip_network(text, strict=True)
        return ipaddress.ip_address(text)
    except (TypeError, ValueError):
        return None


def indicators(store, now, campaign_window=None, implant_window=None):
    """[{type: ipv4|ipv6|sha256, value, kind, devices, first, last}] of the campaigns and
    implants still open (seen within their window)."""
    campaign_window = campaign_window or Campaign.Config().window
    implant_window = implant_window or Implant.Config().window
    out = []
    for row in store.fleet_incidents(Campaign.kind, since=now - campaign_window, limit=1000):
        value = _network(row["key"])
        if value is None:
            continue
        out.append({"type": "ipv%d" % value.version, "value": str(value),
                    "kind": Campaign.kind, "devices": row["devices"],
                    "first": row["opened_at"], "last": row["last_at"]})
    for row in store.fleet_incidents(Implant.kind, since=now - implant_window, limit=1000):
        if not isinstance(row["key"], str) or not SHA256_RE.match(row["key"]):
            continue
        out.append({"type": "sha256", "value": row["key"], "kind": Implant.kind,
                    "devices": row["devices"], "first": row["opened_at"],
                    "last": row["last_at"]})
    return out


def as_csv(rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in CSV_COLUMNS})
    return buffer.getvalue()


def as_nft(rows):
    """`add element` lines for two interval sets (IPv4 and IPv6), with the lines that create
    them as comments; no line at all for an empty set (nft refuses `{ }`)."""
    v4, v6 = _collapsed(rows, 4), _collapsed(rows, 6)
    lines = ["# routerwatch fleet.campaign sources; the sets, once:",
             "#   add set %s %s { type ipv4_addr; flags interval; }" % (NFT_TABLE, NFT_SET_V4),
             "#   add set %s %s { type ipv6_addr; flags interval; }" % (NFT_TABLE, NFT_SET_V6)]
    for name, values in ((NFT_SET_V4, v4), (NFT_SET_V6, v6)):
        if values:
            lines.append("add element %s %s { %s }" % (NFT_TABLE, name, ", ".join(values)))
    return "\n".join(lines) + "\n"


def _collapsed(rows, version):
    """The sources of one family as the fewest networks: an interval set refuses an address
    inside a range it also lists."""
    networks = []
    for row in rows:
        if row["type"] == "ipv%d" % version:
            value = _network(row["value"])
            if value is not None and value.version == version:
                networks.append(ipaddress.ip_network(value))
    out = []
    for network in ipaddress.collapse_addresses(networks):
        out.append(str(network.network_address) if network.num_addresses == 1 else str(network))
    return out


def printable(text, limit=80):
    return _PRINTABLE.sub("?", str(text))[:limit]


def firmware_groups(store, limit=100):
    """[{board, release, revision, kernel, devices, usual_hash, usual_share, outliers}] of the
    largest groups; outliers only where there is a consensus (as the detection sees it)."""
    config = FirmwareOutlier.Config()
    out = []
    for group, total, _ in store.fleet_firmware_groups(limit):
        total_now, counts = store.fleet_firmware_counts(group)
        if not counts:
            continue
        usual, usual_n = counts[0]
        consensus = total_now >= config.min_siblings and usual_n >= config.consensus * total_now
        outliers = []
        if consensus:
            for firmware_hash, _ in counts[1:]:
                for device in store.fleet_firmware_devices(group, firmware_hash, 20):
                    outliers.append({"device": device, "firmware_hash": firmware_hash})
        parts = (group.split("|") + ["", "", "", ""])[:4]
        out.append({"board": parts[0], "release": parts[1], "revision": parts[2],
                    "kernel": parts[3], "devices": total_now, "usual_hash": usual,
                    "usual_share": round(usual_n / total_now, 4) if total_now else 0.0,
                    "consensus": consensus, "outliers": outliers})
    return out


def fleet_picture(store, now):
    return {"devices": store.fleet_counts(),
            "campaigns": [r for r in indicators(store, now) if r["kind"] == Campaign.kind],
            "implants": [r for r in indicators(store, now) if r["kind"] == Implant.kind],
            "firmware_groups": firmware_groups(store)}


def picture_text(picture):
    d = picture["devices"]
    lines = ["devices: %d (online %d, silent %d, stopped %d, offline %d, unknown %d)" % (
        d["total"], d["online"], d["silent"], d["stopped"], d["offline"], d["unknown"])]
    lines.append("open campaigns: %d" % len(picture["campaigns"]))
    for c in picture["campaigns"]:
        lines.append("  %-40s %6d devices" % (c["value"], c["devices"]))
    lines.append("implants: %d" % len(picture["implants"]))
    for i in picture["implants"]:
        lines.append("  %s %6d devices" % (i["value"], i["devices"]))
    lines.append("firmware groups: %d" % len(picture["firmware_groups"]))
    for g in picture["firmware_groups"]:
        lines.append("  %s %s %s %s: %d devices, %.1f %% on %s%s" % (
            printable(g["board"], 40), printable(g["release"], 20), printable(g["revision"], 30),
            printable(g["kernel"], 30), g["devices"], 100 * g["usual_share"],
            printable(g["usual_hash"], 12), "" if g["consensus"] else " (no consensus)"))
        for o in g["outliers"]:
            lines.append("    outlier %s: %s" % (printable(o["device"], 64),
                                                 printable(o["firmware_hash"], 64)))
    return "\n".join(lines) + "\n"
