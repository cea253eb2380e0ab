"""A directory that stands in for an OpenWrt router, for running the package's shell scripts
under busybox ash with the test doubles in tests/openwrt/shim (functions.sh, procd.sh,
rc.common, uci, logger).

    router = RouterDouble(tmp_path)
    router.write_uci(text)                 # /etc/config/routerwatch
    result = router.initscript("start")    # busybox ash rc.common /etc/init.d/routerwatch start
    router.procd_calls()                   # [("procd_set_param", ("command", ...)), ...]
    router.syslog()                        # what logger wrote
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from broker import missing_tool

REPO = Path(__file__).resolve().parents[2]
SHIM = Path(__file__).resolve().parent / "shim"
FILES = REPO / "files"


def busybox():
    path = shutil.which("busybox")
    if not path:
        missing_tool("busybox is not installed (ci/install-system-packages.sh installs "
                     "busybox-static)")
    return path


class RouterDouble:
    def __init__(self, tmp_path):
        self.base = Path(tmp_path)
        self.root = self.base / "root"             # the live router's /
        self.run_dir = self.base / "run"            # stands in for /var/run/routerwatch
        self.procd_log = self.base / "procd.log"
        self.syslog_file = self.base / "syslog"
        self.running = False
        for sub in ("etc/config", "etc/init.d", "etc/uci-defaults"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.init_path = self.root / "etc/init.d/routerwatch"
        shutil.copy(FILES / "routerwatch.init", self.init_path)
        self.init_path.chmod(0o755)
        self.write_uci((FILES / "routerwatch.config").read_text(encoding="utf-8"))

    @property
    def uci_path(self):
        return self.root / "etc/config/routerwatch"

    def write_uci(self, text):
        self.uci_path.write_text(text, encoding="utf-8")
        self.uci_path.chmod(0o600)

    def env(self, **extra):
        env = {
            "PATH": "%s:%s" % (SHIM / "bin", os.environ.get("PATH", "/usr/bin:/bin")),
            "SHIM_DIR": str(SHIM),
            "SHIM_ROOT": str(self.root),
            "SHIM_PROCD_LOG": str(self.procd_log),
            "SHIM_PROCD_RUNNING": "1" if self.running else "0",
            "SHIM_SYSLOG": str(self.syslog_file),
            "SHIM_PYTHON": sys.executable,
            "SHIM_PROG": str(SHIM / "bin/routerwatch-agent"),
            "SHIM_RUN_DIR": str(self.run_dir),
            "UCI_CONFIG_DIR": str(self.root / "etc/config"),
            "PYTHONPATH": str(REPO / "agent"),
            "HOME": str(self.base),
        }
        env.update(extra)
        return env

    def initscript(self, action, **env):
        """Run the installed init script with one rc.common action."""
        return self.sh(str(SHIM / "etc/rc.common"), str(self.init_path), action, **env)

    def sh(self, *args, **env):
        return subprocess.run([busybox(), "ash", *args], env=self.env(**env), cwd=str(self.base),
                              capture_output=True, text=True, timeout=120)

    def procd_calls(self):
        if not self.procd_log.exists():
            return []
        calls = []
        for line in self.procd_log.read_text().splitlines():
            name, *args = line.split("\x1f")
            calls.append((name, tuple(args)))
        return calls

    def clear_procd_log(self):
        if self.procd_log.exists():
            self.procd_log.unlink()

    def syslog(self):
        return self.syslog_file.read_text() if self.syslog_file.exists() else ""

    @property
    def config_json(self):
        return self.run_dir / "config.json"
