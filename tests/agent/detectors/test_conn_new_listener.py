"""conn.new_listener: baseline on the first scan, except what needs no history."""
from connfixtures import PROC_FIXTURES, agent_config, listeners, listening

from routerwatch.detectors.conn_new_listener import Config, ConnNewListener
from routerwatch.sources.sockets import ListenerSource


def detector(**options):
    return ConnNewListener(Config(**options))


def scan(root):
    return ListenerSource(agent_config(root), byteorder="little").poll(100.0)[0]


HEALTHY = (listening(22, process="dropbear", exe="/usr/sbin/dropbear"),
           listening(80, process="uhttpd", exe="/usr/sbin/uhttpd"),
           listening(53, "udp", "192.168.1.1", process="dnsmasq"))


def test_healthy_router_first_scan_is_quiet():
    assert detector().observe(scan(PROC_FIXTURES / "healthy")) == []


def test_quad7_backdoor_from_tmp_is_critical_on_the_first_scan():
    findings = detector().observe(scan(PROC_FIXTURES / "socks_relay"))
    assert [(f.evidence["port"], f.severity) for f in findings] == [(7777, "critical"),
                                                                    (11288, "critical")]
    first = findings[0]
    assert first.evidence["process"] == "xlogin" and first.evidence["exe"] == "/tmp/xlogin"
    assert first.evidence["first_scan"] is True
    assert "known backdoor port" in first.evidence["reasons"]
    assert first.incident == "tcp/7777" and first.time == 100.0


def test_backdoor_port_with_unknown_owner_is_still_high():
    (finding,) = detector().observe(listeners(1.0, *HEALTHY, listening(11288)))
    assert finding.severity == "high" and finding.evidence["process"] is None


def test_port_23_held_by_a_deleted_binary_is_critical_and_by_telnetd_quiet():
    (finding,) = detector().observe(scan(PROC_FIXTURES / "mirai"))
    assert (finding.evidence["port"], finding.severity) == (23, "critical")
    assert "telnet port held by dvrHelper" in finding.evidence["reasons"]
    assert detector().observe(listeners(1.0, listening(23, process="telnetd",
                                                       exe="/usr/sbin/telnetd"))) == []
    (unknown,) = detector().observe(listeners(1.0, listening(23)))
    assert unknown.severity == "medium"


def test_after_the_baseline_a_new_tcp_port_is_medium_and_reported_once():
    watch = detector()
    assert watch.observe(listeners(1.0, *HEALTHY)) == []
    new = listening(4444, process="nc", exe="/usr/bin/nc")
    (finding,) = watch.observe(listeners(401.0, *HEALTHY, new))
    assert (finding.severity, finding.evidence["reasons"]) == ("medium", ["new port"])
    assert finding.evidence["first_scan"] is False
    assert watch.observe(listeners(411.0, *HEALTHY, new)) == []


def test_new_udp_in_the_ephemeral_range_is_a_client_socket_not_a_service():
    watch = detector()
    watch.observe(listeners(1.0, *HEALTHY))
    assert watch.observe(listeners(401.0, *HEALTHY, listening(45123, "udp", process="dnsmasq"))) == []
    (finding,) = watch.observe(listeners(411.0, *HEALTHY, listening(1900, "udp", process="miniupnpd")))
    assert finding.severity == "low"


def test_new_loopback_only_listener_is_low():
    watch = detector()
    watch.observe(listeners(1.0, *HEALTHY))
    (finding,) = watch.observe(listeners(401.0, *HEALTHY, listening(8080, address="127.0.0.1")))
    assert finding.severity == "low"


def test_new_ipv6_address_on_a_known_port_is_not_new():
    watch = detector()
    watch.observe(listeners(1.0, *HEALTHY))
    renumbered = listening(53, "udp6", "2001:db8:1:200::1", process="dnsmasq")
    assert watch.observe(listeners(401.0, *HEALTHY, renumbered)) == []


def test_known_port_taken_over_by_another_program_is_high():
    watch = detector()
    watch.observe(listeners(1.0, *HEALTHY))
    hijacked = (listening(22, process="dvrHelper", exe="/usr/bin/dvrHelper"),) + HEALTHY[1:]
    (finding,) = watch.observe(listeners(401.0, *hijacked))
    assert finding.severity == "high"
    assert finding.evidence["reasons"] == ["owner changed from dropbear to dvrHelper"]


def test_a_listener_from_tmp_on_any_port_is_critical_even_in_the_baseline():
    (finding,) = detector().observe(listeners(1.0, listening(8888, exe="/tmp/.x/bot",
                                                            process="bot")))
    assert finding.severity == "critical"


def test_backdoor_list_is_configurable():
    watch = detector(backdoor_ports="9999")
    assert watch.observe(listeners(1.0, listening(7777))) == []
    assert watch.observe(listeners(2.0, listening(9999)))[0].severity == "high"


def test_baseline_is_bounded_and_evictions_counted():
    watch = detector(max_baseline=16)
    watch.observe(listeners(1.0, *(listening(1000 + i) for i in range(20))))
    assert watch.drops() == {"conn.new_listener.baseline": 4}


def test_services_still_starting_after_the_first_scan_join_the_baseline():
    watch = detector()                                # baseline_seconds 300
    watch.observe(listeners(1.0, HEALTHY[0]))         # the agent came up before uhttpd
    assert watch.observe(listeners(61.0, *HEALTHY)) == []
    # ... but a backdoor port is judged even then
    (finding,) = watch.observe(listeners(71.0, *HEALTHY, listening(7777)))
    assert finding.evidence["port"] == 7777
    (late,) = watch.observe(listeners(401.0, *HEALTHY, listening(4444)))
    assert late.evidence["reasons"] == ["new port"]


def test_two_programs_sharing_a_port_do_not_flap_as_owner_changes():
    watch = detector()
    shared = (listening(53, "udp", "192.168.1.1", process="dnsmasq"),
              listening(53, "udp", "127.0.0.2", process="unbound"))
    watch.observe(listeners(1.0, *shared))
    assert watch.observe(listeners(401.0, *reversed(shared))) == []
    assert watch.observe(listeners(411.0, shared[1])) == []


def test_dnsmasq_random_query_ports_and_unknown_udp_owners_are_not_new_services():
    watch = detector()
    watch.observe(listeners(1.0, *HEALTHY))
    query_port = listening(5123, "udp", process="dnsmasq")     # --min-port defaults to 1024
    assert watch.observe(listeners(401.0, *HEALTHY, query_port)) == []
    assert watch.observe(listeners(411.0, *HEALTHY, listening(6000, "udp"))) == []
    (finding,) = watch.observe(listeners(421.0, *HEALTHY, listening(6001, "udp", process="evil")))
    assert finding.severity == "low" and finding.evidence["process"] == "evil"
