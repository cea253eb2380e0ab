"""Hashing with its cache: given files, then each content is read once, the cache holds one small
record per file, forgets what a complete scan no longer saw, and nothing but a regular file is
ever opened."""
import hashlib
import os
import sys
import time

import pytest

from routerwatch.sources.overlay_hashing import (FileHasher, open_regular, package_digest,
                                                 rom_key)


def digest_of(hasher, key, path):
    gen = hasher.file_digest(key, str(path))
    try:
        while True:
            next(gen)
    except StopIteration as done:
        return done.value


def test_a_file_is_read_once_until_it_changes(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"#!/bin/sh\necho hi\n")
    hasher = FileHasher(1 << 20)
    st, digest, head = digest_of(hasher, "/f", target)
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest() and head == b"#!/b"
    hasher.finish_scan()
    hasher.start_scan()
    assert digest_of(hasher, "/f", target)[1] == digest and hasher.hashes == 1
    target.write_bytes(b"#!/bin/sh\necho ho\n")
    os.utime(target, ns=(st.st_mtime_ns + 10 ** 9, st.st_mtime_ns + 10 ** 9))
    assert digest_of(hasher, "/f", target)[1] != digest and hasher.hashes == 2
    assert hasher.head("/f") == b"#!/b"


def test_the_cache_forgets_what_a_complete_scan_did_not_see(tmp_path):
    hasher = FileHasher(1 << 20)
    for n in range(3):
        (tmp_path / str(n)).write_bytes(b"x%d" % n)
        digest_of(hasher, "/%d" % n, tmp_path / str(n))
    hasher.finish_scan()
    hasher.start_scan()
    digest_of(hasher, "/0", tmp_path / "0")
    hasher.finish_scan()
    assert len(hasher) == 1 and hasher.head("/1") == b""


def test_a_cache_record_is_small(tmp_path):
    hasher = FileHasher(1 << 20)
    (tmp_path / "f").write_bytes(b"\x7fELF" + bytes(100))
    digest_of(hasher, "/f", tmp_path / "f")
    (record,) = hasher._current.values()
    assert sys.getsizeof(record) < 120      # a tuple of ints and a hex str would be ~400


def test_large_files_are_not_read_and_rom_keys_do_not_collide(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 5000)
    hasher = FileHasher(4096)
    assert digest_of(hasher, "/big", tmp_path / "big")[1] is None and hasher.hashes == 0
    assert rom_key("/big") != "/big" and "\0" in rom_key("/big")


def test_fifos_are_never_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    hasher = FileHasher(1 << 20)
    st, digest, head = digest_of(hasher, "/pipe", tmp_path / "pipe")   # would block if opened
    assert digest is None and head == b"" and st is not None


def test_a_symlink_is_hashed_by_its_target_bytes(tmp_path):
    os.symlink(b"/tmp/\xff", os.path.join(os.fsencode(tmp_path), b"link"))
    _st, digest, _head = digest_of(FileHasher(1 << 20), "/link", tmp_path / "link")
    assert digest == hashlib.sha256(b"/tmp/\xff").hexdigest()


def test_open_regular_refuses_symlinks_unless_asked(tmp_path):
    (tmp_path / "real").write_bytes(b"data")
    os.symlink(tmp_path / "real", tmp_path / "link")
    with pytest.raises(OSError):
        open_regular(str(tmp_path / "link"))
    with open_regular(str(tmp_path / "link"), follow=True) as handle:
        assert handle.read() == b"data"
    with pytest.raises(OSError):
        open_regular("/dev/zero", follow=True)


def test_package_digests_reuse_the_sha256_where_they_can(tmp_path):
    (tmp_path / "f").write_bytes(b"content")
    sha = hashlib.sha256(b"content").hexdigest()
    assert package_digest(str(tmp_path / "f"), "sha256-160", sha) == bytes.fromhex(sha)[:20]
    assert package_digest(str(tmp_path / "f"), "md5", sha) == hashlib.md5(b"content").digest()
    assert package_digest(str(tmp_path / "f"), "sha512", sha) is None


def test_an_edit_of_the_same_size_with_the_mtime_set_back_is_read_again(tmp_path):
    """touch -d restores an mtime, never a ctime: the edit is seen."""
    target = tmp_path / "dropbear"
    target.write_bytes(b"\x7fELF genuine")
    hasher = FileHasher(1 << 20)
    st, digest, _head = digest_of(hasher, "/usr/sbin/dropbear", target)
    hasher.finish_scan()
    hasher.start_scan()
    time.sleep(0.02)        # past one tick of the clock timestamps come from (HZ >= 100)
    with open(target, "r+b") as handle:            # same inode, same size
        handle.write(b"\x7fELF trojan!")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(target)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        st.st_ino, st.st_size, st.st_mtime_ns)
    assert after.st_ctime_ns != st.st_ctime_ns
    assert digest_of(hasher, "/usr/sbin/dropbear", target)[1] == hashlib.sha256(
        b"\x7fELF trojan!").hexdigest() != digest
    assert hasher.hashes == 2
