"""opkg's database: given /usr/lib/opkg/status and info/<pkg>.list, the packages, their
install status and conffile checksums (sha256, or md5 when 32 hex digits)."""
from hypothesis import given, strategies as st

from routerwatch.parsers.opkg_status import parse_list, parse_status

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
    status = parse_status(STATUS)
    names = [p.name for p in status.packages]
    assert names == ["dropbear", "tcpdump", "removed-one"]
    dropbear, tcpdump, removed = status.packages
    assert dropbear.installed and not dropbear.user_installed
    assert tcpdump.installed and tcpdump.user_installed
    assert not removed.installed
    assert [(c.path, c.algorithm) for c in dropbear.conffiles] == [
        ("/etc/config/dropbear", "sha256"), ("/etc/dropbear/old_md5", "md5")]
    assert status.rejected_lines == 0


def test_bad_conffile_lines_are_counted_not_kept():
    status = parse_status("Package: x\nVersion: 1\nStatus: install ok installed\nConffiles:\n"
                          " /etc/../etc/shadow 0123456789abcdef0123456789abcdef\n"
                          " relative/path 0123456789abcdef0123456789abcdef\n"
                          " /etc/ok zz\n")
    assert status.packages[0].conffiles == ()
    assert status.rejected_lines == 3


def test_list_file_paths():
    assert parse_list("/usr/sbin/tcpdump\n/usr/lib/libpcap.so.1\t100644\n\nrelative\n"
                      "/etc/../x\n") == ("/usr/sbin/tcpdump", "/usr/lib/libpcap.so.1")


@given(st.binary(max_size=4096))
def test_any_bytes_parse_without_error(data):
    status = parse_status(data)
    for package in status.packages:
        assert package.name and package.version
    for path in parse_list(data):
        assert path.startswith("/")
