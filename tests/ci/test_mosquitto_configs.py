"""The documented broker configs in ci/mosquitto/ really work: mosquitto starts with them (moved
to loopback), routers deliver, and the per-device ACL keeps one router out of another's topics."""
import shutil

import pytest

from broker import (MosquittoBroker, Recorder, find_mosquitto, find_mosquitto_passwd, free_port,
                    make_certificates, make_password_file, missing_tool, render_config, REPO)
from routerwatch.config import load
from routerwatch.contract import Anomaly, decode
from routerwatch.sinks.mqtt import PAHO_V2, MqttSink, new_client

CONF = REPO / "ci" / "mosquitto"
ACL = CONF / "routerwatch.acl"
RUN = "00000000000000c1"



@pytest.fixture(autouse=True)
def needs_tools():
    if not (find_mosquitto() and find_mosquitto_passwd() and shutil.which("openssl")):
        missing_tool("needs mosquitto, mosquitto_passwd and openssl "
                     "(ci/install-system-packages.sh)")


def anomaly(device, seq):
    return Anomaly(device=device, run=RUN, seq=seq, time=1700000000.0, kind="login.bruteforce",
                   severity="high", summary="test", evidence={})


def sink_for(tmp_path, broker, device, protocol="3.1.1", **mqtt):
    raw = {"device_id": device, "run_dir": str(tmp_path / device),
           "mqtt": dict({"host": broker.host, "port": broker.port, "protocol": protocol,
                         "tls": True}, **mqtt)}
    sink = MqttSink(load(defaults=raw), device, RUN)
    sink.reconnect_min, sink.reconnect_max = 0.1, 0.3
    sink.watchdog_seconds = 0.2
    sink.start()
    return sink


def wait_until(condition, timeout=30.0):
    import time
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


@pytest.fixture
def pki(tmp_path):
    return make_certificates(tmp_path / "pki", clients=("rw-a", "rw-b", "collector"))


def start(broker_dir, conf, replace):
    port = free_port()
    template = render_config(conf, broker_dir, port, replace)
    return MosquittoBroker(broker_dir, port=port, template=template).start()


# ---------------------------------------------------------------- password file + ACL

@pytest.fixture
def password_broker(tmp_path, pki):
    passwd = make_password_file(tmp_path / "passwd", {
        "collector": "collector-secret", "collector-2": "collector-2-secret",
        "rw-a": "secret-a", "rw-b": "secret-b"})
    broker = start(tmp_path / "mosquitto", CONF / "production-password.conf", {
        "certfile": pki["server"][0], "keyfile": pki["server"][1],
        "password_file": passwd, "acl_file": ACL})
    yield broker
    broker.close()


def test_a_router_cannot_publish_into_another_routers_topics(tmp_path, pki, password_broker):
    tls = {"ca_certs": pki["ca"]}
    collector = Recorder(password_broker, ["routerwatch/#"], username="collector",
                         password="collector-secret", tls=tls).start()
    try:
        sink = sink_for(tmp_path, password_broker, "rw-a", username="rw-a", password="secret-a",
                        ca_file=pki["ca"])
        sink.send_anomaly(anomaly("rw-a", 1))
        collector.wait_for(lambda m: any(x.topic == "routerwatch/rw-a/anomaly" for x in m))
        # rw-a, with its own valid password, tries to speak for rw-b
        forger = new_client("forger", "3.1.1")
        forger.username_pw_set("rw-a", "secret-a")
        forger.tls_set(ca_certs=pki["ca"])
        forger.connect(password_broker.host, password_broker.port)
        forger.loop_start()
        try:
            for kind in ("anomaly", "status", "inventory", "heartbeat"):
                forger.publish("routerwatch/rw-b/%s" % kind, b"forged", qos=1, retain=True)
            # one connection's QoS 1 messages arrive in order: once this one is in, so would be
            # anything of the above that the broker let through
            forger.publish("routerwatch/rw-a/heartbeat", b"marker", qos=1).wait_for_publish(10)
            messages = collector.wait_for(lambda m: any(x.payload == b"marker" for x in m))
        finally:
            forger.loop_stop()
        assert any(x.payload == b"marker" for x in messages)
        assert [x for x in messages if x.topic.startswith("routerwatch/rw-b/")] == []
        assert decode(next(x.payload for x in messages
                           if x.topic == "routerwatch/rw-a/anomaly")).seq == 1
        sink.close()
    finally:
        collector.stop()
    late = Recorder(password_broker, ["routerwatch/rw-b/#", "routerwatch/rw-a/status"],
                    username="collector", password="collector-secret", tls=tls).start()
    try:
        kept = late.wait_for(lambda m: m)
        assert [m.topic for m in kept] == ["routerwatch/rw-a/status"], \
            "no retained message under rw-b either"
    finally:
        late.stop()


