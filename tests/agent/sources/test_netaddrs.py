"""The router's own address set from fib_trie, if_inet6, loopback and config.router_addresses."""
from connfixtures import PROC_FIXTURES, copy_tree

from routerwatch.parsers.address_list import parse_address_list
from routerwatch.sources.netaddrs import (RouterAddressReader, parse_fib_trie,
                                          parse_if_inet6)

# CAPTURED /proc/net/fib_trie (Debian, kernel 6.18), Main table
FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
        +-- 192.0.2.0/30 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
"""
# CAPTURED /proc/net/if_inet6
IF_INET6 = """\
fd000000000000000000000000000002 04 40 00 82     eth0
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
"""


def test_fib_trie_gives_the_32_host_local_leaves_only():
    found = {str(a) for a in parse_fib_trie(FIB_TRIE.splitlines())}
    assert found == {"127.0.0.1", "192.0.2.2"}   # not 127.0.0.0 (/8 host LOCAL), not broadcast


def test_if_inet6_is_network_order():
    found = {str(a) for a in parse_if_inet6(IF_INET6.splitlines())}
    assert found == {"fd00::2", "fe80::fc:ff:fe00:1", "::1"}


def test_fixture_router_has_its_wan_lan_ula_and_link_local_addresses():
    own = RouterAddressReader(str(PROC_FIXTURES / "healthy")).read()
    for address in ("203.0.113.7", "192.168.1.1", "2001:db8:0:1::2", "2001:db8:1:100::1",
                    "fdca:ffee:babe::1", "fe80::1", "127.0.0.1", "::1"):
        assert own.contains(address), address
    assert not own.contains("203.0.113.1")         # the PPPoE peer: "/32 link UNICAST"
    assert not own.contains("192.168.1.100")
    assert own.contains("127.0.0.53")              # all of 127/8 is the router's
    # the fast path matches the kernel's uncompressed IPv6 spelling
    assert "2001:0db8:0000:0001:0000:0000:0000:0002" in own.raw_spellings()


def test_extra_addresses_from_config_and_bad_items_ignored():
    own = RouterAddressReader(str(PROC_FIXTURES / "healthy"),
                              "198.51.100.99, 2001:DB8::99, not-an-ip, fe80::1%eth0").read()
    assert own.contains("198.51.100.99") and own.contains("2001:db8::99")
    assert parse_address_list("a, 192.0.2.1,")[1] == ["a"]


def test_missing_files_leave_loopback_only(tmp_path):
    own = RouterAddressReader(str(tmp_path)).read()
    assert own.addresses == frozenset({"127.0.0.1", "::1"})


def test_read_again_sees_a_new_wan_address_after_a_pppoe_reconnect(tmp_path):
    root = copy_tree("healthy", tmp_path)
    reader = RouterAddressReader(str(root))
    assert reader.read().contains("203.0.113.7")
    trie = root / "proc" / "net" / "fib_trie"
    trie.write_text(trie.read_text().replace("203.0.113.7", "203.0.113.77"))
    after = reader.read()
    assert after.contains("203.0.113.77") and not after.contains("203.0.113.7")


def test_unchanged_files_give_the_same_addresses_without_parsing_again(tmp_path, monkeypatch):
    root = copy_tree("healthy", tmp_path)
    reader = RouterAddressReader(str(root))
    first = reader.read()
    calls = []
    monkeypatch.setattr(reader._files[0], "parse", lambda lines: calls.append(1) or set())
    assert reader.read() is first and calls == []
