"""KEY='value' release files: given the text, the dict of what the firmware claims."""
from hypothesis import given, strategies as st

from routerwatch.parsers.openwrt_release import (MAX_KEYS, MAX_VALUE_CHARS, parse_release,
                                                 release_version)

OPENWRT_RELEASE = b"""DISTRIB_ID='OpenWrt'
DISTRIB_RELEASE='23.05.3'
DISTRIB_REVISION='r23809-234f1a2efa'
DISTRIB_TARGET='ramips/mt7621'
DISTRIB_ARCH='mipsel_24kc'
DISTRIB_DESCRIPTION='OpenWrt 23.05.3 r23809-234f1a2efa'
DISTRIB_TAINTS=''
"""


def test_openwrt_release_template_parses_every_key():
    release = parse_release(OPENWRT_RELEASE)
    assert release["DISTRIB_RELEASE"] == "23.05.3"
    assert release["DISTRIB_DESCRIPTION"] == "OpenWrt 23.05.3 r23809-234f1a2efa"
    assert release["DISTRIB_TAINTS"] == ""
    assert len(release) == 7
    assert release_version(release) == "23.05.3 r23809-234f1a2efa"


def test_os_release_double_quotes_and_bare_values():
    release = parse_release('NAME="OpenWrt"\nVERSION_ID=25.12.0\nPRETTY_NAME="Open \\"Wrt\\""\n'
                            "# comment\n\nOPENWRT_TAINTS=\"\"\n")
    assert release == {"NAME": "OpenWrt", "VERSION_ID": "25.12.0", "PRETTY_NAME": 'Open "Wrt"',
                       "OPENWRT_TAINTS": ""}


def test_shell_code_is_never_taken_as_a_value():
    release = parse_release("DISTRIB_RELEASE=$(reboot)\nDISTRIB_ID='a'; rm -rf /\n"
                            "export X='y'\nDISTRIB_TARGET=`id`\nGOOD='ok'\n")
    assert release == {"GOOD": "ok"}


def test_lengths_and_key_count_are_capped():
    release = parse_release("".join("K%d='v'\n" % n for n in range(200)))
    assert len(release) == MAX_KEYS
    release = parse_release("".join("K%d='%s'\n" % (n, "v" * 1000) for n in range(3)))
    assert [len(v) for v in release.values()] == [MAX_VALUE_CHARS] * 3


def test_control_characters_are_replaced():
    assert parse_release(b"DISTRIB_ID='Open\x1b[31mWrt'\n")["DISTRIB_ID"] == "Open?[31mWrt"


@given(st.binary(max_size=2048))
def test_any_bytes_give_a_small_dict_of_strings(data):
    release = parse_release(data)
    assert len(release) <= MAX_KEYS
    assert all(isinstance(k, str) and isinstance(v, str) and len(v) <= MAX_VALUE_CHARS
               for k, v in release.items())
