"""A real NATS cluster with MQTT on loopback, for failover tests: nats-server nodes routed to
each other, JetStream on (NATS keeps MQTT sessions and retained messages in JetStream streams,
replicated over the nodes by mqtt.stream_replicas), each node with its own MQTT port.

    cluster = NatsCluster(tmp_path, nodes=3).start()   # returns once every node accepts MQTT
    cluster.nodes[0].kill()                           # a node crash
    cluster.close()                                   # all killed

A node has .host and .port (its MQTT listener), like MosquittoBroker, so Recorder works on it.
"""
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from broker import HOST, BrokerError, free_port


def find_nats_server():
    found = shutil.which("nats-server")
    if found:
        return found
    for candidate in ("/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class NatsNode:
    def __init__(self, workdir, name):
        self.workdir = Path(workdir)
        self.name = name
        self.host = HOST
        self.port = free_port()           # MQTT
        self.client_port = free_port()
        self.cluster_port = free_port()
        self.process = None
        self.log_file = self.workdir / ("%s.log" % name)

    def write_config(self, peers, replicas):
        routes = ", ".join("nats-route://%s:%d" % (HOST, p.cluster_port) for p in peers
                           if p is not self)
        store = self.workdir / ("%s-js" % self.name)
        path = self.workdir / ("%s.conf" % self.name)
        path.write_text(
            'server_name: %s\nlisten: "%s:%d"\n'
            'jetstream { store_dir: "%s" }\n'
            'cluster { name: routerwatch, listen: "%s:%d", routes: [%s] }\n'
            'mqtt { listen: "%s:%d", stream_replicas: %d }\n'
            % (self.name, HOST, self.client_port, store, HOST, self.cluster_port, routes,
               HOST, self.port, replicas))
        return path

    def start(self, binary, config):
        log = open(self.log_file, "ab")
        self.process = subprocess.Popen([binary, "-c", str(config)], stdout=log, stderr=log,
                                        start_new_session=True)
        log.close()

    def kill(self):
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def accepts_connections(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def log_text(self):
        try:
            return self.log_file.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


class NatsCluster:
    def __init__(self, workdir, nodes=3, replicas=3):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = find_nats_server()
        self.replicas = replicas
        self.nodes = [NatsNode(self.workdir, "n%d" % (i + 1)) for i in range(nodes)]

    def start(self, timeout=30.0):
        for node in self.nodes:
            node.start(self.binary, node.write_config(self.nodes, self.replicas))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(node.accepts_connections() for node in self.nodes):
                return self
            time.sleep(0.1)
        logs = "\n".join("%s:\n%s" % (n.name, n.log_text()) for n in self.nodes)
        self.close()
        raise BrokerError("NATS cluster did not start within %.0f s\n%s" % (timeout, logs))

    def close(self):
        for node in self.nodes:
            node.kill()
