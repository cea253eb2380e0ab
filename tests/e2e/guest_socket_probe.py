"""Run INSIDE the emulated router by test_08c_byte_order.py (copied to /tmp, run with the router's
python3): one poll of the agent's own ListenerSource and ConntrackSource, as the live agent
builds them, printed as one JSON object. No byte order is passed: the sources decide it from the
running system, as they do on a real router.
"""
import json
import sys
import time

from routerwatch.config import AgentConfig
from routerwatch.sources.conntrack import ConntrackSource
from routerwatch.sources.sockets import ListenerSource


def main():
    config = AgentConfig()
    now = time.time()
    listeners = [s for s in ListenerSource(config).poll(now)]
    flows = [s for s in ConntrackSource(config).poll(now)]
    report = {"byteorder": sys.byteorder, "listeners": [], "raw": [], "flows": []}
    for snapshot in listeners:
        report["listeners"] += [[s.proto, s.address, s.port, s.process] for s in snapshot.sockets]
        report["raw"] += [[s.proto, s.protocol, s.process] for s in snapshot.raw_sockets]
    for snapshot in flows:
        report["flows"] += [[f.proto, f.src, f.sport, f.dst, f.dport, f.origin]
                            for f in snapshot.flows]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
