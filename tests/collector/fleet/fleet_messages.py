"""Fleet-sized message sets for the fleet detections' tests: many devices, each its own run."""
from routerwatch.contract import Anomaly, Inventory, encode

T0 = 1764000000.0


def device_name(n, name="dev"):
    return "rw-%s-%05d" % (name, n)


def run_of(device):
    return ("%016x" % (abs(hash(device)) % (1 << 64)))[:16]


def login_anomaly(device, seq, source, kind="login.bruteforce", inside=False, time=T0):
    evidence = {"source_ip": source, "failures": 10, "service": "dropbear", "inside": inside}
    if kind == "login.spray":
        evidence = {"sources": [source], "distinct_sources": 1, "distinct_users": 3}
    return Anomaly(device=device, run=run_of(device), seq=seq, time=time + seq, kind=kind,
                   severity="high", summary="failed logins from %s" % source, evidence=evidence)


def program_anomaly(device, seq, digest, kind="conn.new_listener", port=7777, time=T0, **extra):
    evidence = dict({"pid": 1234, "exe": "/tmp/.x/dropbearx", "sha256": digest}, **extra)
    if port is not None:
        evidence["port"] = port
    return Anomaly(device=device, run=run_of(device), seq=seq, time=time + seq, kind=kind,
                   severity="high", summary="new listener", evidence=evidence)


def firmware_inventory(device, firmware_hash, board="tplink,archer-c7-v5", release="23.05.3",
                       revision="r23809-234f1a2efa", kernel="5.15.150", seq=1, time=T0):
    return Inventory(device=device, run=run_of(device), seq=seq, time=time, agent_version="0.1.0",
                     firmware={"DISTRIB_RELEASE": release, "DISTRIB_REVISION": revision,
                               "board": board, "model": "TP-Link Archer C7 v5",
                               "kernel": kernel},
                     firmware_hash=firmware_hash, baseline_hash="", package_manager="opkg")


def feed(ingest, messages, now=T0):
    """Each message accepted by ingest on its own topic, then the batch stored: returns the
    anomalies newly stored (the messages' and the fleet's)."""
    for m in messages:
        assert ingest.handle("routerwatch/%s/%s" % (m.device, m.type), encode(m), now) == \
            "accepted"
    return ingest.flush(now)