WILL_CLIENT = """
import sys
import time
from routerwatch.sinks.mqtt import new_client
client = new_client(sys.argv[1])
client.username_pw_set(sys.argv[1], sys.argv[2])
client.tls_set(ca_certs=sys.argv[5])
client.will_set(sys.argv[3], b"will of " + sys.argv[1].encode(), qos=1, retain=True)
client.connect("127.0.0.1", int(sys.argv[4]))
client.loop_start()
while not client.is_connected():
    time.sleep(0.01)
print("connected", flush=True)
sys.stdin.read()
"""


def test_a_last_will_on_another_routers_topic_is_not_published(tmp_path, pki, password_broker):
    import os
    import signal
    import subprocess
    import sys

    collector = Recorder(password_broker, ["routerwatch/#"], username="collector",
                         password="collector-secret", tls={"ca_certs": pki["ca"]}).start()
    try:
        # first rw-a dies with a will for rw-b, then rw-a dies with a will for itself: the broker
        # handles the first death before the second client even exists, so once the second
        # will is in, the first would be too had the broker let it through
        for user, secret, topic in (("rw-a", "secret-a", "routerwatch/rw-b/status"),
                                    ("rw-a", "secret-a", "routerwatch/rw-a/status")):
            process = subprocess.Popen(
                [sys.executable, "-c", WILL_CLIENT, user, secret, topic,
                 str(password_broker.port), pki["ca"]],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
            try:
                assert process.stdout.readline() == b"connected\n"
            finally:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        messages = collector.wait_for(lambda m: any(x.topic.startswith("routerwatch/rw-a/")
                                                    for x in m))
        assert [(x.topic, x.payload) for x in messages] == [
            ("routerwatch/rw-a/status", b"will of rw-a")]
    finally:
        collector.stop()


def test_a_wrong_password_is_refused(tmp_path, pki, password_broker):
    sink = sink_for(tmp_path, password_broker, "rw-b", username="rw-b", password="guess",
                    ca_file=pki["ca"])
    try:
        assert wait_until(lambda: sink.counters()["mqtt.connect_failures"] >= 2)
        assert sink.counters()["mqtt.connects"] == 0
    finally:
        sink.close(timeout=0.5)


# ---------------------------------------------------------------- mutual TLS + ACL

@pytest.fixture
def mtls_broker(tmp_path, pki):
    broker = start(tmp_path / "mosquitto", CONF / "production.conf", {
        "cafile": pki["ca"], "certfile": pki["server"][0], "keyfile": pki["server"][1],
        "acl_file": ACL})
    yield broker
    broker.close()


def test_mutual_tls_binds_each_router_to_the_topics_of_its_certificate(tmp_path, pki,
                                                                       mtls_broker):
    collector = Recorder(mtls_broker, ["routerwatch/#"], tls={
        "ca_certs": pki["ca"], "certfile": pki["collector"][0],
        "keyfile": pki["collector"][1]}).start()
    try:
        good = sink_for(tmp_path, mtls_broker, "rw-a", ca_file=pki["ca"],
                        cert_file=pki["rw-a"][0], key_file=pki["rw-a"][1])
        good.send_anomaly(anomaly("rw-a", 1))
        messages = collector.wait_for(
            lambda m: any(x.topic == "routerwatch/rw-a/anomaly" for x in m))
        assert decode(next(x.payload for x in messages
                           if x.topic == "routerwatch/rw-a/anomaly")).device == "rw-a"
        # rw-b's certificate, but configured as rw-a: MQTT 5 tells the sink "not authorized"
        liar = sink_for(tmp_path, mtls_broker, "rw-a", protocol="5", ca_file=pki["ca"],
                        cert_file=pki["rw-b"][0], key_file=pki["rw-b"][1])
        good.close()          # the same client id: let the liar keep its connection
        for seq in range(2, 5):
            liar.send_anomaly(anomaly("rw-a", seq))
        if PAHO_V2:
            assert wait_until(lambda: liar.drops()["mqtt.rejected"] == 3)
            assert liar.counters()["sent"] == 0
        else:   # paho 1.6 passes no reason code to on_publish: refused looks like delivered
            assert wait_until(lambda: liar.counters()["sent"] == 3)
        assert liar.spool_depth() == 0, "refused anomalies are not retried forever"
        seqs = [decode(x.payload).seq for x in collector.snapshot("/anomaly")]
        assert seqs == [1]
        liar.close(timeout=0.5)
    finally:
        collector.stop()


def test_a_router_without_a_certificate_is_refused(tmp_path, pki, mtls_broker):
    sink = sink_for(tmp_path, mtls_broker, "rw-a", ca_file=pki["ca"])
    try:
        assert wait_until(lambda: sink.counters()["mqtt.connect_failures"] >= 2)
        assert sink.counters()["mqtt.connects"] == 0
    finally:
        sink.close(timeout=0.5)


# ---------------------------------------------------------------- client ids bound to accounts

def connected_client(broker, client_id, username=None, password=None, tls=None,
                     on_disconnect=None):
    """A started paho client with a clean session, returned once the broker accepted it."""
    import threading
    client = new_client(client_id, "3.1.1", clean=True)
    accepted = threading.Event()
    if username:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set(**tls)

    def on_connect(client, userdata, flags, rc, *rest):
        if int(getattr(rc, "value", rc)) == 0:
            accepted.set()
    client.on_connect = on_connect
    if on_disconnect:
        client.on_disconnect = on_disconnect
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert accepted.wait(10), "the broker did not accept %s" % client_id
    return client


def close(client):
    client.disconnect()
    client.loop_stop()


def queue_for_an_away_collector(broker, collector_login, router_login, count=100):
    """The collector subscribes with a persistent session and goes away; a router publishes
    `count` QoS 1 messages that the broker keeps for it. Returns the payloads sent."""
    Recorder(broker, ["routerwatch/#"], client_id="routerwatch-collector", clean=False,
             **collector_login).start().stop()
    router = connected_client(broker, "rw-a", **router_login)
    try:
        sent = [b"queued %d" % n for n in range(count)]
        for payload in sent:
            router.publish("routerwatch/rw-a/anomaly", payload, qos=1).wait_for_publish(10)
    finally:
        close(router)
    return sent


def collect_queue(broker, collector_login, expected):
    collector = Recorder(broker, ["routerwatch/#"], client_id="routerwatch-collector",
                         clean=False, **collector_login).start()
    try:
        return [m.payload for m in collector.wait_for(lambda m: len(m) >= expected, timeout=20)]
    finally:
        collector.stop()


@pytest.mark.parametrize("stolen_id", ["routerwatch-collector", "collector"])
def test_a_router_using_the_collectors_client_id_cannot_erase_its_queue(
        tmp_path, pki, password_broker, stolen_id):
    tls = {"ca_certs": pki["ca"]}
    login = {"username": "collector", "password": "collector-secret", "tls": tls}
    sent = queue_for_an_away_collector(password_broker, login,
                                       {"username": "rw-a", "password": "secret-a", "tls": tls})
    # rw-b, with its own valid password, claims the collector's client id with a clean session
    close(connected_client(password_broker, stolen_id, username="rw-b", password="secret-b",
                           tls=tls))
    received = collect_queue(password_broker, login, len(sent))
    assert received == sent, "%d of %d queued messages delivered" % (len(received), len(sent))


def test_a_router_using_another_routers_client_id_does_not_disconnect_it(
        tmp_path, pki, password_broker):
    import threading
    tls = {"ca_certs": pki["ca"]}
    collector = Recorder(password_broker, ["routerwatch/#"], username="collector",
                         password="collector-secret", tls=tls).start()
    dropped = threading.Event()
    victim = connected_client(password_broker, "rw-a", username="rw-a", password="secret-a",
                              tls=tls, on_disconnect=lambda *args: dropped.set())
    try:
        attacker = connected_client(password_broker, "rw-a", username="rw-b",
                                    password="secret-b", tls=tls)
        # the broker handled the attacker's CONNECT before its CONNACK; a takeover would have
        # closed the victim's connection by now, which its next round trip would notice
        victim.publish("routerwatch/rw-a/heartbeat", b"still here", qos=1).wait_for_publish(10)
        messages = collector.wait_for(lambda m: any(x.payload == b"still here" for x in m))
        assert any(x.payload == b"still here" for x in messages)
        assert not dropped.is_set(), "the victim router was disconnected"
        close(attacker)
    finally:
        close(victim)
        collector.stop()


def test_with_certificates_a_router_cannot_erase_the_collectors_queue_either(
        tmp_path, pki, mtls_broker):
    def cert(name):
        return {"tls": {"ca_certs": pki["ca"], "certfile": pki[name][0],
                        "keyfile": pki[name][1]}}
    sent = queue_for_an_away_collector(mtls_broker, cert("collector"), cert("rw-a"))
    close(connected_client(mtls_broker, "routerwatch-collector", **cert("rw-b")))
    received = collect_queue(mtls_broker, cert("collector"), len(sent))
    assert received == sent, "%d of %d queued messages delivered" % (len(received), len(sent))


def publish_as_router(broker, tls, count):
    router = connected_client(broker, "rw-a", username="rw-a", password="secret-a", tls=tls)
    try:
        for n in range(count):
            router.publish("routerwatch/rw-a/anomaly", b"%d" % n, qos=1).wait_for_publish(10)
    finally:
        close(router)


def wait_for_numbers(recorders, count):
    import time
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        numbers = sorted(int(m.payload) for r in recorders for m in r.snapshot())
        if numbers == list(range(count)):
            break
        time.sleep(0.05)
    return [sorted(int(m.payload) for m in r.snapshot()) for r in recorders]


def test_a_collector_keeps_its_session_across_restarts_whatever_client_id_it_picks(
        tmp_path, pki, password_broker):
    # a collector that names itself after its process id (a new id on each start) would leave
    # its queue behind in the old session; the account names the session instead
    tls = {"ca_certs": pki["ca"]}
    second = {"username": "collector-2", "password": "collector-2-secret", "tls": tls}
    Recorder(password_broker, ["routerwatch/#"], client_id="collector-pid-100", clean=False,
             **second).start().stop()
    publish_as_router(password_broker, tls, 20)
    back = Recorder(password_broker, ["routerwatch/#"], client_id="collector-pid-200",
                    clean=False, **second).start()
    try:
        assert wait_for_numbers([back], 20) == [list(range(20))]
    finally:
        back.stop()


def test_collectors_of_one_share_group_each_have_an_account_and_split_the_messages(
        tmp_path, pki, password_broker):
    tls = {"ca_certs": pki["ca"]}
    share = ["$share/collectors/routerwatch/+/anomaly"]
    members = [Recorder(password_broker, share, client_id="routerwatch-collector", clean=False,
                        protocol="5", username=user, password=secret, tls=tls).start()
               for user, secret in (("collector", "collector-secret"),
                                    ("collector-2", "collector-2-secret"))]
    try:
        publish_as_router(password_broker, tls, 20)
        first, second = wait_for_numbers(members, 20)
    finally:
        for member in members:
            member.stop()
    # one client id in both configs, yet neither took the other's place: both received
    assert sorted(first + second) == list(range(20)) and first and second
