"""opkg's database: given /usr/lib/opkg/status and info/<pkg>.list, the packages, their
install status and conffile checksums (sha256, or md5 when 32 hex digits)."""
import io

from hypothesis import given, settings, strategies as st

from routerwatch.bounded import BoundedLines
from routerwatch.parsers.apk_installed import REJECTED
from routerwatch.parsers.opkg_status import iter_list, iter_status


def lines_of(text, max_line_bytes=8192):
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return BoundedLines(io.BytesIO(data), 1 << 30, max_line_bytes)


def parse_status(text, max_line_bytes=8192):
    """(packages, rejected lines)"""
    records = list(iter_status(lines_of(text, max_line_bytes)))
    return [r for r in records if r is not REJECTED], records.count(REJECTED)


def parse_list(text, max_line_bytes=8192):
    return tuple(p for p in iter_list(lines_of(text, max_line_bytes)) if p is not REJECTED)

STATUS = """Package: dropbear
Version: 2022.82-6
Depends: libc
Status: install ok installed
Architecture: mipsel_24kc
Conffiles:
 /etc/config/dropbear 8a1fdc6d2d8a1b0b8c5e7e1e9ed64d0c0ca3aec6d7f8dd6e7aa0f0a1d2e3f4a5
 /etc/dropbear/old_md5 0123456789abcdef0123456789abcdef
Installed-Time: 1700000000

Package: tcpdump
Version: 4.99.4-1
Status: install user installed
Architecture: mipsel_24kc
Installed-Time: 1700000100
Auto-Installed: no

Package: removed-one
Version: 1.0
Status: deinstall ok not-installed
"""


def test_packages_status_and_conffiles():
    packages, rejected = parse_status(STATUS)
    names = [p.name for p in packages]
    assert names == ["dropbear", "tcpdump", "removed-one"]
    dropbear, tcpdump, removed = packages
    assert dropbear.installed and not dropbear.user_installed
    assert tcpdump.installed and tcpdump.user_installed
    assert not removed.installed
    assert [(c.path, c.algorithm) for c in dropbear.conffiles] == [
        ("/etc/config/dropbear", "sha256"), ("/etc/dropbear/old_md5", "md5")]
    assert rejected == 0


def test_bad_conffile_lines_are_counted_not_kept():
    packages, rejected = parse_status("Package: x\nVersion: 1\nStatus: install ok installed\nConffiles:\n"
                          " /etc/../etc/shadow 0123456789abcdef0123456789abcdef\n"
                          " relative/path 0123456789abcdef0123456789abcdef\n"
                          " /etc/ok zz\n")
    assert packages[0].conffiles == ()
    assert rejected == 3


def test_list_file_paths():
    assert parse_list("/usr/sbin/tcpdump\n/usr/lib/libpcap.so.1\t100644\n\nrelative\n"
                      "/etc/../x\n") == ("/usr/sbin/tcpdump", "/usr/lib/libpcap.so.1")


def test_undecodable_and_overlong_lines():
    assert parse_list(b"/usr/bin/\xff\n/" + b"x" * 100 + b"\n/ok\n", 64) == (
        "/usr/bin/\udcff", "/ok")
    packages, rejected = parse_status(b"Package: x\nVersion: 1\nDescription: " + b"d" * 100
                                      + b"\nStatus: install ok installed\n", 64)
    assert [p.name for p in packages] == ["x"] and packages[0].installed and rejected == 1


LINE = st.one_of(
    st.binary(max_size=80),
    st.sampled_from([b"", b"Package: a", b"Version: 1", b"Status: install ok installed",
                     b"Conffiles:", b" /etc/config/x " + b"ab" * 32, b" /etc/\xff " + b"0" * 32,
                     b"Description: x", b" continued"]),
    st.builds(lambda k, v: k + b": " + v, st.sampled_from([b"Package", b"Version", b"Status"]),
              st.binary(max_size=300)))


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=60), st.integers(16, 512))
def test_hostile_lines_parse_into_well_formed_records(lines, max_line_bytes):
    packages, _ = parse_status(b"\n".join(lines), max_line_bytes)
    for package in packages:
        assert package.name and package.version and len(package.conffiles) <= 256
        for conffile in package.conffiles:
            assert conffile.path.startswith("/") and conffile.algorithm in ("md5", "sha256")
    for path in parse_list(b"\n".join(lines), max_line_bytes):
        assert path.startswith("/") and len(path) <= max_line_bytes


@given(st.binary(max_size=4096))
def test_any_bytes_parse_without_error(data):
    packages, _ = parse_status(data)
    for package in packages:
        assert package.name and package.version
    for path in parse_list(data):
        assert path.startswith("/")
