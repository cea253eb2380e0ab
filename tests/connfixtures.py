"""Helpers for the connection-watcher tests: the /proc fixture trees, the conntrack table
generator (bench/gen_conntrack.py) and small builders for Flow / ConntrackSnapshot events."""
import shutil
import sys
from pathlib import Path

from routerwatch.config import load
from routerwatch.events import (ORIGIN_INBOUND, ORIGIN_ROUTER, ConntrackSnapshot, Flow,
                                ListenerSnapshot, ListeningSocket, RawSocket)

REPO = Path(__file__).resolve().parents[1]
PROC_FIXTURES = REPO / "tests" / "fixtures" / "proc"
if str(REPO / "bench") not in sys.path:
    sys.path.insert(0, str(REPO / "bench"))

import gen_conntrack as gen  # noqa: E402  (bench/ is not a package)

WAN4, LAN4 = gen.WAN4, gen.LAN4


def agent_config(root, *overrides):
    return load(overrides=list(overrides), defaults={"root": str(root)})


def copy_tree(name, tmp_path):
    """A writable copy of a fixture tree (symlinks kept), for tests that change files."""
    target = tmp_path / name
    shutil.copytree(PROC_FIXTURES / name, target, symlinks=True)
    return target


def out(dst, dport=443, proto="tcp", sport=40000, state="ESTABLISHED", unreplied=False,
        age=None, src=WAN4):
    """A router-originated flow."""
    return Flow(proto=proto, state=state if proto == "tcp" else None, src=src, dst=dst,
                sport=sport, dport=dport, reply_src=dst, reply_dst=src, unreplied=unreplied,
                assured=not unreplied, origin=ORIGIN_ROUTER, age=age)


def syn(dst, dport=23, sport=41000):
    return out(dst, dport, state="SYN_SENT", unreplied=True, sport=sport)


def inbound(peer, dport, sport=50000, proto="tcp", dst=WAN4, unreplied=False):
    return Flow(proto=proto, state="ESTABLISHED" if proto == "tcp" else None, src=peer, dst=dst,
                sport=sport, dport=dport, reply_src=dst, reply_dst=peer, unreplied=unreplied,
                assured=True, origin=ORIGIN_INBOUND)


def snapshot(time, flows=(), entries=None, forwarded=0, max_entries=65536):
    flows = tuple(flows)
    return ConntrackSnapshot(time=time, flows=flows,
                             entries=len(flows) + forwarded if entries is None else entries,
                             forwarded=forwarded, max_entries=max_entries)


def listening(port, proto="tcp", address="0.0.0.0", process=None, exe=None, pid=None, inode=1):
    return ListeningSocket(proto=proto, address=address, port=port, inode=inode, pid=pid,
                           process=process, exe=exe)


def listeners(time, *sockets):
    return ListenerSnapshot(time=time, sockets=tuple(sockets))


def raw_socket(protocol, proto="raw", process=None, exe=None, pid=None, inode=1):
    return RawSocket(proto=proto, protocol=protocol, inode=inode, pid=pid, process=process,
                     exe=exe)


def raw_sockets(time, *sockets):
    return ListenerSnapshot(time=time, sockets=(), raw_sockets=tuple(sockets))
