"""Real routers for the fleet tests: `routerwatch-agent` processes on copies of the attacked
fixture tree (tests/fixtures/router-attacked, built by fixtures/build_tree.py), all carrying the
same implant: one program (IMPLANT_SHA256) running from /tmp as pid 4242 (its listeners and raw
socket are in the tree's /proc) and dropped executable in the overlay as /usr/bin/.kworker,
which no package owns. The tree also carries the fixture's replaced /usr/sbin/dropbear and a
tcpdump failing its checksum (tampered_programs()).

The fixture's pid 4242 runs "/tmp/.x (deleted)": a deleted file cannot be in a tree, so the
implanted copy runs /tmp/.x, present in the tree for the agent to hash.
"""
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fixtures.build_tree import build_tree

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "demo"))
import attack_replay  # noqa: E402

# an ELF header and a body no other program has: what the agents hash must be this file
IMPLANT_PROGRAM = b"\x7fELF\x01\x01\x01\x00" + b"routerwatch fleet test implant\x00" * 64
IMPLANT_SHA256 = hashlib.sha256(IMPLANT_PROGRAM).hexdigest()
IMPLANT_PID = 4242
DROPPED = "usr/bin/.kworker"
AGENT = str(Path(sys.executable).parent / "routerwatch-agent")


def tampered_programs():
    """{sha256: path} of the fixture's overlay programs that differ from what was installed."""
    upper = Path(__file__).resolve().parents[2] / "fixtures" / "router-attacked" / "overlay" / \
        "upper"
    return {hashlib.sha256((upper / path).read_bytes()).hexdigest(): "/" + path
            for path in ("usr/sbin/dropbear", "usr/sbin/tcpdump")}


def implanted_tree(dest):
    tree = build_tree("router-attacked", dest)
    program = tree / "tmp" / ".x"
    program.write_bytes(IMPLANT_PROGRAM)
    program.chmod(0o755)
    exe = tree / "proc" / str(IMPLANT_PID) / "exe"
    exe.unlink()
    os.symlink("/tmp/.x", exe)
    dropped = tree / "overlay" / "upper" / DROPPED
    dropped.parent.mkdir(parents=True, exist_ok=True)
    dropped.write_bytes(IMPLANT_PROGRAM)
    dropped.chmod(0o755)
    return tree


class RealRouter:
    """One agent on its own implanted tree, publishing to the broker as `device`."""

    def __init__(self, workdir, device):
        self.device = device
        self.workdir = Path(workdir)
        self.tree = implanted_tree(self.workdir / "tree")
        self.log_file = self.tree / "var" / "log" / "messages"
        self.process = None

    def start(self, port):
        state = self.workdir / "state"
        state.mkdir(exist_ok=True)
        with open(self.workdir / "agent.log", "ab") as err:
            self.process = subprocess.Popen(
                [AGENT, "--root", str(self.tree), "--log-file", str(self.log_file),
                 "--set", "mqtt.host=127.0.0.1", "--set", "mqtt.port=%d" % port,
                 "--set", "device_id=" + self.device, "--set", "state_dir=%s" % state,
                 "--set", "run_dir=%s" % state, "--set", "intervals.heartbeat=5"],
                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        return self

    def brute_force(self, source, failures=12):
        """`failures` bad root passwords from `source` in the router's log, stamped now."""
        replay = attack_replay.Replay()
        for _ in range(failures):
            replay.bad_password("root", source)
        with open(self.log_file, "a") as handle:
            for where, message in replay.steps:
                handle.write(attack_replay.logread_line(time.time(), where, message))

    def log(self):
        return (self.workdir / "agent.log").read_text(errors="replace")

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
