"""What every server a test starts has in common: a free loopback port, the process started in
a session of its own (so killing its group kills what it forked), waiting until it is ready, and
killing it. Used by broker.py (mosquitto), natscluster.py (nats-server), pgserver.py
(PostgreSQL) and prometheus.py.

    port = free_port()
    process = start_process([binary, "-c", conf], log_file)
    wait_until_ready(process, lambda: accepts_connections(HOST, port), timeout=10,
                     what="mosquitto", log=lambda: read_log(log_file))
    kill_process(process)                 # SIGKILL to the group; graceful=True sends SIGTERM
"""
import os
import shutil
import signal
import socket
import subprocess
import time

HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """A test server did not start (the message carries the end of its log)."""


def missing_tool(reason):
    """A tool a test needs is not installed: skip, except under CI=true, where a skip would hide
    that the test never ran (ci/install-system-packages.sh installs every tool)."""
    import pytest
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but %s" % reason, pytrace=False)
    pytest.skip(reason)


def find_binary(name, *candidates):
    """Path of an executable: on PATH, else the first of `candidates` that exists (Debian puts
    servers in /usr/sbin or a versioned directory, often not on PATH), else None."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def accepts_connections(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def start_process(argv, log_file, new_session=True):
    """Popen with stdout and stderr appended to log_file and no stdin."""
    log = open(log_file, "ab")
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=new_session)
    finally:
        log.close()


def wait_until_ready(process, ready, timeout, what, log=lambda: "", interval=0.02):
    """Poll ready() until it is true; raise ServerError (with the log) if the process exits
    first or the time runs out. The caller decides whether to kill it then."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise ServerError("%s exited with %s; log:\n%s" % (what, process.returncode, log()))
        if ready():
            return
        if time.monotonic() > deadline:
            raise ServerError("%s was not ready within %.0f s; log:\n%s" % (what, timeout, log()))
        time.sleep(interval)


def kill_process(process, graceful=False, timeout=10):
    """Kill the process's group (a crash: SIGKILL; graceful: SIGTERM, then SIGKILL after
    `timeout`). Nothing happens if it is gone already."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM if graceful else signal.SIGKILL)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


def read_log(path, tail=None):
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return text if tail is None else text[-tail:]
