"""Scenario 5: a Mirai-style bot.

Given a router where a dropper copied a program to /tmp, started it and deleted it from disk,
when that program SYN-scans TCP 23 (every tenth probe 2323) across a WAN network where nobody
answers, with raw sockets and the destination address as the TCP sequence number as Mirai's
scanner does, then the collector stores integrity.exec_from_tmp and integrity.deleted_exe for
that process, conn.raw_socket for its raw TCP socket, and conn.scan for the router's unanswered
SYNs.
"""
import base64
import time

import pytest

from router_harness import netns

pytestmark = pytest.mark.router_arches("x86_64", "mipsel")

BOT = "/tmp/.mirai.bin"
SCANNER = r'''
import random, socket, struct, time
def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
src = socket.inet_aton("@SRC@")
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
sport = random.randint(1024, 65535)
n = 0
while True:
    for host in range(129, 255):
        dst = "203.0.113.%d" % host
        d = socket.inet_aton(dst)
        dport = 2323 if n % 10 == 9 else 23
        n += 1
        seq = struct.unpack("!I", d)[0]
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 14600, 0, 0)
        check = csum(src + d + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
        tcp = tcp[:16] + struct.pack("!H", check) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, random.randint(0, 65535), 0, 64, 6, 0,
                         src, d)
        raw.sendto(ip + tcp, (dst, 0))
        time.sleep(0.05)
'''.replace("@SRC@", netns.ROUTER_WAN)


def test_mirai_style_scanner_from_a_deleted_tmp_binary_is_reported(bench):
    code = base64.b64encode(SCANNER.encode()).decode()
    bench.vm.out("cp /usr/bin/python3.11 %s && chmod 755 %s" % (BOT, BOT))
    started = time.time()
    pid = bench.vm.spawn("PYTHONHOME=/usr exec %s -c \"import base64; exec(base64.b64decode("
                         "'%s'))\"" % (BOT, code), log="/tmp/.mirai.log")
    try:
        time.sleep(1)
        bench.vm.out("rm -f %s" % BOT)
        exe = bench.vm.out("readlink /proc/%d/exe" % pid).strip()
        assert exe == BOT + " (deleted)", exe
        unreplied = bench.vm.wait_for(
            "grep -c 'SYN_SENT.*dport=23 .*UNREPLIED' /proc/net/nf_conntrack | "
            "awk '$1 >= 5 {print; ok=1} END {exit !ok}'", timeout=30)
        assert int(unreplied) >= 5
        scan = bench.wait_anomaly("conn.scan", since=started, timeout=90)
        assert scan.severity == "critical", scan.summary
        assert scan.evidence["login_port_addresses"] >= 5
        bench.record("mirai_scanner", "conn.scan", started, scan)
        raw = bench.wait_anomaly("conn.raw_socket", since=started,
                                 match=lambda a: pid in a.evidence.get("pids", ()), timeout=90)
        assert raw.severity == "critical" and raw.evidence["protocol"] == 6
        assert raw.evidence["exe"].startswith(BOT)
        bench.record("mirai_scanner", "conn.raw_socket", started, raw)
        from_tmp = bench.wait_anomaly("integrity.exec_from_tmp", since=started,
                                      match=lambda a: a.evidence.get("pid") == pid, timeout=90)
        assert from_tmp.evidence["exe"].startswith(BOT)
        bench.record("mirai_scanner", "integrity.exec_from_tmp", started, from_tmp)
        deleted = bench.wait_anomaly("integrity.deleted_exe", since=started,
                                     match=lambda a: a.evidence.get("pid") == pid, timeout=90)
        assert deleted.severity == "critical"
        assert deleted.evidence["exe"].startswith(BOT)
        bench.record("mirai_scanner", "integrity.deleted_exe", started, deleted)
    finally:
        bench.vm.sh("kill %d" % pid)
