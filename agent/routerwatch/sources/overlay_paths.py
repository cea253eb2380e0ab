"""What a path in the router's tree is, from its name and mode alone (no I/O beyond getxattr and
readlink): its class, whether it gives access, how much it matters to the integrity walk, and the
overlayfs markers (whiteouts, opaque directories) and special files.

Paths are text as os gives it: bytes that are not UTF-8 are carried as surrogate escapes, so every
function here works on any name a hostile process can create.
"""
import fnmatch
import os
import re
import stat

LEGACY_WHITEOUT_TARGET = "(overlay-whiteout)"
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")

# Paths every configured OpenWrt router changes on its own or by its owner's ordinary use: the
# first boot generates host keys and board files, LuCI writes /etc/config, setting the root
# password writes /etc/shadow, enabling a service adds an /etc/rc.d link, installing a package
# rewrites the package database. Seen on the first scan they are at most `info`.
ROUTINE_PATTERNS = (
    "/etc/config/*", "/etc/shadow", "/etc/shadow-", "/etc/group", "/etc/group-", "/etc/passwd-",
    "/etc/board.json", "/etc/urandom.seed", "/etc/dropbear/dropbear_*_host_key",
    "/etc/uhttpd.crt", "/etc/uhttpd.key", "/etc/luci-uploads/*", "/etc/rc.d/*",
    "/etc/localtime", "/etc/TZ", "/etc/ethers", "/etc/sysupgrade.conf", "/etc/opkg/*",
    "/etc/apk/*", "/etc/apk/*/*", "/lib/apk/db/*", "/lib/apk/packages/*", "/usr/lib/opkg/*",
    "/usr/lib/opkg/info/*", "/etc/routerwatch/*", "/etc/*.apk-new", "/etc/config/*.apk-new",
    "/etc/wireless/*", "/etc/hosts", "/etc/crontabs", "/etc/dropbear",
)

# Where a change means someone can log in or get code run: login accounts and keys, the boot
# and cron hooks, the web root.
SENSITIVE_PATTERNS = (
    "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/dropbear/authorized_keys",
    "/root/.ssh/authorized_keys", "/etc/rc.local", "/etc/crontabs/*", "/etc/init.d/*",
    "/etc/rc.d/*", "/etc/uci-defaults/*", "/etc/hotplug.d/*", "/etc/hotplug.d/*/*",
    "/etc/profile", "/etc/profile.d/*", "/etc/shinit", "/etc/sudoers", "/etc/sudoers.d/*",
    "/etc/config/dropbear", "/etc/config/rpcd", "/etc/config/uhttpd", "/etc/config/firewall",
    "/www/*",
)

# Code that is not compiled: shell, Lua, ucode, CGI, the boot and cron hooks.
SCRIPT_PATTERNS = (
    "/etc/init.d/*", "/etc/hotplug.d/*", "/etc/uci-defaults/*", "/etc/rc.local",
    "/etc/crontabs/*", "/etc/profile", "/etc/profile.d/*", "/etc/shinit", "/lib/functions/*",
    "/lib/functions.sh", "/lib/netifd/*", "/lib/preinit/*", "/lib/upgrade/*", "/lib/wifi/*",
    "/usr/lib/lua/*", "/usr/share/ucode/*", "/usr/share/rpcd/ucode/*", "/usr/libexec/*",
    "/www/cgi-bin/*", "/www/*", "/usr/share/udhcpc/*", "*.sh", "*.lua", "*.uc",
)

# The package managers' own bookkeeping: maintainer scripts (opkg info/<pkg>.postinst, apk's
# /lib/apk/packages/<pkg>.*) are executable but listed by no package; they are the database.
PACKAGE_METADATA_DIRS = ("/usr/lib/opkg/", "/lib/apk/")

EXECUTABLE_DIRS = ("/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/libexec/")
LIBRARY_DIRS = ("/lib/", "/usr/lib/")

# ------------------------------------------------------------------ the walk's priorities
# When integrity.max_files is reached, what is dropped is the highest rank. A flood of junk
# must never push out what an intruder changes to get in or stay: the walk keeps the lowest
# ranks first. Shadowing /rom is rank 0 and can never be flooded: there are no more such paths
# than /rom has files.
RANK_SHADOWS_ROM = 0      # replaces, deletes or hides a /rom file
RANK_ACCESS = 1           # accounts, keys, autostart and cron hooks, CGI
RANK_CODE = 2             # programs, libraries, kernel modules, scripts
RANK_CONFIG = 3           # the rest of /etc
RANK_DATA = 4             # everything else: bulk data
RANK_NAMES = ("shadows_rom", "access", "code", "config", "data")

