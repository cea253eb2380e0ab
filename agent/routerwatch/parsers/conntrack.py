"""Conntrack entries: one line of /proc/net/nf_conntrack (or of `conntrack -L`) -> ConntrackEntry.

Line shape (kernel net/netfilter/nf_conntrack_standalone.c), tokens separated by spaces:

    [ipv4 2 | ipv6 10]  l4name l4num  [timeout]  [TCP state]  src= dst= sport= dport= ...
    [packets= bytes=] [UNREPLIED]  src= dst= sport= dport= ... [OFFLOAD|HW_OFFLOAD|ASSURED]
    [mark=] [secctx=] [zone=] [delta-time=] use=

The l3 prefix is absent in `conntrack -L`; the timeout is absent for offloaded flows; which of
the key=value fields appear depends on kernel options, so the tuple fields are taken by key: the
first src= opens the original tuple, the second src= the reply tuple.

Strict: anything that does not fit returns None (the source counts those lines); nothing raises.
Addresses come out normalised by ipaddress (compressed IPv6), so one address has one spelling.
"""
import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Optional

MAX_LINE_CHARS = 4096     # the kernel's lines are under 512 characters

# l4 name -> protocol number as the kernel prints them (l4proto_name()); "unknown" takes any
L4_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "gre": 47, "sctp": 132,
              "dccp": 33, "udplite": 136}
L3_NUMBERS = {"ipv4": 2, "ipv6": 10}
TCP_STATES = frozenset(("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
                        "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2", "LISTEN"))
# sctp and dccp print their own state words; only their shape is checked
OTHER_STATE_RE = re.compile(r"\A[A-Z][A-Z0-9_]{0,23}\Z")
FLAGS = frozenset(("[UNREPLIED]", "[ASSURED]", "[OFFLOAD]", "[HW_OFFLOAD]"))
KEY_RE = re.compile(r"\A[a-z][a-z0-9_-]{0,31}\Z")
HEX_RE = re.compile(r"\A0x[0-9a-fA-F]{1,8}\Z")
TIMEOUT_RE = re.compile(r"\A-?[0-9]{1,12}\Z")

PORT_PROTOCOLS = frozenset(("tcp", "udp", "sctp", "dccp", "udplite"))
ICMP_PROTOCOLS = frozenset(("icmp", "icmpv6"))
# keys that belong to one tuple; a second one inside the same tuple makes the line invalid
TUPLE_KEYS = frozenset(("src", "dst", "sport", "dport", "type", "code", "id", "srckey", "dstkey",
                        "packets", "bytes", "zone-orig", "zone-reply"))
KNOWN_KEYS = TUPLE_KEYS | {"mark", "zone", "delta-time", "use", "secctx", "labels"}


@dataclass(frozen=True, slots=True)
class ConntrackEntry:
    proto: str                    # tcp | udp | icmp | icmpv6 | gre | sctp | dccp | udplite | unknown
    family: int                   # 4 or 6
    timeout: Optional[int]        # None when offloaded
    state: Optional[str]          # TCP (or sctp/dccp) state word
    src: str
    dst: str
    sport: Optional[int]          # ports for tcp/udp/sctp/dccp/udplite, else None
    dport: Optional[int]
    reply_src: str
    reply_dst: str
    reply_sport: Optional[int]
    reply_dport: Optional[int]
    unreplied: bool
    assured: bool
    offloaded: bool               # [OFFLOAD] or [HW_OFFLOAD]
    age: Optional[int]            # delta-time=: seconds since the flow started
    mark: Optional[int]
    zone: Optional[int]
    icmp_type: Optional[int] = None
    icmp_id: Optional[int] = None


@functools.lru_cache(maxsize=8192)
def _parse_address(text):
    """(version, compressed text) or None; memoised: a table repeats the same few addresses
    (the router's own, its busiest peers) thousands of times."""
    if not text or len(text) > 39 or "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address.version, str(address)


def normalise_address(text, family=None):
    """Compressed ipaddress text, or None. Zone ids ('%eth0') are refused: the kernel prints none."""
    parsed = _parse_address(text) if isinstance(text, str) else None
    if parsed is None or (family is not None and parsed[0] != family):
        return None
    return parsed[1]


def _number(text, maximum):
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        return None
    value = int(text)
    return value if value <= maximum else None


