"""Ties the dropbear lines of one connection together and turns them into LoginAttempt events.

Every line of one dropbear connection carries the PID of its child process ("dropbear[PID]"), and
the child logs "Child connection from <addr>" first and "Exit ... from <addr>" last. Some lines in
between name no address at all (2020.79 .. 2024.85 "Login attempt for nonexistent user",
"root login rejected", "User 'x' has invalid shell, rejected" ...), so they take the address of
their PID's connection. When the connection line was not seen (the log started mid-connection,
logd's small ring wrapped), they wait in the session until the Exit line names the address.

Counting failures, once each:
  * each per-attempt line (Bad password, nonexistent user, root rejected, bad signature ...) is
    one failure (attempts=1) the moment it is seen;
  * "Exit before auth ... (user 'x', N fails)" is dropbear's own count for the whole connection.
    It adds only the difference N - (failures already emitted for this PID), as one event with
    attempts = that difference, so failures dropbear counted but did not log one by one (lines
    lost from the ring, pubkey tries) are counted and logged ones are not counted twice;
  * "Max auth tries reached - user 'is invalid'" carries no count: dropbear logs the
    nonexistent-user line only once per connection however many tries follow, and the agent
    does not know the server's -T. It counts as one failure only when nothing else of the
    connection was counted, i.e. the result is a lower bound, never an inflated guess.
Bounded: at most `cap` PIDs are tracked (least recently used are evicted and counted), and a
session holds at most MAX_PENDING lines waiting for an address.
"""
from ..bounded import BoundedDict
from ..events import LoginAttempt
from ..parsers.dropbear import CONNECTION, EXIT_BEFORE_AUTH, FAILURE, SESSION_END, SUCCESS

_new_attempt = tuple.__new__
DEFAULT_MAX_SESSIONS = 1024   # dropbear itself allows 30 unauthenticated connections at a time
MAX_PENDING = 8               # addressless lines per connection: dropbear logs them once each


class _Session:
    __slots__ = ("ip", "port", "failures", "pending")

    def __init__(self, ip=None, port=None):
        self.ip = ip
        self.port = port
        self.failures = 0        # failures already emitted (or waiting) for this connection
        self.pending = None      # [(time, outcome, method, user)] waiting for an address


class LoginSessions:
    def __init__(self, cap=DEFAULT_MAX_SESSIONS):
        self._sessions = BoundedDict(cap)
        self.pending_dropped = 0

    @property
    def evicted(self):
        return self._sessions.evicted

    def __len__(self):
        return len(self._sessions)

    def feed(self, time, pid, record):
        """LoginAttempts that one dropbear record (of process `pid`) completes; often none."""
        kind = record.kind
        if kind == CONNECTION:
            if pid is not None:
                # a new connection: a recycled PID's old state must not leak into it
                self._sessions.set(pid, _Session(record.ip, record.port))
            return []
        session = self._sessions.get(pid) if pid is not None else None
        if kind == FAILURE or kind == SUCCESS:
            return self._attempt(time, pid, session, record)
        if kind == EXIT_BEFORE_AUTH:
            return self._exit_before_auth(time, pid, session, record)
        if kind == SESSION_END and session is not None:
            self._sessions.pop(pid)
            return self._resolve(session, record.ip, record.port, pid)
        return []

    def flush(self):
        """At the end of a file: what still waits for an address, emitted without one."""
        out = []
        for pid, session in self._sessions.items():
            out.extend(self._resolve(session, None, None, pid))
        return out

    # ------------------------------------------------------------------ helpers
    def _attempt(self, time, pid, session, record):
        outcome = "failure" if record.kind == FAILURE else "success"
        ip, port = record.ip, record.port
        if session is None and pid is not None:
            # the connection line was not seen (the log began mid-connection): start counting
            # here, so that the Exit line's total does not count these failures again
            session = _Session(ip, port)
            self._sessions.set(pid, session)
        if session is not None:
            if ip is None:
                ip, port = session.ip, session.port
            elif port is None and ip == session.ip:
                port = session.port      # 2026.94 cut the port here; the connection line has it
            elif session.ip is None:
                session.ip, session.port = ip, port
            if outcome == "failure":
                session.failures += 1
        if ip is None and session is not None:
            if session.pending is None:
                session.pending = []
            if len(session.pending) < MAX_PENDING:
                session.pending.append((time, outcome, record.method, record.user))
            else:
                self.pending_dropped += 1
            return []
        out = self._resolve(session, ip, port, pid) if session is not None and session.pending \
            else []
        # the event of nearly every login line: built without the NamedTuple's Python __new__,
        # every field in LoginAttempt's order
        out.append(_new_attempt(LoginAttempt, (time, "ssh", outcome, record.method, record.user,
                                               ip, port, pid, 1)))
        return out

    def _exit_before_auth(self, time, pid, session, record):
        ip, port = record.ip, record.port
        if session is not None:
            self._sessions.pop(pid)
            if ip is None:
                ip, port = session.ip, session.port
            elif port is None and ip == session.ip:
                port = session.port
            out = self._resolve(session, ip, port, pid)
            counted = session.failures
        else:
            out, counted = [], 0
        if record.fails is not None:
            extra = record.fails - counted
        elif record.method == "max_tries":
            extra = 1 if counted == 0 else 0
        else:
            extra = 0
        if extra > 0:
            method = "max_tries" if record.method == "max_tries" else "exit_summary"
            out.append(LoginAttempt(time=time, service="ssh", outcome="failure", method=method,
                                    user=record.user, source_ip=ip, source_port=port, pid=pid,
                                    attempts=extra))
        return out

    @staticmethod
    def _resolve(session, ip, port, pid):
        """The session's waiting lines, now with an address (or still None at a flush)."""
        if not session.pending:
            return []
        if ip is None:
            ip, port = session.ip, session.port
        out = [LoginAttempt(time=t, service="ssh", outcome=outcome, method=method, user=user,
                            source_ip=ip, source_port=port, pid=pid)
               for t, outcome, method, user in session.pending]
        session.pending = None
        return out
