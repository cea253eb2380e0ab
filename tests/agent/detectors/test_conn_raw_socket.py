"""conn.raw_socket: raw TCP/UDP/IP sockets are a scanner's or flooder's; a router's are ICMP."""
from connfixtures import PROC_FIXTURES, agent_config, raw_socket, raw_sockets

from routerwatch.detectors.conn_raw_socket import Config, ConnRawSocket
from routerwatch.sources.sockets import ListenerSource


def detector(**options):
    return ConnRawSocket(Config(**options))


def scan(root):
    return ListenerSource(agent_config(root), byteorder="little").poll(100.0)[0]


def test_a_healthy_routers_icmp_and_icmpv6_raw_sockets_are_quiet():
    snapshot = scan(PROC_FIXTURES / "healthy")
    assert len(snapshot.raw_sockets) == 2
    assert detector().observe(snapshot) == []


def test_mirai_scanner_raw_tcp_socket_from_a_deleted_file_is_critical():
    (finding,) = detector().observe(scan(PROC_FIXTURES / "mirai"))
    assert finding.kind == "conn.raw_socket" and finding.severity == "critical"
    assert finding.evidence["protocol"] == 6 and finding.evidence["protocol_name"] == "tcp"
    assert (finding.evidence["pid"], finding.evidence["process"]) == (3333, "dvrHelper")
    assert finding.evidence["reasons"] == ["crafts its own tcp packets",
                                           "holder runs from a deleted file"]
    assert finding.incident == "dvrHelper/6" and finding.time == 100.0


def test_raw_tcp_udp_and_ip_sockets_of_an_installed_program_are_high():
    findings = detector().observe(raw_sockets(
        5.0, raw_socket(6, process="scand", exe="/usr/bin/scand", pid=10),
        raw_socket(17, "raw6", process="flood", exe="/usr/bin/flood", pid=11),
        raw_socket(255, process="flood", exe="/usr/bin/flood", pid=11, inode=2)))
    assert [(f.evidence["process"], f.evidence["protocol"], f.severity) for f in findings] == [
        ("flood", 17, "high"), ("flood", 255, "high"), ("scand", 6, "high")]


def test_an_icmp_raw_socket_is_reported_only_when_its_holder_runs_from_tmp():
    assert detector().observe(raw_sockets(1.0, raw_socket(1, process="ping",
                                                          exe="/bin/busybox"))) == []
    (finding,) = detector().observe(raw_sockets(1.0, raw_socket(1, process="x",
                                                                exe="/tmp/.x")))
    assert finding.severity == "critical"
    assert finding.evidence["reasons"] == ["holder runs from a RAM directory"]


def test_allowed_programs_are_exempt_unless_they_run_from_tmp():
    watch = detector(allowed_programs="nmap")
    assert watch.observe(raw_sockets(1.0, raw_socket(6, process="nmap",
                                                     exe="/usr/bin/nmap"))) == []
    (finding,) = watch.observe(raw_sockets(1.0, raw_socket(6, process="nmap",
                                                           exe="/tmp/nmap (deleted)")))
    assert finding.evidence["reasons"] == ["holder runs from a deleted file"]


def test_sockets_of_one_holder_and_protocol_are_one_finding_with_their_pids():
    (finding,) = detector().observe(raw_sockets(
        1.0, *(raw_socket(6, process="bot", pid=pid, inode=pid) for pid in range(100, 140))))
    assert finding.evidence["sockets"] == 40 and len(finding.evidence["pids"]) == 16
    assert finding.evidence["exe"] is None and "an unknown process" not in finding.summary


def test_a_holder_whose_owner_is_unknown_is_named_by_inode():
    (finding,) = detector().observe(raw_sockets(1.0, raw_socket(6, inode=4711)))
    assert finding.incident == "inode 4711/6" and "an unknown process" in finding.summary


def test_protocol_list_ignores_what_is_not_a_protocol_number(caplog):
    watch = detector(packet_protocols="6, 300, udp")
    assert watch.packet_protocols == frozenset({6})
    assert "not an IP protocol number" in caplog.text