# Files that give access by themselves (exact paths).
ACCESS_FILES = frozenset((
    "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/rc.local", "/etc/profile", "/etc/shinit",
    "/etc/sudoers", "/etc/inittab", "/etc/dropbear/authorized_keys", "/root/.ssh/authorized_keys",
    "/etc/config/dropbear", "/etc/config/rpcd", "/etc/config/uhttpd", "/etc/config/firewall",
))
# Directories whose files run without anyone starting them, or let someone log in.
ACCESS_DIRS = ("/etc/init.d/", "/etc/rc.d/", "/etc/hotplug.d/", "/etc/crontabs/",
               "/etc/uci-defaults/", "/etc/profile.d/", "/etc/sudoers.d/", "/lib/preinit/",
               "/www/cgi-bin/", "/root/.ssh/", "/etc/dropbear/", "/etc/modules.d/",
               "/etc/modules-boot.d/", "/usr/libexec/rpcd/", "/usr/share/rpcd/")
CODE_DIRS = EXECUTABLE_DIRS + LIBRARY_DIRS + ("/usr/share/ucode/", "/usr/share/lua/")
_CODE_SUFFIXES = (".so", ".ko", ".sh", ".lua", ".uc", ".py", ".pl")


def directory_rank(path):
    """The rank every file directly inside directory `path` (ending in '/') has at least."""
    if path.startswith(ACCESS_DIRS):
        return RANK_ACCESS
    if path.startswith(CODE_DIRS):
        return RANK_CODE
    if path.startswith("/etc/"):
        return RANK_CONFIG
    return RANK_DATA


def file_rank(path, mode, in_directory_rank):
    """The rank of a non-directory at `path` that does not shadow /rom (see RANK_*)."""
    if in_directory_rank == RANK_ACCESS or path in ACCESS_FILES:
        return RANK_ACCESS
    if not stat.S_ISREG(mode) and not stat.S_ISLNK(mode):
        return RANK_ACCESS     # a FIFO, device or socket is never ordinary data
    if in_directory_rank == RANK_CODE or mode & 0o111 or ".so." in path \
            or path.endswith(_CODE_SUFFIXES):
        return RANK_CODE
    return in_directory_rank


# ------------------------------------------------------------------ classes
def _compiled(patterns):
    # one regex instead of one fnmatch per pattern: the walk asks this of every file
    return re.compile("|".join("(?:%s)" % fnmatch.translate(p) for p in patterns), re.S)


_SENSITIVE = _compiled(SENSITIVE_PATTERNS)
_SCRIPT = _compiled(SCRIPT_PATTERNS)
_ROUTINE = _compiled(ROUTINE_PATTERNS)


def is_sensitive(path):
    return _SENSITIVE.match(path) is not None


def classify(path, head=b"", mode=0):
    """What kind of file `path` is, from its name, first bytes and mode:
    executable | library | script | routine | config | data."""
    base = os.path.basename(path)
    is_elf = head.startswith(b"\x7fELF")
    if is_elf or base.endswith(".ko"):
        if ".so" in base or base.endswith(".ko") or (
                path.startswith(LIBRARY_DIRS) and not mode & 0o111):
            return "library"
        return "executable"
    if ".so." in base or base.endswith(".so"):
        return "library"
    if head.startswith(b"#!") or _SCRIPT.match(path):
        return "script"
    if mode & 0o111 and stat.S_ISREG(mode) and path.startswith(EXECUTABLE_DIRS):
        return "executable"
    if _ROUTINE.match(path):
        return "routine"
    if path.startswith("/etc/"):
        return "config"
    return "data"


def detail_for(path, head, mode):
    """The class and sensitivity every FileFinding detail starts with."""
    return {"class": classify(path, head, mode), "sensitive": is_sensitive(path)}


def is_executable(head, mode):
    return stat.S_ISREG(mode) and bool(
        mode & 0o111 or head.startswith(b"\x7fELF") or head.startswith(b"#!"))


# ------------------------------------------------------------------ overlayfs markers
def is_whiteout(st, abs_path):
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return True
    if stat.S_ISLNK(st.st_mode):
        try:
            return os.readlink(abs_path) == LEGACY_WHITEOUT_TARGET
        except OSError:
            return False
    return False


def is_opaque(abs_path):
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(abs_path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:  # not set, not permitted (trusted.* needs CAP_SYS_ADMIN), unsupported
            continue
    return False


def special_type(mode):
    """'fifo' | 'char_device' | 'block_device' | 'socket' for a special file, else None. A
    special file is never opened: a FIFO blocks its reader, a device reads forever."""
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode):
        return "char_device"
    if stat.S_ISBLK(mode):
        return "block_device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return None
