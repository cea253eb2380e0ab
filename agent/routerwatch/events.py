"""Plain data passed from sources (and parsers) to detectors.

Events are frozen dataclasses with slots: a 64k-entry conntrack table becomes 64k small objects,
so no per-instance __dict__. Times are seconds since the epoch, passed along as data.
"""
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple


# --------------------------------------------------------------------------- logins

class LoginAttempt(NamedTuple):
    """One authentication outcome seen in the log (dropbear or LuCI).

    A NamedTuple rather than a frozen dataclass: under attack one is made per login line, and a
    frozen dataclass costs ten times as much to build (a setattr call per field). It is as
    immutable, and compares and reads the same."""
    time: float
    service: str                 # "ssh" (dropbear) | "luci"
    outcome: str                 # "failure" | "success"
    method: str                  # "password" | "pubkey" | "unknown_user" | "max_tries" | ...
    user: Optional[str]          # None when the log does not name it; clipped, attacker-chosen
    source_ip: Optional[str]     # normalised (ipaddress) text, None when unknown
    source_port: Optional[int]
    pid: Optional[int] = None
    attempts: int = 1            # failures this one line stands for ("Exit before auth ... N fails")


# --------------------------------------------------------------------------- the router's side

@dataclass(frozen=True, slots=True)
class LanNetworks:
    """The networks of the router's LAN side (CIDR text), read from its routes: with the fixed
    private ranges they make the owner's side (inside.py)."""
    time: float
    networks: Tuple[str, ...]


# --------------------------------------------------------------------------- connections

ORIGIN_ROUTER = "router"        # original source is one of the router's own addresses (OUTPUT)
ORIGIN_INBOUND = "inbound"      # to the router itself (INPUT)
ORIGIN_FORWARDED = "forwarded"  # LAN <-> WAN through the router (FORWARD, incl. NAT)


@dataclass(frozen=True, slots=True)
class Flow:
    """One conntrack entry, original direction, classified by who originated it."""
    proto: str                   # tcp | udp | icmp | icmpv6 | gre | sctp | unknown
    state: Optional[str]         # TCP state or None
    src: str
    dst: str
    sport: Optional[int]
    dport: Optional[int]
    reply_src: str
    reply_dst: str
    unreplied: bool
    assured: bool
    origin: str                  # ORIGIN_*
    age: Optional[int] = None    # seconds since the flow started (delta-time=), if the kernel says


@dataclass(frozen=True, slots=True)
class ConntrackSnapshot:
    """One read of /proc/net/nf_conntrack.

    Only router-originated and inbound flows are kept as Flow objects: forwarded LAN traffic never
    concerns the router's own behaviour, so it is only counted (keeps memory flat on busy routers).
    """
    time: float
    flows: Tuple[Flow, ...]
    entries: int                 # all entries in the table, forwarded included
    forwarded: int
    max_entries: Optional[int]   # nf_conntrack_max, None when unreadable
    unparsed: int = 0            # lines that did not parse (counted, never fatal)


@dataclass(frozen=True, slots=True)
class ListeningSocket:
    proto: str                   # tcp | tcp6 | udp | udp6
    address: str
    port: int
    inode: int
    pid: Optional[int] = None
    process: Optional[str] = None    # process name
    exe: Optional[str] = None


@dataclass(frozen=True, slots=True)
class RawSocket:
    """A SOCK_RAW socket (/proc/net/raw, raw6): its holder writes IP packets by hand."""
    proto: str                   # raw | raw6
    protocol: int                # the IP protocol it was opened for (6 TCP, 1 ICMP, 255 any)
    inode: int
    pid: Optional[int] = None
    process: Optional[str] = None
    exe: Optional[str] = None


@dataclass(frozen=True, slots=True)
class ListenerSnapshot:
    time: float
    sockets: Tuple[ListeningSocket, ...]
    raw_sockets: Tuple[RawSocket, ...] = ()


# --------------------------------------------------------------------------- processes

@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    ppid: Optional[int]
    name: str
    exe: Optional[str]           # path as the kernel reports it, without " (deleted)"
    exe_deleted: bool
    cmdline: str                 # clipped
    uid: Optional[int] = None
    parent_name: Optional[str] = None
    listening_ports: Tuple[int, ...] = ()
    exe_replaced: bool = False   # deleted, but a file of that name exists again (an upgrade?)


@dataclass(frozen=True, slots=True)
class ProcessSnapshot:
    time: float
    processes: Tuple[ProcessInfo, ...]


# --------------------------------------------------------------------------- firmware integrity

@dataclass(frozen=True, slots=True)
class FileFinding:
    """One observation of the integrity scan about one path (path as seen from the router's /)."""
    time: float
    finding: str                 # see sources/overlay.py: shadowed | whiteout | opaque |
                                 # special_file | new_executable | package_mismatch |
                                 # baseline_drift | flood
    path: str
    detail: dict                 # hashes, package name, sizes ... (JSON-able, bounded)
    first_scan: bool             # seen on the first scan after start (judged more gently)


@dataclass(frozen=True, slots=True)
class FirmwareIdentity:
    time: float
    release: dict                # /etc/openwrt_release keys
    board: str
    model: str
    kernel: str
    identity_hash: str           # sha256 hex over the above
    previous_hash: Optional[str] # what the state dir remembered, None on the first start
    baseline_hash: str = ""      # sha256 hex of the integrity baseline manifest
    package_manager: str = "none"  # apk | opkg | none
    rom_hash: str = ""           # sha256 hex over the /rom file list (path, size, mode, mtime)
    rom_packages_hash: str = ""  # sha256 hex of /rom's package database
    previous: Optional[dict] = None  # the remembered identity record (release, kernel, hashes)


# --------------------------------------------------------------------------- the agent itself

@dataclass(frozen=True, slots=True)
class SourceHealth:
    """Whether a watcher's source could read what it watches, sent by the runtime when that
    changes (and once at start): error None means the last read worked."""
    time: float
    watcher: str                 # logins | connections | processes | integrity
    source: str                  # the source's class name, e.g. ConntrackSource
    error: Optional[str]         # why the last read failed, e.g. "cannot read /proc/net/..."
    interval: float              # seconds between its reads; 0 for a stream (the log)
