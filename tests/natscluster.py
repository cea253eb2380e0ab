"""A real NATS cluster with MQTT on loopback, for failover tests: nats-server nodes routed to
each other, JetStream on (NATS keeps MQTT sessions and retained messages in JetStream streams,
replicated over the nodes by mqtt.stream_replicas), each node with its own MQTT port.

    cluster = NatsCluster(tmp_path, nodes=3).start()   # returns once every node accepts MQTT
    cluster.nodes[0].kill()                           # a node crash
    cluster.close()                                   # all killed

A node has .host and .port (its MQTT listener), like MosquittoBroker, so Recorder works on it.
cluster.leaders() names the node leading JetStream's metadata ("meta") and each MQTT stream
($MQTT_sess: sessions, $MQTT_msgs: QoS 1 messages, $MQTT_rmsgs: retained), read from the
nodes' monitoring endpoint (/jsz): which node dies decides what a failover costs.
"""
import json
import urllib.request
from pathlib import Path

from broker import BrokerError
from serverproc import (HOST, ServerError, accepts_connections, find_binary, free_port,
                        kill_process, read_log, start_process, wait_until_ready)


def find_nats_server():
    return find_binary("nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server")


class NatsNode:
    def __init__(self, workdir, name, taken):
        self.workdir = Path(workdir)
        self.name = name
        self.host = HOST
        self.process = None
        self.choose_ports(taken)

    def choose_ports(self, taken):
        """Four distinct free ports, none in `taken` (the other nodes'); a port found free can
        still be taken by another process before the node binds it: start() then tries anew."""
        ports = []
        while len(ports) < 4:
            port = free_port()
            if port not in taken and port not in ports:
                ports.append(port)
        taken.update(ports)
        self.port, self.client_port, self.cluster_port, self.monitor_port = ports   # MQTT first
        self.log_file = self.workdir / ("%s.log" % self.name)

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
            'http: "%s:%d"\n'
            % (self.name, HOST, self.client_port, store, HOST, self.cluster_port, routes,
               HOST, self.port, replicas, HOST, self.monitor_port))
        return path

    def start(self, binary, config):
        self.process = start_process([binary, "-c", str(config)], self.log_file)

    def kill(self):
        process, self.process = self.process, None
        kill_process(process)

    def accepts_connections(self):
        return accepts_connections(self.host, self.port)

    def jetstream_report(self):
        url = "http://%s:%d/jsz?accounts=true&streams=true" % (HOST, self.monitor_port)
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())

    def log_text(self):
        return read_log(self.log_file, tail=3000)


class NatsCluster:
    def __init__(self, workdir, nodes=3, replicas=3):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = find_nats_server()
        self.replicas = replicas
        taken = set()
        self.nodes = [NatsNode(self.workdir, "n%d" % (i + 1), taken) for i in range(nodes)]

    def start(self, timeout=30.0, attempts=3):
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(timeout)
            except ServerError as exc:
                self.close()
                lost_a_port = any("address already in use" in n.log_text() for n in self.nodes)
                if not lost_a_port or attempt == attempts:
                    raise BrokerError(str(exc)) from None
                # another process bound a port between free_port() and the node: new ports, a
                # fresh directory (the failed nodes' JetStream state stays behind)
                self.workdir = self.workdir.parent / ("%s-%d" % (self.workdir.name, attempt))
                self.workdir.mkdir(parents=True, exist_ok=True)
                taken = set()
                for node in self.nodes:
                    node.workdir = self.workdir
                    node.choose_ports(taken)

    def _start_once(self, timeout):
        for node in self.nodes:
            node.start(self.binary, node.write_config(self.nodes, self.replicas))
        wait_until_ready(None, self._all_accept_connections,
                         timeout, "the NATS cluster", interval=0.1,
                         log=lambda: "\n".join("%s:\n%s" % (n.name, n.log_text())
                                               for n in self.nodes))
        return self

    def _all_accept_connections(self):
        exited = [n.name for n in self.nodes if n.process.poll() is not None]
        if exited:      # a node that could not bind its ports stops at once: no use waiting
            raise ServerError("NATS node %s exited; log:\n%s" % (", ".join(exited), "\n".join(
                "%s:\n%s" % (n.name, n.log_text()) for n in self.nodes)))
        return all(n.accepts_connections() for n in self.nodes)

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def leaders(self):
        """{"meta": node name, stream name: node name} as a running node reports them."""
        for node in self.nodes:
            if node.process is None:
                continue
            report = node.jetstream_report()
            leaders = {"meta": report.get("meta_cluster", {}).get("leader")}
            for account in report.get("account_details") or []:
                for stream in account.get("stream_detail") or []:
                    leaders[stream["name"]] = (stream.get("cluster") or {}).get("leader")
            return leaders
        return {}

    def close(self):
        for node in self.nodes:
            node.kill()
