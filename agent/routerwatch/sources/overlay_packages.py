"""What the package database (apk's /lib/apk/db/installed or opkg's status and info/*.list)
says about the router's files, and the files that fail its checksums."""
import os
import stat

from ..parsers.apk_installed import parse_installed
from ..parsers.opkg_status import parse_list, parse_status
from .overlay_hashing import open_regular, package_digest
from .overlay_paths import detail_for

MAX_DB_BYTES = 32 * 1024 * 1024   # package databases
APK_DB = "lib/apk/db/installed"
OPKG_DB = "usr/lib/opkg/status"


class Packages:
    """What the package database says about files: owners and checksums."""

    def __init__(self):
        self.manager = "none"
        self.owned = {}               # every path a package lists -> (package, version)
        self.rom_versions = {}        # package -> version in /rom's database (what shipped)
        self.checksums = {}           # path -> (algorithm, digest bytes, package, version)
        self.conffiles = {}           # path -> (algorithm, hex, package, version)   (opkg)
        self.truncated = False


def load_packages(tree):
    """Packages of the router in `tree` (an OverlayTree)."""
    packages = Packages()
    apk = tree.read_small(APK_DB, MAX_DB_BYTES)
    if apk is not None:
        packages.manager = "apk"
        database = parse_installed(apk)
        packages.truncated = database.truncated
        for package in database.packages:
            for item in package.files:
                packages.owned[item.path] = (package.name, package.version)
                if item.digest is not None and item.algorithm != "sha512":
                    packages.checksums[item.path] = (item.algorithm, item.digest,
                                                     package.name, package.version)
        packages.rom_versions = _rom_versions(tree, APK_DB, parse_installed)
        return packages
    status = tree.read_small(OPKG_DB, MAX_DB_BYTES)
    if status is None:
        return packages
    packages.manager = "opkg"
    database = parse_status(status)
    packages.truncated = database.truncated
    for package in database.packages:
        if not package.installed:
            continue
        for conffile in package.conffiles:
            packages.conffiles[conffile.path] = (conffile.algorithm, conffile.checksum,
                                                 package.name, package.version)
        listing = tree.read_small("usr/lib/opkg/info/%s.list" % package.name, MAX_DB_BYTES)
        if listing is not None:
            packages.owned.update((path, (package.name, package.version))
                                  for path in parse_list(listing))
    packages.rom_versions = _rom_versions(tree, OPKG_DB, parse_status)
    return packages


def _rom_versions(tree, rel, parse):
    if not tree.has_overlay:
        return {}
    try:
        with open_regular(os.path.join(tree.rom, rel)) as handle:
            database = parse(handle.read(MAX_DB_BYTES))
    except OSError:
        return {}
    return {package.name: package.version for package in database.packages}


def rom_database(tree):
    """The bytes of /rom's package database (what the firmware shipped), or None."""
    if not tree.has_overlay:
        return None
    for rel in (APK_DB, OPKG_DB):
        try:
            with open_regular(os.path.join(tree.rom, rel)) as handle:
                return handle.read(MAX_DB_BYTES)
        except OSError:
            continue
    return None


def mismatches(packages, path, st, digest, head, abs_path):
    """Details of `package_mismatch` findings for the file at router path `path` (content
    sha256 `digest`): its apk checksum, or its opkg conffile checksum, fails."""
    found = []
    if digest is None or not stat.S_ISREG(st.st_mode):
        return found
    expected = packages.checksums.get(path)
    if expected is not None:
        algorithm, wanted, package, version = expected
        actual = package_digest(abs_path, algorithm, digest)
        if actual is not None and actual != wanted:
            detail = detail_for(path, head, st.st_mode)
            detail.update(package=package, version=version, algorithm=algorithm,
                          expected=wanted.hex(), actual=actual.hex(), sha256=digest,
                          size=st.st_size, conffile=False)
            found.append(detail)
    conffile = packages.conffiles.get(path)
    if conffile is not None:
        algorithm, wanted, package, version = conffile
        actual = package_digest(abs_path, algorithm, digest)
        actual = actual.hex() if actual is not None else None
        if actual is not None and actual != wanted:
            detail = detail_for(path, head, st.st_mode)
            detail.update(package=package, version=version, algorithm=algorithm,
                          expected=wanted, actual=actual, sha256=digest, size=st.st_size,
                          conffile=True)
            found.append(detail)
    return found


def verified(packages, path, digest, live_path):
    """True when the package database's checksum for `path` matches content `digest` (sha256
    hex) of the file at `live_path`."""
    expected = packages.checksums.get(path)
    if expected is None or not digest or len(digest) != 64 or live_path is None:
        return False
    actual = package_digest(live_path, expected[0], digest)
    return actual is not None and actual == expected[1]
