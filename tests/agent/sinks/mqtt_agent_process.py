"""A minimal agent process for the MQTT tests, so a test can kill it like a crash would.

    python mqtt_agent_process.py CONFIG.json RUN_ID FIRST_SEQ COUNT

Starts an MqttSink from the config, hands it COUNT anomalies numbered from FIRST_SEQ, prints
"queued <count> depth <spool depth>", then keeps publishing until it is killed or its stdin
closes (then it closes the sink cleanly and prints "closed").
"""
import sys
import time

from routerwatch.config import load
from routerwatch.contract import Anomaly
from routerwatch.sinks.mqtt import MqttSink


def main(config_path, run_id, first, count):
    config = load(config_path)
    sink = MqttSink(config, config.device_id, run_id)
    sink.reconnect_min, sink.reconnect_max = 0.1, 0.5
    sink.start()
    for seq in range(first, first + count):
        sink.send_anomaly(Anomaly(
            device=config.device_id, run=run_id, seq=seq, time=time.time(),
            kind="login.bruteforce", severity="high", summary="test anomaly %d" % seq,
            evidence={"source_ip": "192.0.2.%d" % (seq % 250)}))
    print("queued %d depth %d" % (count, sink.spool_depth()), flush=True)
    sys.stdin.read()
    sink.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
