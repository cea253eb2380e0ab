"""The baseline manifest: canonical sorted lines, hashed, gzip'd atomically, rewritten only when
the content changes; hostile path names cannot forge lines."""
import gzip
import os

import pytest

from routerwatch import baseline
from routerwatch import config as cfg
from routerwatch.baseline import Entry

ENTRIES = {
    "/etc/config/network": Entry("a" * 64, 120, 0o100644),
    "/usr/sbin/tool": Entry("b" * 64, 5000, 0o100755),
    "/etc/uci-defaults/10_x": Entry("whiteout", 0, 0o020000),
}


def test_canonical_text_is_sorted_and_hash_is_over_it():
    text = baseline.canonical_text(ENTRIES).decode()
    assert text.splitlines()[0].startswith("/etc/config/network\t" + "a" * 64 + "\t120\t100644")
    assert [line.split("\t")[0] for line in text.splitlines()] == sorted(ENTRIES)
    import hashlib
    assert baseline.manifest_hash(ENTRIES) == hashlib.sha256(text.encode()).hexdigest()
    assert baseline.manifest_hash(dict(reversed(list(ENTRIES.items())))) == \
        baseline.manifest_hash(ENTRIES)


def test_save_load_round_trip_and_no_rewrite_when_unchanged(tmp_path):
    path = str(tmp_path / "state" / "baseline.gz")
    assert baseline.save(path, ENTRIES) is True
    assert gzip.open(path).read() == baseline.canonical_text(ENTRIES)
    before = os.stat(path).st_mtime_ns, os.stat(path).st_ino
    assert baseline.save(path, dict(ENTRIES)) is False
    assert (os.stat(path).st_mtime_ns, os.stat(path).st_ino) == before
    assert baseline.load(path) == ENTRIES
    assert not [n for n in os.listdir(tmp_path / "state") if ".tmp" in n]


def test_hostile_path_names_round_trip_without_forging_lines(tmp_path):
    entries = {"/tmp/x\n/etc/shadow\t" + "c" * 64 + "\t1\t100644": Entry("d" * 64, 1, 0o100644),
               "/a\\tb": Entry("e" * 64, 2, 0o100644)}
    path = str(tmp_path / "b.gz")
    baseline.save(path, entries)
    assert baseline.load(path) == entries
    assert len(baseline.canonical_text(entries).splitlines()) == 2


def test_operator_plain_text_baseline_is_accepted_and_bad_lines_named(tmp_path):
    good = tmp_path / "plain"
    good.write_bytes(baseline.canonical_text(ENTRIES))
    assert baseline.load(str(good)) == ENTRIES
    bad = tmp_path / "bad"
    bad.write_text("/etc/passwd\tnot-a-hash\t1\t644\n")
    with pytest.raises(baseline.BaselineError, match="line 1"):
        baseline.load(str(bad))
    assert baseline.load(str(tmp_path / "missing")) is None


def test_default_state_dir_is_taken_under_the_root_prefix(tmp_path):
    conf = cfg.load(defaults={"root": str(tmp_path)})
    assert baseline.state_path(conf, "baseline.gz") == str(tmp_path / "etc/routerwatch/baseline.gz")
    explicit = cfg.load(overrides=["state_dir=/var/lib/rw"], defaults={"root": str(tmp_path)})
    assert baseline.state_path(explicit, "baseline.gz") == "/var/lib/rw/baseline.gz"
