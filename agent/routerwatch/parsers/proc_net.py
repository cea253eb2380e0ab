"""Rows of /proc/net/tcp, tcp6, udp, udp6, raw, raw6 -> SocketRow.

    "%4d: %08X:%04X %08X:%04X %02X %08X:%08X %02X:%08lX %08X %5u %8d %lu ..."
     sl   local     remote    st  tx:rx queue  timer     retr  uid timeout inode

The address is the network-order value printed as a host-order u32 (per 32-bit word for IPv6),
so the same 127.0.0.1 reads 0100007F on little-endian x86/ARM and 7F000001 on big-endian MIPS
(ath79, lantiq): the byte order of the machine that wrote the file is a parameter. Ports are plain
hex numbers. raw and raw6 rows have the same layout (as udp's), with the IP protocol the socket
was opened for in the local port's place (0006 for a raw TCP socket) and state 07.
"""
import ipaddress
import re
import sys
from dataclasses import dataclass
from functools import lru_cache

TCP_LISTEN = 0x0A
UDP_UNCONNECTED = 0x07     # bound, no peer: a UDP "listener"

ROW_RE = re.compile(
    r"\A\s*[0-9]{1,10}: ([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4}) "
    r"([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4}) ([0-9A-Fa-f]{2}) "
    r"[0-9A-Fa-f]{8}:[0-9A-Fa-f]{8} [0-9A-Fa-f]{2}:[0-9A-Fa-f]{8} [0-9A-Fa-f]{8} +"
    r"([0-9]{1,10}) +(-?[0-9]{1,10}) ([0-9]{1,20})(?: [^\n]{0,200})?\n?\Z")

PROTOCOLS = ("tcp", "tcp6", "udp", "udp6")
RAW_PROTOCOLS = ("raw", "raw6")


@dataclass(frozen=True, slots=True)
class SocketRow:
    proto: str              # tcp | tcp6 | udp | udp6 | raw | raw6
    local_address: str      # normalised ipaddress text
    local_port: int         # for raw and raw6: the IP protocol number
    remote_address: str
    remote_port: int
    state: int
    uid: int
    inode: int


@lru_cache(maxsize=512)
def decode_address(text, byteorder=sys.byteorder):
    """8 or 32 hex digits of host-order u32 words -> address text (compressed), or None.

    Cached: a router's sockets use a handful of addresses, and ipaddress is the costly part of
    a poll on a router CPU (512 entries of at most 32 hex digits)."""
    if len(text) not in (8, 32):
        return None
    try:
        packed = b"".join(int(text[i:i + 8], 16).to_bytes(4, byteorder)
                          for i in range(0, len(text), 8))
    except ValueError:
        return None
    return str(ipaddress.ip_address(packed))


def parse_row(line, proto, byteorder=sys.byteorder):
    """One data row of /proc/net/<proto> -> SocketRow, or None (header and bad rows)."""
    if (proto not in PROTOCOLS and proto not in RAW_PROTOCOLS) or not isinstance(line, str) \
            or len(line) > 512:
        return None
    match = ROW_RE.match(line)
    if match is None:
        return None
    local, lport, remote, rport, state, uid, _timeout, inode = match.groups()
    width = 32 if proto.endswith("6") else 8
    if len(local) != width or len(remote) != width:
        return None
    if proto in RAW_PROTOCOLS and int(lport, 16) > 255:
        return None     # not an IP protocol number: not a raw socket's row
    return SocketRow(proto=proto, local_address=decode_address(local, byteorder),
                     local_port=int(lport, 16), remote_address=decode_address(remote, byteorder),
                     remote_port=int(rport, 16), state=int(state, 16), uid=int(uid),
                     inode=int(inode))


def is_listening(row):
    """TCP in LISTEN, or UDP bound without a peer."""
    if row.proto.startswith("tcp"):
        return row.state == TCP_LISTEN
    return row.state == UDP_UNCONNECTED and row.remote_port == 0

