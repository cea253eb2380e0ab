"""ConntrackSource: one read of <root>/proc/net/nf_conntrack per interval -> ConntrackSnapshot.

Each entry is sorted by who originated it (reference: openwrt-formats.md 2.4):
  router     the original source is one of the router's own addresses (OUTPUT)
  inbound    the original destination is the router's and the reply comes from that same address
             (INPUT, no DNAT), or the reply comes from the router after a DNAT (a REDIRECT: the
             connection ends on the router even though it was addressed elsewhere)
  forwarded  everything else: masqueraded LAN traffic (reply.dst != orig.src), port forwards
             (reply.src != orig.dst, an internal host), routed IPv6

A busy router's table is almost all forwarded traffic and can hold 64k entries, so forwarded lines
are recognised from three raw address fields (no tokenising, no ipaddress) and only counted; full
parsing is spent on the few lines that touch the router's own addresses. Entries between two of
the router's own addresses (loopback chatter) say nothing about the outside and are only counted.
"""
import os

from ..events import ORIGIN_FORWARDED, ORIGIN_INBOUND, ORIGIN_ROUTER, ConntrackSnapshot, Flow
from ..parsers.conntrack import MAX_LINE_CHARS, parse_line, raw_addresses
from .netaddrs import RouterAddressReader


def classify(entry, own):
    """ORIGIN_* for a parsed entry, given the router's addresses; None for router-to-itself."""
    src_local = own.contains(entry.src)
    dst_local = own.contains(entry.dst)
    if src_local:
        return None if dst_local else ORIGIN_ROUTER
    if dst_local and entry.reply_src == entry.dst:
        return ORIGIN_INBOUND
    if own.contains(entry.reply_src):
        return ORIGIN_INBOUND          # DNAT to the router itself (fw4 redirect)
    return ORIGIN_FORWARDED


def read_int(path):
    try:
        with open(path, "rb") as handle:
            text = handle.read(32).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class ConntrackSource:
    def __init__(self, config):
        self.interval = config.intervals.connections
        self.max_flows = config.connections.max_flows
        self.root = config.root
        self.path = os.path.join(config.root, "proc", "net", "nf_conntrack")
        netfilter = os.path.join(config.root, "proc", "sys", "net", "netfilter")
        self.count_path = os.path.join(netfilter, "nf_conntrack_count")
        self.max_path = os.path.join(netfilter, "nf_conntrack_max")
        self.addresses = RouterAddressReader(config.root, config.router_addresses)
        self._polls = 0
        self._unparsed = 0
        self._unreadable = 0
        self._entries = 0
        self._flows_dropped = 0
        self.failure = None       # why the last read of the table failed (agent.degraded)

    def poll(self, now):
        self._polls += 1
        own = self.addresses.read()
        max_entries = read_int(self.max_path)
        flows = []
        entries = forwarded = unparsed = 0
        try:
            handle = open(self.path, "r", encoding="ascii", errors="replace")
        except OSError as exc:
            # no conntrack module, or not root: the kernel's counter still tells the fill level
            self._unreadable += 1
            self.failure = "cannot read /proc/net/nf_conntrack: %s" % (exc.strerror or exc)
            count = read_int(self.count_path)
            self._entries = count or 0
            return [ConntrackSnapshot(time=now, flows=(), entries=count or 0, forwarded=0,
                                      max_entries=max_entries)]
        self.failure = None
        spellings = own.raw_spellings()
        max_flows = self.max_flows
        with handle:
            for line in handle:    # the kernel's seq_file: one entry per line, read streaming
                entries += 1
                raw = raw_addresses(line)
                if raw is None:
                    unparsed += 1
                    continue
                src, dst, reply_src = raw
                if src not in spellings and dst not in spellings and reply_src not in spellings:
                    forwarded += 1
                    continue
                if len(flows) >= max_flows:
                    # a table full of the router's own entries (a flood): stop parsing, count
                    # (the odd port forward among these lines is counted here too)
                    self._flows_dropped += 1
                    continue
                entry = parse_line(line) if len(line) <= MAX_LINE_CHARS else None
                if entry is None:
                    unparsed += 1
                    continue
                origin = classify(entry, own)
                if origin == ORIGIN_FORWARDED:
                    forwarded += 1
                    continue
                if origin is None:
                    continue
                flows.append(Flow(proto=entry.proto, state=entry.state, src=entry.src,
                                  dst=entry.dst, sport=entry.sport, dport=entry.dport,
                                  reply_src=entry.reply_src, reply_dst=entry.reply_dst,
                                  unreplied=entry.unreplied, assured=entry.assured,
                                  origin=origin, age=entry.age))
        self._unparsed += unparsed
        self._entries = entries
        return [ConntrackSnapshot(time=now, flows=tuple(flows), entries=entries,
                                  forwarded=forwarded, max_entries=max_entries,
                                  unparsed=unparsed)]

    def counters(self):
        return {"conntrack_polls": self._polls, "conntrack_entries": self._entries,
                "conntrack_unparsed": self._unparsed, "conntrack_unreadable": self._unreadable}

    def drops(self):
        return {"conntrack_flows": self._flows_dropped}

    def close(self):
        pass
