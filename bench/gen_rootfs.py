"""A seeded file tree shaped like an OpenWrt root file system, for the integrity benchmark.

    python bench/gen_rootfs.py DIR [--files 2000] [--megabytes 40] [--seed 1]

Sizes follow what a squashfs rootfs of a 23.05 image holds: mostly small files (configs, shell
scripts, LuCI templates and translations of a few KB), a middle of shared libraries and kernel
modules (tens to hundreds of KB), and a few large ones (busybox, libcrypto, the kernel modules
of wireless drivers: 0.5-3 MB). Sizes are drawn log-normal (median ~3 KB) and then scaled so the
total is exactly the requested size. Content is seeded random bytes (hashing cost does not depend
on content; random bytes keep any filesystem compression out of the measurement).

change_files(DIR, n, seed) rewrites n files in place (new content, same size, new mtime): the
"10 files changed" case of a re-scan.
"""
import argparse
import json
import os
import random
from pathlib import Path

# (directory, share of files, typical size class) — where files of a rootfs live
LAYOUT = (
    ("etc/config", 0.02, "small"), ("etc/init.d", 0.04, "small"), ("etc/hotplug.d/iface", 0.01, "small"),
    ("etc/uci-defaults", 0.01, "small"), ("lib/functions", 0.01, "small"),
    ("lib/netifd/proto", 0.01, "small"), ("lib/upgrade", 0.01, "small"),
    ("bin", 0.03, "mid"), ("sbin", 0.04, "mid"), ("usr/bin", 0.06, "mid"), ("usr/sbin", 0.05, "mid"),
    ("lib", 0.04, "large"), ("usr/lib", 0.10, "large"), ("usr/lib/lua/luci", 0.08, "small"),
    ("lib/modules/5.15.150", 0.08, "large"), ("usr/share/ucode/luci", 0.07, "small"),
    ("www/luci-static/resources", 0.16, "small"), ("usr/lib/lua/luci/i18n", 0.05, "mid"),
    ("usr/share/acl.d", 0.03, "small"),
)
MEDIAN_BYTES = {"small": 1500, "mid": 12000, "large": 60000}
SIGMA = 1.4
MAX_FILE = 3 * 1024 * 1024


def plan(files, total_bytes, seed):
    """[(relative path, size)] with sum(size) == total_bytes."""
    rng = random.Random(seed)
    entries = []
    weights = [share for _, share, _ in LAYOUT]
    for n in range(files):
        directory, _, size_class = rng.choices(LAYOUT, weights)[0]
        raw = rng.lognormvariate(0, SIGMA) * MEDIAN_BYTES[size_class]
        entries.append(["%s/f%04d%s" % (directory, n, ".so" if size_class == "large" else ""),
                        max(16.0, raw)])
    # scale to the total, capping the largest (a 40 MB rootfs has no 10 MB file)
    for _ in range(8):
        scale = total_bytes / sum(size for _, size in entries)
        for entry in entries:
            entry[1] = min(MAX_FILE, max(16.0, entry[1] * scale))
    sizes = [int(size) for _, size in entries]
    sizes[max(range(files), key=lambda i: sizes[i])] += total_bytes - sum(sizes)
    return [(path, size) for (path, _), size in zip(entries, sizes)]


def generate(dest, files=2000, megabytes=40.0, seed=1):
    dest = Path(dest)
    total = int(megabytes * 1024 * 1024)
    rng = random.Random(seed + 1)
    layout = plan(files, total, seed)
    for path, size in layout:
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rng.randbytes(size))
    sizes = sorted(size for _, size in layout)
    return {"files": files, "bytes": total, "median_file_bytes": sizes[len(sizes) // 2],
            "largest_file_bytes": sizes[-1],
            "under_4k": sum(1 for s in sizes if s < 4096),
            "over_1m": sum(1 for s in sizes if s > 1024 * 1024),
            "paths": [path for path, _ in layout]}


def change_files(dest, count, seed=2):
    """Rewrite `count` files with new bytes (same size) and a newer mtime; returns their paths."""
    dest = Path(dest)
    rng = random.Random(seed)
    paths = sorted(p for p in dest.rglob("*") if p.is_file() and not p.is_symlink())
    chosen = rng.sample(paths, min(count, len(paths)))
    for path in chosen:
        size = path.stat().st_size
        path.write_bytes(rng.randbytes(size))
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    return [str(p.relative_to(dest)) for p in chosen]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--megabytes", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    info = generate(args.dest, args.files, args.megabytes, args.seed)
    info.pop("paths")
    print(json.dumps(info, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
