"""Simulated routers for fleet tests, benchmarks and `make fleet-demo`: many device ids, each with
its own agent run, sending what an agent sends (a retained `online` and inventory, numbered
anomalies at QoS 1, heartbeats at QoS 0 every interval) through a real broker.

A few MQTT connections stand in for the fleet (the broker's cost per connection is not what is
tested; the collectors' cost per message is). Every message is real contract JSON.

    fleet = SimulatedFleet(host, port, devices=100, prefix="routerwatch")
    fleet.connect()
    fleet.announce()                        # online + inventory, retained
    fleet.start_heartbeats(interval=5)      # a thread: one heartbeat per device per interval
    fleet.send_anomalies(6000)              # round robin over the devices, seq 1.. per device
    fleet.wait_published()                  # every QoS 1 publish acknowledged by the broker
    fleet.expected()                        # {(device, run): highest anomaly seq}
    fleet.close()

For the fleet detections, any device can be given its own inventory and anomalies:

    fleet.announce(firmware_of=lambda index, device: (firmware_dict, firmware_hash))
    fleet.send(fleet.anomaly(device, "login.bruteforce", "high", {"source_ip": "45.1.2.3"}))
"""
import secrets
import threading
import time

from routerwatch.contract import Anomaly, Heartbeat, Inventory, Status, encode
from routerwatch.sinks.mqtt import new_client

KINDS = (("login.bruteforce", "high"), ("conn.new_listener", "medium"),
         ("login.spray", "high"), ("integrity.rom_shadowed", "critical"),
         ("conn.raw_socket", "low"))


