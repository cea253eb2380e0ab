"""A collector instance's name within its share group, the same on every start.

The broker keeps a persistent session, and the QoS 1 messages queued and in flight in it, under
the client id. A collector killed and started again must come back under the same id, or what
the broker holds for it is never delivered (mosquitto does not hand a dead member's queue to
the other members of a shared subscription). Several collectors of one group on one host need
different ids, or they would push each other off one session.

Without --instance, a collector takes the lowest number N that no running collector of its group
on this host holds, by locking a file: the lock dies with the process (kill -9 included), so a
restarted collector gets its number, and with it its session, back.
"""
import fcntl
import os
import re
import socket
import tempfile

MAX_INSTANCES = 64
NAME_RE = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")


def host_name():
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:32] or "host"


def default_lock_dir():
    return os.path.join(tempfile.gettempdir(), "routerwatch-collector-%d" % os.getuid())


class InstanceSlot:
    """A held instance number: `name` is HOST-N; the lock is kept until close() or exit."""

    def __init__(self, name, handle):
        self.name = name
        self._handle = handle

    def close(self):
        if self._handle is not None:
            os.close(self._handle)
            self._handle = None


def claim_instance(group, lock_dir=None, host=None):
    """The lowest free instance number of `group` on this host, held until the process ends.
    Raises OSError if the lock directory cannot be made, RuntimeError if all are taken."""
    lock_dir = lock_dir or default_lock_dir()
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    host = host or host_name()
    for number in range(1, MAX_INSTANCES + 1):
        path = os.path.join(lock_dir, "%s-%d.lock" % (group, number))
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            continue
        return InstanceSlot("%s-%d" % (host, number), handle)
    raise RuntimeError("%d collectors of group %s already run on this host" % (MAX_INSTANCES,
                                                                              group))


def client_id(group, instance):
    return "routerwatch-collector-%s-%s" % (group, instance)
