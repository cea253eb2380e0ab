"""conn.new_listener: a listening port the router did not have, or one that needs no history.

The first ListenerSnapshot after start is the baseline: whatever listens then, or within
baseline_seconds after it (services still starting when the agent starts at boot), is this
router's normal and is quiet. Judged from the first scan on, because no history is needed to know they are
wrong:
  - a known backdoor port (Quad7/CovertNetwork-1658: xlogin shell on 7777, SOCKS5 on 11288;
    alogin on 63256)                                                     high
  - a telnet port held by something that is not telnetd (Mirai's killer takes 23 over)  high
  - a listener owned by a process running from /tmp or deleted from disk          critical
After the baseline: a new TCP listening port (medium), a new port bound to loopback only (low),
a baseline port held by a program never seen on it (high: dropbear or uhttpd gone and another
program holding 22/80), and a new UDP port (low) only when a program that was not listening
before holds it outside the ephemeral range. An unconnected UDP socket is also what a client
looks like: dnsmasq binds a random port (1024-65535) for each upstream query and the musl
resolver of any program an ephemeral one, so UDP ports of already-listening programs, of
unknown owners and in the ephemeral range are not new services.

Listeners are keyed by protocol and port, not address: a new IPv6 prefix from the ISP makes
dnsmasq bind port 53 on a new address, which is not a new service.
"""
from dataclasses import dataclass

from ..bounded import BoundedDict
from ..events import ListenerSnapshot
from ..options import option
from .base import Detector, DetectorConfig, Finding
from .connutil import TEMP_DIRS, TEMP_DIRS_WHY, parse_ports, parse_words, untrusted_location

SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
MAX_ADDRESSES_IN_EVIDENCE = 8


@dataclass(frozen=True)
class Config(DetectorConfig):
    backdoor_ports: str = option(
        "7777,11288,63256", why="ports of known router backdoors (xlogin shell 7777, its SOCKS5 "
        "11288, alogin 63256): judged from the first scan, baseline or not")
    telnet_ports: str = option(
        "23,2323", why="telnet ports: a listener there that is not telnetd is a bot's or a "
        "backdoor's shell; judged from the first scan")
    telnet_daemons: str = option(
        "telnetd", why="process names allowed to listen on the telnet ports (busybox's applet "
        "runs as 'telnetd'; 'busybox telnetd -l /bin/sh' shows as 'busybox' and is reported)")
    temp_dirs: str = option(TEMP_DIRS, why=TEMP_DIRS_WHY)
    ephemeral_low: int = option(
        32768, 1, 65535, "new UDP ports from here to ephemeral_high are client sockets "
        "(the resolver of any program asking DNS), not services: not reported")
    ephemeral_high: int = option(60999, 1, 65535, "upper end of the ephemeral range "
                                 "(the kernel's ip_local_port_range)")
    baseline_seconds: int = option(
        300, 0, 86400, "ports that open this long after the first scan still join the baseline: "
        "at boot the agent may start before the services it would otherwise call new")
    max_baseline: int = option(4096, 16, 1000000,
                               "listening ports remembered; beyond this the oldest are forgotten")


class ConnNewListener(Detector):
    kind = "conn.new_listener"
    Config = Config
    consumes = (ListenerSnapshot,)

    def __init__(self, config):
        super().__init__(config)
        self.backdoor_ports = parse_ports(config.backdoor_ports, "conn.new_listener.backdoor_ports")
        self.telnet_ports = parse_ports(config.telnet_ports, "conn.new_listener.telnet_ports")
        self.telnet_daemons = parse_words(config.telnet_daemons)
        self.temp_dirs = tuple(parse_words(config.temp_dirs))
        self._scanned = False
        self._baseline_until = None
        self._programs = BoundedDict(config.max_baseline)   # names of programs seen listening
        # (proto, port) -> names of the programs seen holding it
        self._baseline = BoundedDict(config.max_baseline)

    def observe(self, snapshot):
        first_scan = not self._scanned
        if first_scan:
            self._baseline_until = snapshot.time + self.config.baseline_seconds
        settling = snapshot.time < self._baseline_until
        groups = {}
        for sock in snapshot.sockets:
            if sock.port == 0:
                continue
            key = ("tcp" if sock.proto.startswith("tcp") else "udp", sock.port)
            groups.setdefault(key, []).append(sock)
        findings = []
        for key, sockets in sorted(groups.items()):
            finding = self._judge(key, sockets, first_scan, settling, snapshot.time)
            if finding is not None:
                findings.append(finding)
            owners = frozenset(s.process for s in sockets if s.process)
            self._baseline.set(key, self._baseline.get(key, frozenset()) | owners)
            for name in owners:
                self._programs.set(name, True)
        self._scanned = True
        return findings

    def _judge(self, key, sockets, first_scan, settling, now):
        proto, port = key
        owner_sock = next((s for s in sockets if s.process or s.exe), sockets[0])
        process, exe = owner_sock.process, owner_sock.exe
        reasons = []
        severity = None

        def raise_to(level, reason):
            nonlocal severity
            reasons.append(reason)
            if severity is None or SEVERITY_RANK[level] > SEVERITY_RANK[severity]:
                severity = level

        location = untrusted_location(exe, self.temp_dirs)
        if location:
            raise_to("critical", "owner runs from %s" % location)
        if port in self.backdoor_ports and proto == "tcp":
            raise_to("high", "known backdoor port")
        if port in self.telnet_ports and proto == "tcp":
            if process is None:
                raise_to("medium", "telnet port, owner unknown")
            elif process not in self.telnet_daemons:
                raise_to("high", "telnet port held by %s" % process)
        if not first_scan and key not in self._baseline:
            if not settling:
                loopback_only = all(_is_loopback(s.address) for s in sockets)
                if loopback_only:
                    raise_to("low", "new port, loopback only")
                elif proto == "tcp":
                    raise_to("medium", "new port")
                elif (process is not None and process not in self._programs and not
                      self.config.ephemeral_low <= port <= self.config.ephemeral_high):
                    raise_to("low", "new port")
        elif not first_scan:
            before = self._baseline.get(key)
            owners = sorted({s.process for s in sockets if s.process} - before)
            if before and owners:
                raise_to("high", "owner changed from %s to %s" % (
                    ", ".join(sorted(before)), ", ".join(owners)))
        if severity is None:
            return None
        addresses = sorted({s.address for s in sockets})[:MAX_ADDRESSES_IN_EVIDENCE]
        who = process or "an unknown process"
        if exe:
            who = "%s (%s)" % (who, exe)
        return Finding(
            kind=self.kind, severity=severity,
            summary="port %d/%s is listening (%s), owned by %s" % (
                port, proto, "; ".join(reasons), who),
            evidence={"port": port, "proto": proto,
                      "sockets": sorted({s.proto for s in sockets}), "addresses": addresses,
                      "pid": owner_sock.pid, "process": process, "exe": exe,
                      "reasons": reasons, "first_scan": first_scan},
            incident="%s/%d" % (proto, port), time=now)

    def drops(self):
        return {"conn.new_listener.baseline": self._baseline.evicted}


def _is_loopback(address):
    return address.startswith("127.") or address == "::1"


DETECTOR = ConnNewListener
