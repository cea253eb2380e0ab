"""What the conn.* detectors share: reading their list options and sorting destinations.

Not a detector (not in DETECTOR_MODULES).
"""
import ipaddress
import logging

from ..parsers.address_list import parse_address_list

log = logging.getLogger("routerwatch")

def same_link(peer, local):
    """Peer inside the /64 of one of the router's IPv6 addresses: a LAN client with a global
    address (IPv6 is routed, not NATed, so its address looks as global as any outside host)."""
    try:
        a, b = ipaddress.ip_address(peer), ipaddress.ip_address(local)
    except ValueError:
        return False
    return a.version == b.version == 6 and a.packed[:8] == b.packed[:8]


def parse_ports(text, option_name, highest=65535, what="a port number"):
    """'23, 2323' -> frozenset({23, 2323}); bad items are logged and left out. With
    highest=255 and what="an IP protocol number" it reads protocol lists the same way."""
    ports = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item.isdigit() and 0 < int(item) <= highest:
            ports.add(int(item))
        else:
            log.warning("%s: ignoring %r (not %s)", option_name, item[:32], what)
    return frozenset(ports)


def parse_services(text, option_name):
    """'udp/53, tcp/853' -> frozenset({('udp', 53), ('tcp', 853)}); bad items logged, left out."""
    services = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        proto, _, port = item.partition("/")
        if proto in ("tcp", "udp", "sctp") and port.isdigit() and 0 < int(port) <= 65535:
            services.add((proto, int(port)))
        else:
            log.warning("%s: ignoring %r (want proto/port, e.g. udp/53)", option_name, item[:32])
    return frozenset(services)


def normalised_addresses(text, option_name):
    """'198.51.100.7, 2001:DB8::1' -> {'198.51.100.7', '2001:db8::1'}; bad items logged."""
    good, bad = parse_address_list(text)
    for item in bad:
        log.warning("%s: ignoring %r (not an IP address)", option_name, item[:64])
    return {str(address) for address in good}


# RAM directories: a program started from one is not part of the firmware or a package
# (OpenWrt's /var is a link to /tmp)
TEMP_DIRS = "/tmp/,/dev/shm/,/var/run/,/var/tmp/"
TEMP_DIRS_WHY = ("a program started from these RAM directories is not part of the firmware or "
                 "a package (OpenWrt's /var is /tmp)")


def untrusted_location(exe, temp_dirs):
    """'a deleted file' or 'a RAM directory' when /proc/<pid>/exe (as the kernel gives it) says
    the program is not an installed file, else None."""
    if not exe:
        return None
    if exe.endswith(" (deleted)"):
        return "a deleted file"
    if exe.startswith(temp_dirs):
        return "a RAM directory"
    return None


def parse_words(text):
    return frozenset(item.strip() for item in text.split(",") if item.strip())


def endpoint(address, port):
    """'198.51.100.7:443' or '[2001:db8::1]:443' (no port for icmp)."""
    if port is None:
        return address
    return "[%s]:%d" % (address, port) if ":" in address else "%s:%d" % (address, port)
