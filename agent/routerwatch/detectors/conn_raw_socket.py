"""conn.raw_socket: a program holding a raw socket that writes TCP, UDP or whole IP packets.

A raw socket lets its holder put any header on the wire. Mirai's scanner opens
socket(AF_INET, SOCK_RAW, IPPROTO_TCP) to send SYNs it crafted itself (the destination address
as the sequence number), and its flood attacks open raw UDP and IPPROTO_RAW (255) sockets. A
router's own daemons open raw sockets only for protocols the kernel has no socket type for:
ICMP (ping, dnsmasq's address check), ICMPv6 (odhcpd, odhcp6c), IGMP (igmpproxy), VRRP
(keepalived), OSPF (bird). So, judged on every scan, no baseline needed:
  - a raw socket for a protocol in packet_protocols (default TCP, UDP, raw IP)     high
  - any raw socket whose holder runs from /tmp or a deleted file                   critical
Programs in allowed_programs (say nmap on a lab router) are exempt from the first rule only.
One incident per holding program and protocol, so a scanner that reopens its socket is one.
"""
from dataclasses import dataclass

from ..events import ListenerSnapshot
from ..options import option
from .base import Detector, DetectorConfig, Finding
from .connutil import TEMP_DIRS, TEMP_DIRS_WHY, parse_ports, parse_words, untrusted_location

PROTOCOL_NAMES = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 58: "icmpv6",
                  89: "ospf", 103: "pim", 112: "vrrp", 255: "raw"}
MAX_PIDS_IN_EVIDENCE = 16


@dataclass(frozen=True)
class Config(DetectorConfig):
    packet_protocols: str = option(
        "6,17,255", why="IP protocols whose raw sockets craft packets the kernel would build "
        "itself (6 TCP: SYN scanners; 17 UDP and 255 raw IP: floods); a router's daemons hold "
        "raw sockets only for ICMP, ICMPv6, IGMP, VRRP or routing protocols")
    allowed_programs: str = option(
        "", why="process names that may hold such sockets (e.g. nmap on a lab router); "
        "a holder running from a RAM directory or a deleted file is reported all the same")
    temp_dirs: str = option(TEMP_DIRS, why=TEMP_DIRS_WHY)


class ConnRawSocket(Detector):
    kind = "conn.raw_socket"
    Config = Config
    consumes = (ListenerSnapshot,)

    def __init__(self, config):
        super().__init__(config)
        self.packet_protocols = parse_ports(config.packet_protocols,
                                            "conn.raw_socket.packet_protocols", highest=255,
                                            what="an IP protocol number")
        self.allowed = parse_words(config.allowed_programs)
        self.temp_dirs = tuple(parse_words(config.temp_dirs))

    def observe(self, snapshot):
        holders = {}
        for sock in snapshot.raw_sockets:
            key = (sock.process or sock.exe or "inode %d" % sock.inode, sock.protocol)
            holders.setdefault(key, []).append(sock)
        findings = []
        for key, sockets in sorted(holders.items()):
            finding = self._judge(key, sockets, snapshot.time)
            if finding is not None:
                findings.append(finding)
        return findings

    def _judge(self, key, sockets, now):
        holder, protocol = key
        first = next((s for s in sockets if s.exe), sockets[0])
        process, exe = first.process, first.exe
        reasons, severity = [], None
        if protocol in self.packet_protocols and process not in self.allowed:
            reasons.append("crafts its own %s packets" % _protocol_name(protocol))
            severity = "high"
        location = untrusted_location(exe, self.temp_dirs)
        if location:
            reasons.append("holder runs from %s" % location)
            severity = "critical"
        if severity is None:
            return None
        who = process or "an unknown process"
        if exe:
            who = "%s (%s)" % (who, exe)
        pids = sorted({s.pid for s in sockets if s.pid is not None})[:MAX_PIDS_IN_EVIDENCE]
        return Finding(
            kind=self.kind, severity=severity,
            summary="%s holds a raw %s socket (%s)" % (who, _protocol_name(protocol),
                                                     "; ".join(reasons)),
            evidence={"protocol": protocol, "protocol_name": _protocol_name(protocol),
                      "families": sorted({s.proto for s in sockets}), "sockets": len(sockets),
                      "pid": first.pid, "pids": pids, "process": process, "exe": exe,
                      "reasons": reasons},
            incident="%s/%d" % (holder, protocol), time=now)


def _protocol_name(number):
    return PROTOCOL_NAMES.get(number, "protocol %d" % number)


DETECTOR = ConnRawSocket
