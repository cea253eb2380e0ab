"""Message decoding: contract.decode() beside json.loads() of the same bytes, per payload.

    python bench/bench_contract.py [--quick] [--rounds R] [--before DIR]

The collector decodes every MQTT message with contract.decode(): strict JSON (NaN refused,
duplicate keys refused at any depth), the fields checked, a frozen payload object made. Its
reference is the standard library's json.loads() of the same bytes, which does none of that.
Contenders take turns (harness.interleaved), a batch of calls each per round, timed in CPU
seconds of the process; printed: µs per payload (median of the rounds) and the ratio
decode / json.loads per round (median).

--before DIR: also time decode() of another checkout's agent (DIR holds routerwatch/, e.g.
/work/main/agent), in the same rounds: the before/after of a change to the contract.
"""
import argparse
import importlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))
from routerwatch import contract  # noqa: E402
from routerwatch.contract import Anomaly, Heartbeat, Inventory  # noqa: E402

RUN = "0123456789abcdef"
NOW = 1795883416.9297721


def payloads():
    """(name, message type, bytes) as an agent sends them."""
    anomaly = Anomaly(device="sim-0001", run=RUN, seq=5, time=NOW, kind="login.bruteforce",
                      severity="high", summary="simulated login.bruteforce from 203.0.113.5",
                      evidence={"source_ip": "203.0.113.5", "n": 5})
    ipv6 = Anomaly(device="rw-aa:bb:cc:dd:ee:ff", run=RUN, seq=9, time=NOW, kind="conn.new_port",
                   severity="medium", summary="new listening port 8443/tcp on 2001:db8::1",
                   evidence={"address": "2001:db8::1", "port": 8443, "proto": "tcp",
                             "program": "/usr/sbin/uhttpd", "users": ["root"]})
    escaped = Anomaly(device="sim-0001", run=RUN, seq=6, time=NOW, kind="login.bruteforce",
                      severity="high", summary="failed logins for user \"r\u00f6\u00f6t\"",
                      evidence={"user": "r\u00f6\u00f6t\\x00", "n": 5})
    heartbeat = Heartbeat(device="sim-0001", run=RUN, seq=7, time=NOW, interval=60.0,
                          uptime=1234.5, rss_kb=9000, cpu_percent=1.5, spool_depth=0,
                          counters={"lines": 100, "flows": 20, "files": 3, "sent": 5},
                          drops={"spool": 0})
    inventory = Inventory(device="sim-0001", run=RUN, seq=1, time=NOW, agent_version="0.1.0",
                          firmware={"DISTRIB_ID": "OpenWrt", "DISTRIB_RELEASE": "23.05.3",
                                    "board": "x86/64", "kernel": "5.15.150"},
                          firmware_hash="a" * 64, baseline_hash="b" * 64, package_manager="opkg")
    return [
        ("anomaly", "anomaly", contract.encode(anomaly)),
        ("heartbeat", "heartbeat", contract.encode(heartbeat)),
        ("inventory", "inventory", contract.encode(inventory)),
        ("anomaly, colons in strings", "anomaly", contract.encode(ipv6)),
        # the escaped quote and backslash take decode's fully checked way
        ("anomaly, escapes in strings", "anomaly", contract.encode(escaped)),
    ]


def load_before(agent_dir, workdir):
    """contract module of another checkout, imported under another package name."""
    target = Path(workdir) / "routerwatch_before"
    shutil.copytree(Path(agent_dir) / "routerwatch", target)
    sys.path.insert(0, str(workdir))
    return importlib.import_module("routerwatch_before.contract")


def timed(fn, data, kind, calls):
    # CPU time of this process: on a shared machine a batch that loses its core for a while
    # would otherwise count the other process's time as its own
    def run():
        start = time.process_time()
        for _ in range(calls):
            fn(data, kind)
        return time.process_time() - start
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, default=25, help="rounds per payload (default 25)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per batch (default 2000)")
    parser.add_argument("--before", metavar="DIR",
                        help="also time decode() of the routerwatch package in DIR")
    args = parser.parse_args()
    rounds, calls = (3, 200) if args.quick else (args.rounds, args.calls)
    workdir = tempfile.mkdtemp(prefix="routerwatch-bench-contract-")
    try:
        before = load_before(args.before, workdir) if args.before else None
        print("machine: %s" % json.dumps(harness.machine_info()))
        print("%d rounds of %d calls per contender, interleaved\n" % (rounds, calls))
        header = "| payload | bytes | json.loads (reference) | decode | ratio decode/json.loads |"
        rule = "| --- | --- | --- | --- | --- |"
        if before:
            header += " decode before | ratio before/after |"
            rule += " --- | --- |"
        print(header)
        print(rule)
        for name, kind, data in payloads():
            decoded = contract.decode(data, kind)      # every payload here is a valid one
            if before:
                assert vars(before.decode(data, kind)) == vars(decoded)
            contenders = {"json.loads": timed(lambda d, k: json.loads(d), data, kind, calls),
                          "decode": timed(contract.decode, data, kind, calls)}
            if before:
                contenders["before"] = timed(before.decode, data, kind, calls)
            times, _ = harness.interleaved(contenders, rounds)
            us = {who: statistics.median(t) / calls * 1e6 for who, t in times.items()}
            row = "| %s | %d | %.2f µs | %.2f µs | %.2fx |" % (
                name, len(data), us["json.loads"], us["decode"],
                statistics.median(harness.ratios(times, "decode", "json.loads")))
            if before:
                row += " %.2f µs | %.2fx |" % (
                    us["before"], statistics.median(harness.ratios(times, "before", "decode")))
            print(row, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
