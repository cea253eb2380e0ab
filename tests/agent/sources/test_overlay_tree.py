"""Reading the layered tree: given /rom and an upper layer, then the merged view the router sees
(upper wins, whiteouts and opaque directories hide /rom) and listings bounded however many names
a directory holds."""
import os

from routerwatch.sources.overlay_tree import OverlayTree


def layers(tmp_path):
    (tmp_path / "rom/etc/init.d").mkdir(parents=True)
    (tmp_path / "overlay/upper/etc/init.d").mkdir(parents=True)
    (tmp_path / "rom/etc/init.d/boot").write_text("rom boot")
    (tmp_path / "rom/etc/init.d/gone").write_text("rom gone")
    (tmp_path / "overlay/upper/etc/init.d/boot").write_text("upper boot")
    os.symlink("(overlay-whiteout)", tmp_path / "overlay/upper/etc/init.d/gone")
    return OverlayTree(str(tmp_path))


def test_upper_wins_and_a_whiteout_hides(tmp_path):
    tree = layers(tmp_path)
    assert tree.has_overlay
    assert tree.read_small("etc/init.d/boot") == b"upper boot"
    assert tree.live_path("etc/init.d/gone") is None
    assert tree.live_listdir("etc/init.d", 100) == ["boot"]


def test_listing_is_bounded(tmp_path):
    tree = layers(tmp_path)
    for n in range(50):
        (tmp_path / "overlay/upper/etc/init.d" / ("x%02d" % n)).write_text("")
    assert len(tree.live_listdir("etc/init.d", 10)) == 10


def test_a_fifo_is_not_read(tmp_path):
    tree = layers(tmp_path)
    os.mkfifo(tmp_path / "overlay/upper/etc/release")
    assert tree.read_small("etc/release") is None