def parse_line(line):
    """One conntrack line -> ConntrackEntry, or None when the line is not a valid entry."""
    if not isinstance(line, str) or len(line) > MAX_LINE_CHARS:
        return None
    tokens = line.split()
    if len(tokens) < 4:
        return None
    at = 0
    family = None
    if tokens[0] in L3_NUMBERS:
        if tokens[1] != str(L3_NUMBERS[tokens[0]]):
            return None
        family = 4 if tokens[0] == "ipv4" else 6
        at = 2
    if len(tokens) < at + 2:
        return None
    proto, number = tokens[at], tokens[at + 1]
    if proto == "unknown":
        if _number(number, 255) is None:
            return None
    elif L4_NUMBERS.get(proto) is None or number != str(L4_NUMBERS[proto]):
        return None
    at += 2

    timeout = None
    if at < len(tokens) and TIMEOUT_RE.match(tokens[at]):
        timeout = int(tokens[at])
        at += 1
    state = None
    if at < len(tokens) and "=" not in tokens[at] and not tokens[at].startswith("["):
        word = tokens[at]
        if proto == "tcp":
            if word not in TCP_STATES:
                return None
        elif proto not in ("sctp", "dccp") or not OTHER_STATE_RE.match(word):
            return None
        state = word
        at += 1

    tuples = []          # [original, reply], each a dict of its keys
    other = {}
    flags = set()
    for token in tokens[at:]:
        if token in FLAGS:
            flags.add(token)
            continue
        key, sep, value = token.partition("=")
        if not sep or not value or (key not in KNOWN_KEYS and not KEY_RE.match(key)):
            return None
        if key == "src":
            if len(tuples) == 2:
                return None
            tuples.append({})
        if key in TUPLE_KEYS:
            if not tuples or key in tuples[-1]:
                return None
            tuples[-1][key] = value
        else:
            if key in other:
                return None
            other[key] = value
    if len(tuples) != 2:
        return None
    orig, reply = tuples

    addresses = []
    for part in (orig, reply):
        for key in ("src", "dst"):
            address = normalise_address(part.get(key), family)
            if address is None:
                return None
            if family is None:
                family = 6 if ":" in address else 4
            addresses.append(address)

    sport = dport = reply_sport = reply_dport = None
    icmp_type = icmp_id = None
    if proto in PORT_PROTOCOLS:
        ports = []
        for part in (orig, reply):
            for key in ("sport", "dport"):
                port = _number(part.get(key, ""), 65535)
                if port is None:
                    return None
                ports.append(port)
        sport, dport, reply_sport, reply_dport = ports
    elif proto in ICMP_PROTOCOLS:
        for part in (orig, reply):
            for key, maximum in (("type", 255), ("code", 255), ("id", 65535)):
                if _number(part.get(key, ""), maximum) is None:
                    return None
        icmp_type, icmp_id = int(orig["type"]), int(orig["id"])
    elif proto == "gre":
        for part in (orig, reply):
            for key in ("srckey", "dstkey"):
                if not HEX_RE.match(part.get(key, "")):
                    return None

    for part in (orig, reply):
        for key in ("packets", "bytes", "zone-orig", "zone-reply"):
            if key in part and _number(part[key], 2 ** 64 - 1) is None:
                return None
    numbers = {}
    for key in ("mark", "zone", "delta-time", "use"):
        if key in other:
            numbers[key] = _number(other[key], 2 ** 64 - 1)
            if numbers[key] is None:
                return None

    return ConntrackEntry(
        proto=proto, family=family, timeout=timeout, state=state,
        src=addresses[0], dst=addresses[1], sport=sport, dport=dport,
        reply_src=addresses[2], reply_dst=addresses[3],
        reply_sport=reply_sport, reply_dport=reply_dport,
        unreplied="[UNREPLIED]" in flags, assured="[ASSURED]" in flags,
        offloaded="[OFFLOAD]" in flags or "[HW_OFFLOAD]" in flags,
        age=numbers.get("delta-time"), mark=numbers.get("mark"), zone=numbers.get("zone"),
        icmp_type=icmp_type, icmp_id=icmp_id)


def raw_addresses(line):
    """(orig src, orig dst, reply src) exactly as printed, or None: the cheap look used to sort
    out forwarded traffic before anything is parsed. Text only, nothing validated."""
    parts = line.split(" src=", 2)
    if len(parts) != 3:
        return None
    orig, reply = parts[1], parts[2]
    end = orig.find(" dst=")
    if end < 0:
        return None
    return orig[:end], orig[end + 5:orig.find(" ", end + 5)], reply[:reply.find(" ")]
