"""routerwatch-agent under tracemalloc, for bench_footprint.py --trace: SIGUSR2 writes a snapshot
of the Python heap to <snapshot dir>/snapshot-<n>.pickle, so memory that RSS shows growing can be
told apart into live Python objects (a table still filling, or a leak) and allocator slack.

    python bench/traced_agent.py SNAPSHOT_DIR [routerwatch-agent arguments]
"""
import os
import signal
import sys
import tracemalloc


def main():
    directory = sys.argv.pop(1)
    tracemalloc.start(8)
    taken = [0]

    def snapshot(_signum, _frame):
        taken[0] += 1
        tracemalloc.take_snapshot().dump(os.path.join(directory, "snapshot-%d.pickle" % taken[0]))

    signal.signal(signal.SIGUSR2, snapshot)
    from routerwatch.cli import main as agent_main
    return agent_main()


if __name__ == "__main__":
    sys.exit(main())
