"""The test broker helper itself: starts, stops, comes back on the same port, always dies."""
import socket


def test_broker_accepts_then_refuses_then_accepts_again_on_the_same_port(mosquitto_broker):
    port = mosquitto_broker.port
    assert mosquitto_broker.accepts_connections()
    mosquitto_broker.stop()
    assert not mosquitto_broker.accepts_connections()
    mosquitto_broker.start()
    assert mosquitto_broker.port == port and mosquitto_broker.accepts_connections()
    assert mosquitto_broker.starts == 2


def test_broker_listens_on_loopback_only(mosquitto_broker):
    text = mosquitto_broker.conf_file.read_text()
    assert "listener %d 127.0.0.1" % mosquitto_broker.port in text
    with socket.create_connection(("127.0.0.1", mosquitto_broker.port), timeout=2) as sock:
        assert sock.getpeername()[0] == "127.0.0.1"


def test_a_nats_cluster_whose_port_was_taken_starts_on_fresh_ports(tmp_path):
    """Another process binding a chosen port before its node does (ports are chosen free, then
    bound by nats-server later): the cluster starts again on new ports instead of failing."""
    from natscluster import NatsCluster, find_nats_server
    from serverproc import HOST, missing_tool
    if not find_nats_server():
        missing_tool("nats-server is not installed (ci/install-system-packages.sh installs it)")
    cluster = NatsCluster(tmp_path / "nats", nodes=2, replicas=1)
    squatter = socket.socket()
    squatter.bind((HOST, cluster.nodes[1].cluster_port))
    squatter.listen()
    taken = squatter.getsockname()[1]
    try:
        cluster.start()
        ports = {p for n in cluster.nodes for p in (n.port, n.client_port, n.cluster_port,
                                                    n.monitor_port)}
        assert taken not in ports and len(ports) == 8
        assert all(n.accepts_connections() for n in cluster.nodes)
    finally:
        cluster.close()
        squatter.close()
