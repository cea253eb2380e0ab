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

