"""The overlay walk: given an upper layer (and the /rom it shadows), when it is walked with a cap,
then what shadows /rom, access paths and code are kept before bulk data, memory stays one path per
kept file, and any name a hostile process can create comes out as the same bytes."""
import os
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st

from routerwatch.sources import overlay_walk
from routerwatch.sources.overlay_paths import RANK_NAMES
from routerwatch.sources.overlay_walk import Candidates, FloodCounter, walk


def run_walk(upper, rom, limit, skip=()):
    candidates, flood = Candidates(limit), FloodCounter()
    for _ in walk(str(upper), str(rom), candidates, flood, skip=skip):
        pass
    return candidates, flood


def touch(path, data=b"", mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def test_candidates_keep_the_lowest_ranks_and_count_what_they_drop():
    kept = Candidates(3)
    for path in ("/d1", "/d2", "/d3"):
        assert kept.offer(4, path)
    assert kept.offer(0, "/usr/sbin/dropbear")        # pushes out one data file
    assert kept.offer(2, "/usr/bin/x")
    assert not kept.offer(4, "/d4")                    # full of better ones
    assert kept.offer(2, "/usr/bin/y")                 # pushes out the last data file
    assert not kept.offer(2, "/usr/bin/z")             # equal rank: the first ones stay
    assert kept.dropped == [0, 0, 1, 0, 4]
    assert list(kept.drain()) == [(0, "/usr/sbin/dropbear"), (2, "/usr/bin/x"),
                                  (2, "/usr/bin/y")]
    assert len(kept) == 0


def test_candidates_bound_the_bytes_of_the_paths_too():
    import sys
    long_junk = ["/www/" + "j" * 3000 + "%d" % n for n in range(3)]
    budget = sum(sys.getsizeof(p) for p in long_junk)
    kept = Candidates(100, byte_limit=budget)
    assert all(kept.offer(4, path) for path in long_junk)
    assert not kept.offer(4, "/www/" + "j" * 3000 + "x")   # no room, nothing worse to drop
    assert not kept.offer(2, "/usr/bin/" + "y" * 10000)    # more than all the data frees
    assert kept.dropped == [0, 0, 1, 0, 1] and len(kept) == 3   # and nothing was pushed out
    assert kept.offer(0, "/usr/sbin/dropbear")              # pushes out one long data path
    assert kept.dropped == [0, 0, 1, 0, 2] and len(kept) == 3
    assert [path for _rank, path in kept.drain()][0] == "/usr/sbin/dropbear"


def test_the_default_byte_budget_never_binds_before_the_count_on_ordinary_paths():
    kept = Candidates(1000)
    for n in range(1000):
        assert kept.offer(4, "/www/luci-static/cache/d%03d/f%06d" % (n // 100, n))
    assert kept.dropped_total == 0
    assert not kept.offer(4, "/www/one-more")


def test_a_flood_of_long_names_is_capped_by_bytes_and_named(tmp_path):
    upper, rom = tmp_path / "upper", tmp_path / "rom"
    touch(rom / "usr/sbin/dropbear", b"rom")
    touch(upper / "usr/sbin/dropbear", b"trojan")
    deep = upper / "www" / ("d" * 200) / ("e" * 200)
    deep.mkdir(parents=True)
    for n in range(300):
        (deep / ("%04d" % n + "f" * 200)).touch()
    kept, flood = run_walk(upper, rom, 1000)        # 160 KB of paths: about 220 of these
    assert kept.dropped_total > 0 and set(
        RANK_NAMES[r] for r, n in enumerate(kept.dropped) if n) == {"data"}
    assert flood.where() == "/www/%s/%s" % ("d" * 200, "e" * 200)
    assert [p for r, p in kept.drain()][0] == "/usr/sbin/dropbear"


def test_the_walk_ranks_rom_shadows_access_code_config_then_data(tmp_path):
    upper, rom = tmp_path / "upper", tmp_path / "rom"
    touch(rom / "usr/sbin/dropbear", b"rom")
    touch(upper / "usr/sbin/dropbear", b"trojan")             # shadows /rom
    touch(upper / "etc/crontabs/root", b"* * * * * x")        # access
    touch(upper / "usr/bin/tool", b"\x7fELF")                 # code (by place)
    touch(upper / "root/run.sh", b"#!/bin/sh")                # code (by name)
    touch(upper / "root/helper", b"x", 0o755)                 # code (by mode)
    touch(upper / "etc/sysctl.conf", b"x")                    # config
    touch(upper / "root/notes.txt", b"x")                     # data
    kept, flood = run_walk(upper, rom, 100)
    ranks = {path: RANK_NAMES[rank] for rank, path in kept.drain()}
    assert ranks == {"/usr/sbin/dropbear": "shadows_rom", "/etc/crontabs/root": "access",
                     "/usr/bin/tool": "code", "/root/run.sh": "code", "/root/helper": "code",
                     "/etc/sysctl.conf": "config", "/root/notes.txt": "data"}
    assert flood.files == 7 and kept.dropped_total == 0


def test_a_flood_is_found_where_it_is(tmp_path):
    upper, rom = tmp_path / "upper", tmp_path / "rom"
    rom.mkdir()
    for n in range(60):
        touch(upper / "www/junk" / ("a%d" % (n % 3)) / str(n))
    touch(upper / "etc/passwd", b"root")
    kept, flood = run_walk(upper, rom, 10)
    assert kept.dropped_total == 51
    assert flood.where() == "/www/junk"
    assert [(d.path, d.files) for d in flood.largest()][:3] == [
        ("/www/junk/a0", 20), ("/www/junk/a1", 20), ("/www/junk/a2", 20)]
    assert (1, "/etc/passwd") in list(kept.drain())


def test_skip_and_depth_cap(tmp_path, monkeypatch):
    upper, rom = tmp_path / "upper", tmp_path / "rom"
    rom.mkdir()
    touch(upper / "etc/routerwatch/baseline.gz")
    deep = upper
    for n in range(6):
        deep = deep / ("l%d" % n)
    touch(deep / "hidden")
    monkeypatch.setattr(overlay_walk, "MAX_DEPTH", 4)
    kept, flood = run_walk(upper, rom, 100, skip=("/etc/routerwatch",))
    assert [p for _, p in kept.drain()] == []
    assert flood.too_deep == 1


def test_the_walk_holds_one_open_directory_per_level(tmp_path):
    upper, rom = tmp_path / "upper", tmp_path / "rom"
    rom.mkdir()
    for n in range(300):
        (upper / "wide" / ("d%03d" % n)).mkdir(parents=True)
    touch(upper / "wide/d150/file")
    before = len(os.listdir("/proc/self/fd"))
    candidates, flood = Candidates(10), FloodCounter()
    most = 0
    for _ in walk(str(upper), str(rom), candidates, flood):
        most = max(most, len(os.listdir("/proc/self/fd")) - before)
    assert most <= 3       # upper, wide, one dNNN: not 300 listings at once
    assert [p for _, p in candidates.drain()] == ["/wide/d150/file"]


# names as bytes: anything but NUL and '/', including invalid UTF-8, newlines and tabs
NAME = st.binary(min_size=1, max_size=40).filter(
    lambda b: b"\0" not in b and b"/" not in b and b not in (b".", b".."))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(NAME, min_size=1, max_size=12, unique=True),
       shadowed=st.sets(st.integers(0, 11)), limit=st.integers(1, 14))
def test_any_names_come_out_as_the_same_bytes_and_rom_shadows_are_never_dropped(
        names, shadowed, limit):
    work = tempfile.mkdtemp()
    try:
        upper, rom = os.path.join(work, "upper"), os.path.join(work, "rom")
        for directory in (upper, rom):
            os.makedirs(directory)
        os.makedirs(os.path.join(upper, "d"))
        os.makedirs(os.path.join(rom, "d"))
        made = set()
        for n, name in enumerate(names):
            path = os.path.join(os.fsencode(upper), b"d", name)
            with open(path, "wb") as handle:
                handle.write(b"x")
            made.add(b"/d/" + name)
            if n in shadowed:
                open(os.path.join(os.fsencode(rom), b"d", name), "wb").close()
        kept, flood = run_walk(upper, rom, limit)
        out = [(rank, os.fsencode(path)) for rank, path in kept.drain()]
        assert {p for _, p in out} <= made and len(out) == min(limit, len(made))
        assert flood.files == len(made) and kept.dropped_total == len(made) - len(out)
        rom_paths = {b"/d/" + names[n] for n in shadowed if n < len(names)}
        kept_rom = {p for rank, p in out if rank == 0}
        assert kept_rom == rom_paths if len(rom_paths) <= limit else len(kept_rom) == limit
    finally:
        shutil.rmtree(work)
