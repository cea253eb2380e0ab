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
    def __init__(self, workdir, name):
        self.workdir = Path(workdir)
        self.name = name
        self.host = HOST
        self.port = free_port()           # MQTT
        self.client_port = free_port()
        self.cluster_port = free_port()
        self.monitor_port = free_port()   # HTTP monitoring: /jsz
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
        self.nodes = [NatsNode(self.workdir, "n%d" % (i + 1)) for i in range(nodes)]

    def start(self, timeout=30.0):
        for node in self.nodes:
            node.start(self.binary, node.write_config(self.nodes, self.replicas))
        try:
            wait_until_ready(None, lambda: all(n.accepts_connections() for n in self.nodes),
                             timeout, "the NATS cluster", interval=0.1,
                             log=lambda: "\n".join("%s:\n%s" % (n.name, n.log_text())
                                                   for n in self.nodes))
        except ServerError as exc:
            self.close()
            raise BrokerError(str(exc)) from None
        return self

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
