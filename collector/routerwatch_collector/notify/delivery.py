"""One receiver's deliveries: a thread and a bounded queue for each --notify URL.

A receiver that is slow or hangs (it accepts the connection and never answers) holds its own
thread for up to Apprise's timeout per try, so it may only delay its own messages; the other
receivers' threads go on sending. When its queue is full a new message for it is dropped,
counted, and logged at most once a minute, so memory stays bounded whatever it does. A failed
try is queued again after `retry_delays`, in the same queue (a retry takes a place like a new
message does).
"""
import logging
import threading
from collections import deque

log = logging.getLogger("routerwatch_collector")

DROP_LOG_INTERVAL = 60.0    # seconds between two warnings about one receiver's full queue


class Delivery:
    """Sends the messages offered to it to one Target, in order, retrying failed ones."""

    def __init__(self, target, retry_delays, capacity, clock):
        self.target = target
        self.retry_delays = tuple(retry_delays)
        self.capacity = capacity            # messages waiting, the one being sent included
        self.clock = clock
        self._pending = deque()             # [due_at, attempt, message]
        self._sending = 0                   # 1 while a try is under way
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = None
        # each key is written by one thread only: "dropped" by the one offering, the others
        # by this receiver's thread
        self.counters = {"sent": 0, "retried": 0, "failed": 0, "dropped": 0}
        self._drops_unlogged = 0
        self._next_drop_log = None

    # ------------------------------------------------------------------ the grouping thread's side
    def offer(self, message):
        """Queue a message for this receiver; never waits. False: the queue was full."""
        with self._wake:
            full = len(self._pending) + self._sending >= self.capacity
            if not full:
                self._pending.append([self.clock(), 0, message])
                self._wake.notify()
        if full:
            self.counters["dropped"] += 1
            self._log_drop()
        return not full

    def waiting(self):
        with self._wake:
            return len(self._pending) + self._sending

    def _log_drop(self):
        # a receiver that stays away must not fill the log with one line per message
        now = self.clock()
        self._drops_unlogged += 1
        if self._next_drop_log is not None and now < self._next_drop_log:
            return
        log.warning("notifications to %s are not getting through: %d message(s) dropped "
                    "(its queue of %d is full; %d dropped in all)", self.target.name,
                    self._drops_unlogged, self.capacity, self.counters["dropped"])
        self._drops_unlogged = 0
        self._next_drop_log = now + DROP_LOG_INTERVAL

    # ------------------------------------------------------------------ starting and stopping
    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, daemon=True,
                                            name="routerwatch-notify-%s" % self.target.name)
            self._thread.start()

    def stop(self):
        """Ask for a last try of everything waiting, then an end; see join()."""
        with self._wake:
            self._stopping = True
            self._wake.notify()

    def join(self, timeout):
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))

    # ------------------------------------------------------------------ this receiver's thread
    def _work(self):
        while True:
            entry = self._next_due()
            if entry is None:           # stopping
                break
            self._attempt(entry, final=False)
        with self._wake:
            last = list(self._pending)
            self._pending.clear()
            self._sending = len(last)
        for entry in last:
            self._attempt(entry, final=True)

    def _next_due(self):
        """The first message due, taken out of the queue; None when stopping."""
        with self._wake:
            while not self._stopping:
                now = self.clock()
                for entry in self._pending:
                    if entry[0] <= now:
                        self._pending.remove(entry)
                        self._sending = 1
                        return entry
                wait = min(e[0] for e in self._pending) - now if self._pending else None
                self._wake.wait(wait)
        return None

    def _attempt(self, entry, final):
        due_at, attempt, message = entry
        ok = self.target.send(message)
        with self._wake:
            self._sending = max(0, self._sending - 1)
            if ok:
                self.counters["sent"] += 1
            elif attempt < len(self.retry_delays) and not final:
                self.counters["retried"] += 1
                entry[0] = self.clock() + self.retry_delays[attempt]
                entry[1] = attempt + 1
                self._pending.append(entry)
                return
            else:
                self.counters["failed"] += 1
        if not ok:
            log.warning("gave up notifying %s about %s after %d tries", self.target.name,
                        message.device, attempt + 1)
