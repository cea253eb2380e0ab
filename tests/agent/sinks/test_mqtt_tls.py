"""TLS from the agent's side: the broker's certificate is checked against the CA and the host
name (unless mqtt.tls_insecure), and a client certificate is presented when configured."""
import shutil

import pytest

from broker import MosquittoBroker, Recorder, find_mosquitto, make_certificates, missing_tool
from routerwatch.config import load
from routerwatch.contract import Anomaly, decode
from routerwatch.sinks.mqtt import MqttSink

RUN = "00000000000000d1"


@pytest.fixture(autouse=True)
def mosquitto_and_openssl():
    if not (find_mosquitto() and shutil.which("openssl")):
        missing_tool("needs mosquitto and openssl (ci/install-system-packages.sh)")


def tls_broker(tmp_path, server_names, require_certificate=False):
    pki = make_certificates(tmp_path / "pki", clients=("rw-tls",), server_names=server_names)
    extra = "certfile %s\nkeyfile %s\n" % pki["server"]
    if require_certificate:
        extra += "cafile %s\nrequire_certificate true\n" % pki["ca"]
    return MosquittoBroker(tmp_path / "mosquitto", extra=extra).start(), pki


def start_sink(tmp_path, broker, **mqtt):
    raw = {"device_id": "rw-tls", "run_dir": str(tmp_path / "run"),
           "mqtt": dict({"host": broker.host, "port": broker.port, "tls": True}, **mqtt)}
    sink = MqttSink(load(defaults=raw), "rw-tls", RUN)
    sink.reconnect_min, sink.reconnect_max = 0.1, 0.3
    sink.start()
    return sink


def wait_until(condition, timeout=30.0):
    import time
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_an_anomaly_goes_over_tls_to_a_broker_whose_certificate_names_the_host(tmp_path):
    broker, pki = tls_broker(tmp_path, ["IP:127.0.0.1"])
    try:
        recorder = Recorder(broker, ["routerwatch/#"], tls={"ca_certs": pki["ca"]}).start()
        sink = start_sink(tmp_path, broker, ca_file=pki["ca"])
        sent = Anomaly(device="rw-tls", run=RUN, seq=1, time=1700000000.0,
                       kind="integrity.rom_shadowed", severity="critical",
                       summary="/usr/sbin/dropbear differs from /rom", evidence={})
        sink.send_anomaly(sent)
        messages = recorder.wait_for(lambda m: any(x.topic.endswith("/anomaly") for x in m))
        assert [decode(x.payload) for x in messages if x.topic.endswith("/anomaly")] == [sent]
        sink.close()
        recorder.stop()
    finally:
        broker.close()


def test_a_certificate_for_another_host_name_is_refused_unless_tls_insecure(tmp_path):
    broker, pki = tls_broker(tmp_path, ["DNS:broker.example"])
    try:
        checked = start_sink(tmp_path, broker, ca_file=pki["ca"])
        assert wait_until(lambda: checked.counters()["mqtt.connect_failures"] >= 2)
        assert checked.counters()["mqtt.connects"] == 0
        checked.close(timeout=0.5)
        unchecked = start_sink(tmp_path, broker, ca_file=pki["ca"], tls_insecure=True)
        assert wait_until(unchecked.connected)
        unchecked.close()
    finally:
        broker.close()


def test_a_broker_signed_by_another_ca_is_refused(tmp_path):
    broker, _ = tls_broker(tmp_path, ["IP:127.0.0.1"])
    other = make_certificates(tmp_path / "other-pki")
    try:
        sink = start_sink(tmp_path, broker, ca_file=other["ca"], tls_insecure=True)
        assert wait_until(lambda: sink.counters()["mqtt.connect_failures"] >= 2)
        assert sink.counters()["mqtt.connects"] == 0
        sink.close(timeout=0.5)
    finally:
        broker.close()


def test_the_client_certificate_is_presented_when_the_broker_requires_one(tmp_path):
    broker, pki = tls_broker(tmp_path, ["IP:127.0.0.1"], require_certificate=True)
    try:
        sink = start_sink(tmp_path, broker, ca_file=pki["ca"], cert_file=pki["rw-tls"][0],
                          key_file=pki["rw-tls"][1])
        assert wait_until(sink.connected)
        sink.close()
    finally:
        broker.close()
