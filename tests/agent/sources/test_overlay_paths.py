"""What a path is: given a path, its first bytes and mode, then its class, sensitivity and the
rank the integrity walk gives it."""
import stat

import pytest

from routerwatch.sources.overlay_paths import (RANK_ACCESS, RANK_CODE, RANK_CONFIG, RANK_DATA,
                                               SENSITIVE_PATTERNS, classify, directory_rank,
                                               file_rank, is_sensitive, special_type)


@pytest.mark.parametrize("path, head, mode, expected", [
    ("/usr/sbin/dropbear", b"\x7fELF", 0o100755, "executable"),
    ("/usr/lib/libfoo.so.1", b"\x7fELF", 0o100755, "library"),
    ("/etc/init.d/x", b"#!/b", 0o100755, "script"),
    ("/usr/bin/tool.sh", b"echo", 0o100644, "script"),
    ("/etc/config/network", b"conf", 0o100644, "routine"),
    ("/etc/dropbear/dropbear_ed25519_host_key", b"\x00\x00", 0o100600, "routine"),
    ("/etc/sysctl.conf", b"net.", 0o100644, "config"),
    ("/root/notes", b"hi", 0o100644, "data"),
])
def test_classify(path, head, mode, expected):
    assert classify(path, head, mode) == expected


@pytest.mark.parametrize("path", ["/etc/passwd", "/etc/init.d/x", "/etc/hotplug.d/net/99-x",
                                  "/www/index.html", "/etc/crontabs/root"])
def test_sensitive_paths_match_as_fnmatch_would(path):
    import fnmatch
    assert is_sensitive(path)
    assert any(fnmatch.fnmatchcase(path, p) for p in SENSITIVE_PATTERNS)



def test_odd_names_match_the_same_way():
    # a newline or an undecodable byte in a name must neither hide nor fake a sensitive path
    assert is_sensitive("/etc/init.d/a\nb") and is_sensitive("/etc/init.d/\udcff")
    assert not is_sensitive("/etc/passwd\n") and not is_sensitive("/etc/passwdx")


@pytest.mark.parametrize("path, mode, expected", [
    ("/etc/init.d/backdoor", 0o100644, RANK_ACCESS),
    ("/etc/passwd", 0o100644, RANK_ACCESS),
    ("/lib/preinit/99_x", 0o100644, RANK_ACCESS),
    ("/usr/lib/libx.so.1", 0o100644, RANK_CODE),
    ("/root/payload", 0o100755, RANK_CODE),
    ("/root/x.so.1", 0o100644, RANK_CODE),
    ("/etc/sysctl.conf", 0o100644, RANK_CONFIG),
    ("/www/luci-static/cache/f1", 0o100644, RANK_DATA),
    ("/root/pipe", stat.S_IFIFO | 0o644, RANK_ACCESS),
])
def test_rank(path, mode, expected):
    directory = path.rsplit("/", 1)[0] + "/"
    assert file_rank(path, mode, directory_rank(directory)) == expected


def test_special_types():
    assert special_type(stat.S_IFIFO | 0o644) == "fifo"
    assert special_type(stat.S_IFCHR) == "char_device"
    assert special_type(stat.S_IFBLK) == "block_device"
    assert special_type(stat.S_IFSOCK) == "socket"
    assert special_type(stat.S_IFREG | 0o755) is None
    assert special_type(stat.S_IFLNK | 0o777) is None