class SimulatedFleet:
    def __init__(self, host, port, devices=100, prefix="routerwatch", connections=4,
                 name="sim", heartbeat_interval=60.0):
        self.host, self.port, self.prefix = host, port, prefix
        self.devices = ["rw-%s-%05d" % (name, n) for n in range(devices)]
        self._index = {device: n for n, device in enumerate(self.devices)}
        self.runs = {device: secrets.token_hex(8) for device in self.devices}
        self.heartbeat_interval = float(heartbeat_interval)
        self._anomaly_seq = dict.fromkeys(self.devices, 0)
        self._heartbeat_seq = dict.fromkeys(self.devices, 0)
        self._clients = []
        self._connections = connections
        self._pending = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeats = None

    # ------------------------------------------------------------------ connections
    def connect(self):
        for n in range(self._connections):
            client = new_client("fleet-sim-%s-%d" % (secrets.token_hex(3), n))
            client.max_inflight_messages_set(1000)
            client.max_queued_messages_set(0)
            client.connect(self.host, self.port, keepalive=60)
            client.loop_start()
            self._clients.append(client)
        return self

    def _client_for(self, index):
        return self._clients[index % len(self._clients)]

    def _publish(self, index, message, qos, retain=False):
        topic = "%s/%s/%s" % (self.prefix, message.device, message.type)
        info = self._client_for(index).publish(topic, encode(message), qos=qos, retain=retain)
        if qos:
            with self._lock:
                self._pending.append(info)

    # ------------------------------------------------------------------ what agents send
    def announce(self, now=None, firmware_of=None):
        """online + inventory of every device, retained. `firmware_of(index, device)` ->
        (firmware dict, firmware_hash); by default three hashes spread over one board."""
        now = now or time.time()
        for index, device in enumerate(self.devices):
            run = self.runs[device]
            self._publish(index, Status(device=device, run=run, seq=1, time=now,
                                        state="online"), qos=1, retain=True)
            if firmware_of is None:
                firmware = {"DISTRIB_RELEASE": "23.05.3", "model": "Simulated AX1800",
                            "board": "sim,ax1800"}
                firmware_hash = "%064x" % (index % 3)
            else:
                firmware, firmware_hash = firmware_of(index, device)
            self._publish(index, Inventory(
                device=device, run=run, seq=1, time=now, agent_version="0.1.0",
                firmware=firmware, firmware_hash=firmware_hash, baseline_hash="",
                package_manager="opkg"), qos=1, retain=True)

    def anomaly(self, device, kind, severity, evidence, summary=None):
        """The device's next anomaly (numbered in its run), to be sent with send()."""
        self._anomaly_seq[device] += 1
        return Anomaly(device=device, run=self.runs[device], seq=self._anomaly_seq[device],
                       time=time.time(), kind=kind, severity=severity,
                       summary=summary or "simulated %s" % kind, evidence=evidence)

    def send(self, *messages):
        """Messages of simulated devices: anomalies at QoS 1, the rest as agents send them."""
        for message in messages:
            index = self._index[message.device]
            if message.type == "anomaly":
                self._publish(index, message, qos=1)
            elif message.type == "heartbeat":
                self._publish(index, message, qos=0)
            else:
                self._publish(index, message, qos=1, retain=True)

    def send_anomalies(self, count, pace=None):
        """`count` anomalies, round robin over the devices; `pace`: seconds between them."""
        for message in self.anomaly_messages(count):
            # by the device's index: each device always on the same connection, so in order
            self._publish(self._index[message.device], message, qos=1)
            if pace:
                time.sleep(pace)

    def anomaly_messages(self, count):
        """The next `count` anomalies the fleet sends (numbered on), without sending them."""
        for n in range(count):
            index = n % len(self.devices)
            device = self.devices[index]
            self._anomaly_seq[device] += 1
            seq = self._anomaly_seq[device]
            kind, severity = KINDS[n % len(KINDS)]
            source = "203.0.113.%d" % (1 + n % 250)
            yield Anomaly(device=device, run=self.runs[device], seq=seq, time=time.time(),
                          kind=kind, severity=severity,
                          summary="simulated %s from %s" % (kind, source),
                          evidence={"source_ip": source, "n": n})

    def send_heartbeats(self, now=None):
        now = now or time.time()
        for index, device in enumerate(self.devices):
            self._heartbeat_seq[device] += 1
            seq = self._heartbeat_seq[device]
            self._publish(index, Heartbeat(
                device=device, run=self.runs[device], seq=seq, time=now,
                interval=self.heartbeat_interval, uptime=seq * self.heartbeat_interval,
                rss_kb=9000 + index % 500, cpu_percent=0.5, spool_depth=0,
                counters={"anomalies": self._anomaly_seq[device]}, drops={}), qos=0)

    def start_heartbeats(self):
        def beat():
            while not self._stop.is_set():
                self.send_heartbeats()
                self._stop.wait(self.heartbeat_interval)
        self._heartbeats = threading.Thread(target=beat, name="fleet-heartbeats", daemon=True)
        self._heartbeats.start()

    def stop_cleanly(self, now=None):
        """Every agent stops cleanly: a retained `offline` with seq > 0."""
        now = now or time.time()
        for index, device in enumerate(self.devices):
            self._publish(index, Status(device=device, run=self.runs[device], seq=2, time=now,
                                        state="offline"), qos=1, retain=True)

    def clear_retained(self):
        """Remove the retained status and inventory (an empty retained message each)."""
        for index, device in enumerate(self.devices):
            for message_type in ("status", "inventory"):
                info = self._client_for(index).publish(
                    "%s/%s/%s" % (self.prefix, device, message_type), b"", qos=1, retain=True)
                with self._lock:
                    self._pending.append(info)
        self.wait_published()

    def wait_published(self, timeout=300.0):
        deadline = time.monotonic() + timeout
        with self._lock:
            pending, self._pending = self._pending, []
        for info in pending:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise TimeoutError("the broker did not acknowledge every publish in %.0f s"
                                   % timeout)

    def sent(self):
        return sum(self._anomaly_seq.values())

    def expected(self):
        """{(device, run): highest anomaly seq sent}."""
        return {(d, self.runs[d]): seq for d, seq in self._anomaly_seq.items() if seq}

    def close(self):
        self._stop.set()
        if self._heartbeats is not None:
            self._heartbeats.join(10)
        for client in self._clients:
            client.disconnect()
            client.loop_stop()
        self._clients = []
