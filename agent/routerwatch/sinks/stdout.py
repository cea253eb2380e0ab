"""Anomalies as JSON lines on stdout: the agent is useful without a broker."""
import sys
from dataclasses import asdict

from .. import jsonio


class StdoutSink:
    def __init__(self, stream=None, heartbeats=False):
        self.stream = stream or sys.stdout
        self.heartbeats = heartbeats
        self.sent = 0

    def start(self, agent):
        pass

    def _write(self, payload):
        line = jsonio.dumps(asdict(payload)) + "\n"
        binary = getattr(self.stream, "buffer", None)
        if binary is None:
            self.stream.write(line)
        else:
            # The runtime already made every router string wire text; this is the last guard, so
            # that whatever the locale (a router's C locale makes sys.stdout pass undecodable
            # bytes through) the line is valid UTF-8.
            self.stream.flush()
            binary.write(line.encode("utf-8", "backslashreplace"))
        self.stream.flush()

    def send_anomaly(self, anomaly):
        self.sent += 1
        self._write(anomaly)

    def send_heartbeat(self, heartbeat):
        if self.heartbeats:
            self._write(heartbeat)

    def send_inventory(self, inventory):
        pass  # the inventory matters to a collector; on stdout it would only be noise

    def close(self, final=True, clean=True):
        pass

    def spool_depth(self):
        return 0

    def counters(self):
        return {"sent": self.sent}

    def drops(self):
        return {}
