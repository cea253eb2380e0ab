"""Run INSIDE the emulated router by test_08b_idle_at_default_intervals.py (copied to /tmp, run
with the router's python3 and the agent on its path): what each of the agent's polled sources
costs per poll on this CPU, and what one pass of the agent's loop costs when nothing is due,
as CPU seconds (time.process_time) averaged over a few repeats; printed as one JSON object.

The idle agent's CPU share at an interval I is about the sum of poll_seconds / I over its
sources, plus passes_per_second * pass_seconds for the loop; these figures say which term
matters on a router CPU.
"""
import json
import sys
import time

from routerwatch.config import AgentConfig
from routerwatch.sources import build_sources


def cost(function, repeat):
    function()                       # the first call pays for imports and caches
    start = time.process_time()
    for _ in range(repeat):
        function()
    return (time.process_time() - start) / repeat


def main():
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    config = AgentConfig()
    report = {"poll_seconds": {}, "repeat": repeat}
    for source in build_sources(config):
        name = type(source).__name__
        if name in ("LogSource", "IntegritySource"):    # a stream; a 900 s scan
            source.close()
            continue
        report["poll_seconds"][name] = round(cost(lambda: list(source.poll(time.time())),
                                                  repeat), 5)
        source.close()
    # the loop's wait between passes when nothing is due (at most runtime.MAX_IDLE_WAIT): an
    # Event wait
    import threading
    from routerwatch.runtime import MAX_IDLE_WAIT
    event = threading.Event()
    start_wall, start_cpu = time.monotonic(), time.process_time()
    for _ in range(2):
        event.wait(MAX_IDLE_WAIT)
    report["wait_cpu_per_second"] = round((time.process_time() - start_cpu)
                                          / (time.monotonic() - start_wall), 5)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
