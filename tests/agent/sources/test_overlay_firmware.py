"""The firmware identity: given release files and /rom, then one identity hash, remembered in the
state dir and written to flash only when it changes."""
import os

from routerwatch.sources.overlay_firmware import FirmwareRecord, fingerprint_rom, read_identity
from routerwatch.sources.overlay_tree import OverlayTree


def finish(gen):
    try:
        while True:
            next(gen)
    except StopIteration as done:
        return done.value


def test_identity_is_remembered_and_written_once(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/openwrt_release").write_text("DISTRIB_RELEASE='24.10.0'\n")
    record = FirmwareRecord(str(tmp_path / "state/firmware.json"))
    assert record.previous is None
    first = read_identity(OverlayTree(str(tmp_path)), record, 1.0, "", "", "none")
    written = os.stat(tmp_path / "state/firmware.json").st_mtime_ns
    again = read_identity(OverlayTree(str(tmp_path)), record, 2.0, "", "", "none")
    assert again.identity_hash == first.identity_hash
    assert os.stat(tmp_path / "state/firmware.json").st_mtime_ns == written
    later = FirmwareRecord(str(tmp_path / "state/firmware.json"))
    assert later.previous["identity_hash"] == first.identity_hash
    assert first.release == {"DISTRIB_RELEASE": "24.10.0"}


def test_the_rom_fingerprint_changes_with_rom_and_handles_odd_names(tmp_path):
    rom = tmp_path / "rom"
    (rom / "bin").mkdir(parents=True)
    (rom / "bin/sh").write_bytes(b"x")
    one = finish(fingerprint_rom(str(rom), 1000))
    with open(os.path.join(os.fsencode(rom), b"bin", b"\xff\n"), "wb") as handle:
        handle.write(b"y")
    two = finish(fingerprint_rom(str(rom), 1000))
    assert len(one) == 64 and one != two
