"""Sinks: where numbered Anomalies, Heartbeats and the Inventory go.

    stdout.py   StdoutSink   JSON lines on stdout (no broker configured, --once, check runs)
    mqtt.py     MqttSink     paho-mqtt publisher with the bounded store-and-forward spool
    homeassistant.py         Home Assistant MQTT discovery, sent by MqttSink when switched on

A sink offers start(agent), send_anomaly(a), send_heartbeat(h), send_inventory(i), close(),
spool_depth(), counters(), drops(). None of them may block on the network.
"""


def build_sink(config, device_id, run_id, stream=None):
    if config.mqtt.host:
        from .mqtt import MqttSink
        return MqttSink(config, device_id, run_id)
    from .stdout import StdoutSink
    return StdoutSink(stream)
