"""The router's tree as the integrity watcher reads it: the merged view at <root>/, or, where a
fixture tree holds only the layers (<root>/rom and <root>/overlay/upper), the overlay rules
applied by hand."""
import os
import stat

from .overlay_hashing import open_regular
from .overlay_paths import is_opaque, is_whiteout

MAX_SMALL_FILE_BYTES = 64 * 1024  # release files, sysinfo


class OverlayTree:
    """Paths of the read-only (/rom) and writable (/overlay/upper) layers under one root."""

    def __init__(self, root):
        self.root = root
        self.rom = os.path.join(root, "rom")
        self.upper = os.path.join(root, "overlay", "upper")

    @property
    def has_overlay(self):
        return os.path.isdir(self.upper) and os.path.isdir(self.rom)

    def live_path(self, rel):
        """Where the file the router sees at /<rel> is, or None when it does not exist.

        On a router (root /) /<rel> is the merged view itself. A fixture tree may hold only the
        layers, so then the overlay rules are applied by hand: upper wins, a whiteout or an
        opaque directory on the way hides /rom."""
        direct = os.path.join(self.root, rel)
        if os.path.lexists(direct):
            return direct
        if not self.has_overlay:
            return None
        parts = rel.split("/")
        for depth in range(1, len(parts) + 1):
            upper = os.path.join(self.upper, *parts[:depth])
            try:
                st = os.lstat(upper)
            except OSError:
                break
            if is_whiteout(st, upper):
                return None
            if depth == len(parts):
                return upper
            if stat.S_ISDIR(st.st_mode) and is_opaque(upper):
                return None
        rom = os.path.join(self.rom, rel)
        return rom if os.path.lexists(rom) else None

    def live_listdir(self, rel, limit):
        """Up to `limit` names in directory /<rel> as the router sees it, sorted."""
        direct = os.path.join(self.root, rel)
        if os.path.isdir(direct):
            return _names(direct, limit)
        names = set()
        upper_dir = os.path.join(self.upper, rel)
        hidden = set()
        if os.path.isdir(upper_dir):
            for name in _names(upper_dir, limit):
                try:
                    st = os.lstat(os.path.join(upper_dir, name))
                except OSError:
                    continue
                (hidden if is_whiteout(st, os.path.join(upper_dir, name)) else names).add(name)
            if is_opaque(upper_dir):
                return sorted(names)
        rom_dir = os.path.join(self.rom, rel)
        if os.path.isdir(rom_dir):
            names.update(n for n in _names(rom_dir, limit) if n not in hidden)
        return sorted(names)[:limit]

    def open_live(self, rel):
        """Regular file /<rel> as the router sees it (following symlinks), open for reading in
        binary, or None. For what is read as a stream (the package database)."""
        path = self.live_path(rel)
        if path is None:
            return None
        try:
            return open_regular(path, follow=True)
        except OSError:
            return None

    def read_small(self, rel, limit=MAX_SMALL_FILE_BYTES):
        """The first `limit` bytes of regular file /<rel> (following symlinks), or None."""
        handle = self.open_live(rel)
        if handle is None:
            return None
        try:
            with handle:
                return handle.read(limit)
        except OSError:
            return None


def _names(directory, limit):
    """At most `limit` names, streamed: a directory flooded with names is never listed whole."""
    names = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if len(names) >= limit:
                    break
                names.append(entry.name)
    except OSError:
        return []
    return sorted(names)
