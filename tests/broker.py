"""A real mosquitto broker on a free loopback port, for integration tests.

    broker = MosquittoBroker(tmp_path)      # config from ci/mosquitto/test.conf
    broker.start()                          # returns once the port accepts connections
    broker.stop(); broker.start()           # same port again: a broker outage for fault tests
    broker.close()                          # always kills the process (the fixture does this)

The pytest fixture `mosquitto_broker` (tests/conftest.py) gives a started broker and skips the
test, with the reason, when mosquitto is not installed (ci/install-system-packages.sh installs it).

Extra config lines (password_file, acl_file ...) go in through `extra`; another template through
`template`. The template's fields are {port}, {log_file}, {user}, {extra}, {persistence} and
{workdir}. With persistent=True and stop(graceful=True) the broker keeps sessions, retained and
queued messages across a restart, so a subscriber misses nothing while the publisher is tested.

    recorder = Recorder(broker, ["routerwatch/#"]).start()   # subscribed when start() returns
    recorder.wait_for(lambda msgs: len(msgs) >= 3)
    recorder.messages   -> [Message(topic, payload, qos, retain), ...]
"""
import os
import pwd
import shutil
import subprocess
import threading
import time
from collections import namedtuple
from pathlib import Path

from serverproc import (HOST, ServerError, accepts_connections, find_binary, free_port,  # noqa
                        kill_process, missing_tool, start_process, wait_until_ready)

REPO = Path(__file__).resolve().parent.parent
TEST_TEMPLATE = REPO / "ci" / "mosquitto" / "test.conf"
START_TIMEOUT = 10.0


def find_mosquitto():
    """Path of the mosquitto binary, or None (Debian puts it in /usr/sbin, often not on PATH)."""
    return find_binary("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto_passwd():
    return find_binary("mosquitto_passwd", "/usr/bin/mosquitto_passwd",
                       "/usr/sbin/mosquitto_passwd")


class BrokerError(ServerError):
    pass


class MosquittoBroker:
    def __init__(self, workdir, port=None, template=TEST_TEMPLATE, extra="", binary=None,
                 persistent=False):
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
            user=pwd.getpwuid(os.getuid()).pw_name, extra=extra,
            persistence="true" if persistent else "false", workdir=self.workdir))
        self.process = None
        self.starts = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout=START_TIMEOUT):
        if self.running():
            return self
        self.process = start_process([self.binary, "-c", str(self.conf_file)],
                                     self.workdir / "mosquitto.stderr")
        self.starts += 1
        try:
            wait_until_ready(self.process, self.accepts_connections, timeout,
                             "mosquitto on %s:%d" % (self.host, self.port), self.log_text)
        except ServerError as exc:
            if self.process.poll() is None:
                self.close()
            raise BrokerError(str(exc)) from None
        return self

    def stop(self, graceful=False):
        """Kill the broker hard (like a crash or a network cut), or with graceful=True let it
        shut down (SIGTERM), which writes its persistence file when persistent."""
        process, self.process = self.process, None
        kill_process(process, graceful)

    def restart(self, graceful=False):
        self.stop(graceful)
        return self.start()

    def close(self):
        self.stop()

    def running(self):
        return self.process is not None and self.process.poll() is None

    def accepts_connections(self):
        return accepts_connections(self.host, self.port)

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


Message = namedtuple("Message", "topic payload qos retain")


