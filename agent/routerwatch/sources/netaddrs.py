"""The router's own addresses: what makes a conntrack entry router-originated or inbound.

Read from <root>/proc/net/fib_trie (IPv4: leaves followed by a "/32 host LOCAL" line) and
<root>/proc/net/if_inet6 (IPv6, network order, 32 hex digits), plus loopback and the addresses
named in config.router_addresses. Read again on every poll (a PPPoE reconnect or a new IPv6
prefix from the ISP changes the WAN addresses), parsed again only when the text changed.
"""
import ipaddress
import logging
import os
import re

from ..parsers.address_list import parse_address_list
from .procfile import ParsedFile

log = logging.getLogger("routerwatch")

MAX_ADDRESSES = 4096          # a home router has a handful; a BGP box's fib_trie is not our case
MAX_FIB_TRIE_LINES = 200000

FIB_LEAF_RE = re.compile(r"\A\s+\|-- ([0-9]{1,3}(?:\.[0-9]{1,3}){3})\s*\Z")
FIB_LOCAL_HOST_RE = re.compile(r"\A\s+/32 host LOCAL\s*\Z")
IF_INET6_RE = re.compile(r"\A([0-9a-fA-F]{32}) [0-9a-fA-F]{2,8} [0-9a-fA-F]{2} [0-9a-fA-F]{2} "
                         r"[0-9a-fA-F]{2} +\S{1,16}\s*\Z")

LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


class RouterAddresses:
    """A set of the router's addresses, asked two ways.

    contains(text): normalised address text (as the parsers produce it).
    raw_spellings(): every spelling of every address, exactly as /proc/net/nf_conntrack prints
    it (IPv6 uncompressed) or as `conntrack -L` does (compressed), for set lookups of unparsed
    text: the forwarded-traffic fast path. Of 127.0.0.0/8 it holds 127.0.0.1 only.
    """
    __slots__ = ("addresses", "_spellings")

    def __init__(self, addresses=()):
        normalised = set(LOOPBACK)
        normalised.update(addresses)
        self.addresses = frozenset(str(a) for a in normalised)
        spellings = set(self.addresses)
        for address in normalised:
            if address.version == 6:
                spellings.add(address.exploded)
        self._spellings = frozenset(spellings)

    def contains(self, text):
        return text in self.addresses or text.startswith("127.")

    def raw_spellings(self):
        return self._spellings

    def __len__(self):
        return len(self.addresses)

    def __eq__(self, other):
        return isinstance(other, RouterAddresses) and self.addresses == other.addresses

    __hash__ = None


def parse_fib_trie(lines):
    """IPv4 addresses of the "/32 host LOCAL" leaves of /proc/net/fib_trie."""
    found = set()
    leaf = None
    for count, line in enumerate(lines):
        if count >= MAX_FIB_TRIE_LINES or len(found) >= MAX_ADDRESSES:
            break
        match = FIB_LEAF_RE.match(line)
        if match:
            leaf = match.group(1)
            continue
        if leaf is not None and FIB_LOCAL_HOST_RE.match(line):
            try:
                found.add(ipaddress.IPv4Address(leaf))
            except ValueError:
                pass
        elif not line.startswith(" " * 4) or "+--" in line:
            leaf = None
    return found


def parse_if_inet6(lines):
    """IPv6 addresses of /proc/net/if_inet6 (printed in network order, unlike /proc/net/tcp6)."""
    found = set()
    for line in lines:
        if len(found) >= MAX_ADDRESSES:
            break
        match = IF_INET6_RE.match(line)
        if match:
            found.add(ipaddress.IPv6Address(bytes.fromhex(match.group(1))))
    return found


class RouterAddressReader:
    """Reads the address set under a root prefix; extra addresses come from the config."""

    def __init__(self, root="/", extra=""):
        self.root = root
        self.extra, bad = parse_address_list(extra or "")
        if bad:
            log.warning("router_addresses: ignoring %s (not IP addresses)",
                        ", ".join(repr(item[:64]) for item in bad[:5]))
        net = os.path.join(root, "proc", "net")
        # parsed again only when their text changed: they are read every connections poll
        self._files = (ParsedFile(os.path.join(net, "fib_trie"), parse_fib_trie),
                       ParsedFile(os.path.join(net, "if_inet6"), parse_if_inet6))
        self._last = None

    def read(self):
        addresses = set(self.extra)
        changed = self._last is None
        for parsed in self._files:
            found, differs = parsed.read()
            addresses |= found
            changed = changed or differs
        if changed:
            self._last = RouterAddresses(addresses)
        return self._last
