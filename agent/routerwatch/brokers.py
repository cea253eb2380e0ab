"""The broker list of mqtt.host: "host", "host:port" or several of them separated by commas
("node1,node2:1884,[fd00::1]:8883"), the nodes of a broker cluster. UCI's `list host` arrives
here joined by commas (the init script joins every list so).

A port written beside a host is that node's; the others use mqtt.port. Parsed strictly: an
empty entry, a port outside 1-65535, a host with spaces or control characters, an IPv6
address with a port but without brackets, or more than MAX_BROKERS nodes is refused with a
message naming the entry.
"""
import re

MAX_BROKERS = 16           # an agent lists a cluster's nodes, not a fleet of brokers
MAX_HOST_CHARS = 253       # a DNS name's length

_NAME_RE = re.compile(r"\A[A-Za-z0-9_.-]+\Z")
_IPV6_RE = re.compile(r"\A[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?\Z")


def parse_brokers(text, default_port):
    """((host, port), ...) in the order given; ValueError with a message for people."""
    entries = [entry.strip() for entry in text.split(",")]
    if len(entries) > MAX_BROKERS:
        raise ValueError("at most %d brokers, got %d" % (MAX_BROKERS, len(entries)))
    brokers = []
    for entry in entries:
        broker = _parse_entry(entry, default_port)
        if broker not in brokers:       # the same node twice would only slow a failover
            brokers.append(broker)
    return tuple(brokers)


def _parse_entry(entry, default_port):
    if not entry:
        raise ValueError("an empty broker entry (two commas, or one at an end)")
    shown = entry if len(entry) <= 80 else entry[:77] + "..."
    if entry.startswith("["):                       # [v6] or [v6]:port
        close = entry.find("]")
        host, rest = entry[1:close], entry[close + 1:] if close > 0 else ""
        if close < 0 or not _IPV6_RE.match(host) or ":" not in host:
            raise ValueError("broker %r: a bracketed address must be an IPv6 address" % shown)
        if rest and not rest.startswith(":"):
            raise ValueError("broker %r: only ':port' may follow ']'" % shown)
        port_text = rest[1:] if rest else None
    elif entry.count(":") > 1:                      # a bare IPv6 address, no port
        host, port_text = entry, None
        if not _IPV6_RE.match(host):
            raise ValueError("broker %r is not a host name or an IPv6 address" % shown)
    else:
        host, _, port_text = entry.partition(":")
        if not _NAME_RE.match(host) or len(host) > MAX_HOST_CHARS:
            raise ValueError("broker %r: the host must be a name or address of A-Z a-z 0-9 . - _"
                             " (at most %d characters)" % (shown, MAX_HOST_CHARS))
        if port_text == "" and entry.endswith(":"):
            raise ValueError("broker %r: a port must follow ':'" % shown)
        port_text = port_text or None
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not port_text.isascii() or not 1 <= int(port_text) <= 65535:
        raise ValueError("broker %r: the port must be 1-65535" % shown)
    return host, int(port_text)