class Recorder:
    """An MQTT client that subscribes to `topics` (QoS 1) and records every message it gets.

    It reconnects on its own after a broker restart. With clean=False (and a persistent broker
    stopped gracefully) its session survives the restart, so nothing published meanwhile is lost.
    """

    def __init__(self, broker, topics=("#",), client_id=None, clean=True, username=None,
                 password=None, tls=None, protocol="3.1.1"):
        from routerwatch.sinks.mqtt import new_client

        self.broker = broker
        self.topics = list(topics)
        self.client = new_client(client_id or "recorder-%d" % id(self), protocol, clean=clean)
        if username:
            self.client.username_pw_set(username, password)
        if tls:   # keyword arguments of paho's tls_set: ca_certs, certfile, keyfile
            import ssl
            self.client.tls_set(tls_version=ssl.PROTOCOL_TLS_CLIENT, **tls)
        self.granted = []
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.messages = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()

    def _on_connect(self, client, userdata, flags, rc, *rest):
        client.subscribe([(t, 1) for t in self.topics])

    def _on_subscribe(self, client, userdata, mid, granted, *rest):
        # paho 2: reason codes (objects with .value); paho 1.6: granted QoS ints (v3.1.1)
        self.granted = [int(getattr(g, "value", g)) for g in granted]
        self._subscribed.set()

    def _on_message(self, client, userdata, message):
        with self._lock:
            self.messages.append(Message(message.topic, bytes(message.payload), message.qos,
                                         bool(message.retain)))

    def start(self, timeout=START_TIMEOUT):
        self.client.connect_async(self.broker.host, self.broker.port, 30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise BrokerError("recorder could not subscribe to %s" % self.topics)
        return self

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self, topic_suffix=None):
        with self._lock:
            return [m for m in self.messages
                    if topic_suffix is None or m.topic.endswith(topic_suffix)]

    def wait_for(self, predicate, timeout=30.0):
        """Wait until predicate(messages so far) is true; returns the messages (check them!)."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.snapshot()
            if predicate(messages) or time.monotonic() > deadline:
                return messages
            time.sleep(0.02)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def render_config(path, workdir, port, replace=None):
    """A production config from ci/mosquitto/ made runnable on loopback: the listener moves to
    127.0.0.1:<port>, persistence and logging into workdir, and each option named in `replace`
    gets the given value (e.g. {"cafile": "/tmp/x/ca.crt"}). Returns a MosquittoBroker template
    (a file without format fields)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    replace = dict(replace or {})
    replace.update({"listener": "%d %s" % (port, HOST), "persistence_location": "%s/" % workdir})
    lines = []
    for line in Path(path).read_text().splitlines():
        key = line.split(" ", 1)[0]
        if key in ("log_dest", "log_type"):
            continue
        if key in replace:
            line = "%s %s" % (key, replace[key])
        lines.append(line.replace("{", "{{").replace("}", "}}"))
    lines += ["log_dest file {log_file}", "log_type all", "user {user}", "{extra}"]
    template = workdir / ("rendered-" + Path(path).name)
    template.write_text("\n".join(lines) + "\n")
    return template


def make_certificates(directory, clients=(), server_names=("IP:127.0.0.1",)):
    """A throw-away CA, a broker certificate for `server_names` (subjectAltName entries) and one
    client certificate per name in `clients` (CN = the name). Needs the openssl command.
    Returns {"ca": path, "server": (cert, key), <client>: (cert, key)}."""
    tool = shutil.which("openssl")
    if not tool:
        raise BrokerError("openssl is not installed")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args):
        subprocess.run([tool] + list(args), check=True, capture_output=True, cwd=directory)

    key_options = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *key_options, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=routerwatch test CA")
    out = {"ca": str(directory / "ca.crt")}

    def issue(name, cn, extensions):
        run("req", *key_options, "-keyout", name + ".key", "-out", name + ".csr", "-subj",
            "/CN=" + cn)
        (directory / (name + ".ext")).write_text(extensions)
        run("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext")
        return str(directory / (name + ".crt")), str(directory / (name + ".key"))

    out["server"] = issue("server", "routerwatch test broker",
                          "subjectAltName=%s\nextendedKeyUsage=serverAuth\n"
                          % ",".join(server_names))
    for client in clients:
        out[client] = issue("client-" + client, client, "extendedKeyUsage=clientAuth\n")
    for key in directory.glob("*.key"):
        key.chmod(0o644)   # mosquitto may read them after dropping to another user
    return out
