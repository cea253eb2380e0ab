"""Messages as an agent would send them, for the collector's tests."""
from routerwatch.contract import Anomaly, Heartbeat, Inventory, Status, encode

PREFIX = "routerwatch"
DEVICE = "rw-0a1b2c3d4e5f"
RUN = "0123456789abcdef"
T0 = 1764000000.0


def anomaly(seq, device=DEVICE, run=RUN, kind="login.bruteforce", severity="high",
            source="203.0.113.7", time=T0, **extra):
    return Anomaly(device=device, run=run, seq=seq, time=time + seq, kind=kind,
                   severity=severity,
                   summary="%d failed logins from %s in 60 s" % (10, source),
                   evidence=dict({"source_ip": source, "failures": 10, "service": "dropbear"},
                                 **extra))


def heartbeat(seq, device=DEVICE, run=RUN, interval=60.0, time=T0):
    return Heartbeat(device=device, run=run, seq=seq, time=time + seq * interval,
                     interval=interval, uptime=seq * interval, rss_kb=9000, cpu_percent=0.5,
                     spool_depth=0, counters={"lines": 10 * seq, "anomalies": 1},
                     drops={"incidents": 0})


def status(state, seq, device=DEVICE, run=RUN, time=T0):
    return Status(device=device, run=run, seq=seq, time=time, state=state)


def inventory(seq=1, device=DEVICE, run=RUN, time=T0):
    return Inventory(device=device, run=run, seq=seq, time=time, agent_version="0.1.0",
                     firmware={"DISTRIB_RELEASE": "23.05.3", "model": "TP-Link Archer C7 v5",
                               "board": "tplink,archer-c7-v5"},
                     firmware_hash="a" * 64, baseline_hash="", package_manager="opkg")


def wire(message, prefix=PREFIX):
    """(topic, payload bytes) exactly as the agent publishes the message."""
    return "%s/%s/%s" % (prefix, message.device, message.type), encode(message)
