"""/proc/net/tcp, tcp6, udp, udp6, raw, raw6 rows (openwrt-formats.md 2.3), written by little-
and big-endian routers."""
import pytest
from hypothesis import given, settings, strategies as st

from routerwatch.parsers.proc_net import decode_address, is_listening, parse_row

# CAPTURED on x86 (little-endian), reference 2.3
TCP_7777_LE = ("   0: 020200C0:1E61 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 "
               "       0 15436 1 00000000e853afb7 100 0 0 10 0").ljust(149) + "\n"
UDP_5353_LE = (" 6751: 0100007F:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0 "
               "       0 15434 2 00000000737c4485 0")
# The same sockets as a big-endian MIPS router (ath79, lantiq) prints them: the host-order u32
# of a network-order address is the address itself there.
TCP_7777_BE = TCP_7777_LE.replace("020200C0:1E61", "C0000202:1E61")
UDP_5353_BE = UDP_5353_LE.replace("0100007F:14E9", "7F000001:14E9")
# CAPTURED on x86 (Linux 6.18): socket(AF_INET, SOCK_RAW, IPPROTO_TCP) and
# socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6); sl is the protocol's hash bucket
RAW_TCP_LE = ("  89: 00000000:0006 00000000:0000 07 00000000:00000000 00:00000000 00000000     0 "
              "       0 366907 2 00000000ef8c20e1 0\n")
RAW6_ICMPV6 = (" 239: 00000000000000000000000000000000:003A 00000000000000000000000000000000:0000 07 "
               "00000000:00000000 00:00000000 00000000     0        0 366908 2 00000000db5b4678 0\n")
HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
          "timeout inode")


@pytest.mark.parametrize("row,byteorder", [(TCP_7777_LE, "little"), (TCP_7777_BE, "big")])
def test_tcp_listener_on_7777_decodes_on_both_byte_orders(row, byteorder):
    sock = parse_row(row, "tcp", byteorder)
    assert (sock.local_address, sock.local_port, sock.state, sock.inode) == (
        "192.0.2.2", 7777, 0x0A, 15436)
    assert sock.remote_address == "0.0.0.0" and is_listening(sock)


@pytest.mark.parametrize("row,byteorder", [(UDP_5353_LE, "little"), (UDP_5353_BE, "big")])
def test_unconnected_udp_socket_counts_as_listening(row, byteorder):
    sock = parse_row(row, "udp", byteorder)
    assert (sock.local_address, sock.local_port, sock.inode) == ("127.0.0.1", 5353, 15434)
    assert is_listening(sock)


def test_wrong_byte_order_gives_a_different_address():
    assert parse_row(TCP_7777_LE, "tcp", "big").local_address == "2.2.0.192"


def test_ipv6_words_are_host_order_each():
    assert decode_address("00000000000000000000000001000000", "little") == "::1"
    assert decode_address("00000000000000000000000000000001", "big") == "::1"
    # 2001:db8::1 on little-endian: each 32-bit word byte-swapped
    assert decode_address("B80D0120000000000000000001000000", "little") == "2001:db8::1"


def test_tcp6_listener_row():
    row = ("   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A "
           "00000000:00000000 00:00000000 00000000     0        0 2102 1 0000000000000000 100 0 "
           "0 10 0\n")
    sock = parse_row(row, "tcp6", "little")
    assert (sock.proto, sock.local_address, sock.local_port) == ("tcp6", "::", 22)
    assert is_listening(sock)


def test_established_tcp_and_connected_udp_are_not_listening():
    established = TCP_7777_LE.replace(" 0A ", " 01 ").replace("00000000:0000 01",
                                                              "1401A8C0:C3CA 01")
    assert not is_listening(parse_row(established, "tcp", "little"))
    connected = UDP_5353_LE.replace("00000000:0000 07", "0101A8C0:0035 01")
    assert not is_listening(parse_row(connected, "udp", "little"))


def test_header_bad_rows_and_width_mismatch_return_none():
    assert parse_row(HEADER, "tcp") is None
    assert parse_row("garbage", "tcp") is None
    assert parse_row(TCP_7777_LE, "tcp6") is None          # an IPv4 row in tcp6
    assert parse_row(TCP_7777_LE, "raw") is None           # 7777 is no IP protocol number
    assert parse_row(TCP_7777_LE.replace("1E61", "1G61"), "tcp") is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["tcp", "tcp6", "udp", "udp6"]),
       st.sampled_from(["little", "big"]))
def test_parser_never_raises(text, proto, byteorder):
    parse_row(text, proto, byteorder)


def test_raw_socket_rows_carry_the_ip_protocol_in_the_port_field():
    tcp = parse_row(RAW_TCP_LE, "raw", "little")
    assert (tcp.local_address, tcp.local_port, tcp.state, tcp.inode) == ("0.0.0.0", 6, 7, 366907)
    icmpv6 = parse_row(RAW6_ICMPV6, "raw6", "little")
    assert (icmpv6.local_address, icmpv6.local_port, icmpv6.inode) == ("::", 58, 366908)
    # the family is the file's: an IPv6 row in the raw (IPv4) file is not a row
    assert parse_row(RAW6_ICMPV6, "raw", "little") is None
    assert parse_row(RAW_TCP_LE, "rawx", "little") is None
