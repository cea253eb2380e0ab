"""A real mosquitto broker on a free loopback port, for integration tests.

    broker = MosquittoBroker(tmp_path)      # config from ci/mosquitto/test.conf
    broker.start()                          # returns once the port accepts connections
    broker.stop(); broker.start()           # same port again: a broker outage for fault tests
    broker.close()                          # always kills the process (the fixture does this)

The pytest fixture `mosquitto_broker` (tests/conftest.py) gives a started broker and skips the
test, with the reason, when mosquitto is not installed (ci/install-system-packages.sh installs it).

Extra config lines (password_file, acl_file ...) go in through `extra`; another template through
`template`. The template's fields are {port}, {log_file}, {user} and {extra}.
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST_TEMPLATE = REPO / "ci" / "mosquitto" / "test.conf"
HOST = "127.0.0.1"
START_TIMEOUT = 10.0


def find_mosquitto():
    """Path of the mosquitto binary, or None (Debian puts it in /usr/sbin, often not on PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def find_mosquitto_passwd():
    found = shutil.which("mosquitto_passwd")
    if found:
        return found
    for candidate in ("/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class BrokerError(RuntimeError):
    pass


class MosquittoBroker:
    def __init__(self, workdir, port=None, template=TEST_TEMPLATE, extra="", binary=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = binary or find_mosquitto()
        if not self.binary:
            raise BrokerError("mosquitto is not installed")
        self.host = HOST
        self.port = port or free_port()
        self.log_file = self.workdir / "mosquitto.log"
        self.conf_file = self.workdir / "mosquitto.conf"
        self.conf_file.write_text(Path(template).read_text().format(
            port=self.port, log_file=self.log_file,
            user=pwd.getpwuid(os.getuid()).pw_name, extra=extra))
        self.process = None
        self.starts = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout=START_TIMEOUT):
        if self.running():
            return self
        stderr = open(self.workdir / "mosquitto.stderr", "ab")
        try:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.conf_file)], stdin=subprocess.DEVNULL,
                stdout=stderr, stderr=stderr, start_new_session=True)
        finally:
            stderr.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError("mosquitto exited with %s; log:\n%s"
                                  % (self.process.returncode, self.log_text()))
            if self.accepts_connections():
                return self
            time.sleep(0.02)
        self.close()
        raise BrokerError("mosquitto did not accept connections on %s:%d within %.0f s; log:\n%s"
                          % (self.host, self.port, timeout, self.log_text()))

    def stop(self):
        """Kill the broker hard (no clean shutdown), like a crash or a network cut."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)

    def restart(self):
        self.stop()
        return self.start()

    close = stop

    def running(self):
        return self.process is not None and self.process.poll() is None

    def accepts_connections(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    # ------------------------------------------------------------------ helpers
    def log_text(self):
        parts = []
        for name in (self.log_file, self.workdir / "mosquitto.stderr"):
            try:
                parts.append(Path(name).read_text(errors="replace"))
            except OSError:
                pass
        return "".join(parts)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "MosquittoBroker(%s:%d, running=%s)" % (self.host, self.port, self.running())


def make_password_file(path, users):
    """mosquitto_passwd-hashed password file for {user: password}."""
    tool = find_mosquitto_passwd()
    if not tool:
        raise BrokerError("mosquitto_passwd is not installed")
    path = Path(path)
    path.write_text("".join("%s:%s\n" % (u, p) for u, p in users.items()))
    subprocess.run([tool, "-U", str(path)], check=True, capture_output=True)
    return path
