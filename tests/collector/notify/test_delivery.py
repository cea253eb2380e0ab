"""One receiver's queue, with a receiver under the test's control: it holds each message until
the test lets it go. (test_dispatcher.py checks the same against real receivers on loopback.)
What a full queue drops is counted, and said at most once a minute, with the count since."""
import threading

from routerwatch_collector.notify.delivery import DROP_LOG_INTERVAL, Delivery
from routerwatch_collector.notify.message import Message


def message(name):
    return Message(device=name, severity="high", count=1, title=name, body=name)


class HeldReceiver:
    """A Target whose send() waits until released, recording what it was given."""
    name = "json://held.example/…"

    def __init__(self):
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.got = []

    def send(self, message):
        self.got.append(message)
        self.started.release()
        self.release.wait(30)
        return True


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_full_queue_drops_counts_and_logs_once_a_minute(caplog):
    caplog.set_level("WARNING", logger="routerwatch_collector")
    receiver, clock = HeldReceiver(), Clock()
    delivery = Delivery(receiver, retry_delays=(), capacity=3, clock=clock)
    delivery.start()
    try:
        assert delivery.offer(message("m0"))
        assert receiver.started.acquire(timeout=30)       # m0 under way, held
        accepted = [delivery.offer(message("m%d" % n)) for n in range(1, 50)]
        assert accepted == [True, True] + [False] * 47    # 3 in all: m0 under way, m1, m2
        assert delivery.waiting() == 3 and delivery.counters["dropped"] == 47
        clock.now += DROP_LOG_INTERVAL                    # a minute on: said once more
        assert not delivery.offer(message("late"))
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 2, warnings
        assert "1 message(s) dropped" in warnings[0] and "47 message(s) dropped" in warnings[1]
        assert "48 dropped in all" in warnings[1] and receiver.name in warnings[1]
    finally:
        receiver.release.set()
        delivery.stop()
        delivery.join(10)
    # what the queue kept is sent, in order; nothing dropped is
    assert [m.device for m in receiver.got] == ["m0", "m1", "m2"] and delivery.counters["sent"] == 3


def test_a_failed_try_is_retried_in_its_own_queue_and_stopping_gives_one_last_try():
    class Refusing:
        name = "json://refusing.example/…"
        tries = 0

        def send(self, message):
            self.tries += 1
            return False

    clock = Clock()
    receiver = Refusing()
    delivery = Delivery(receiver, retry_delays=(3600.0,), capacity=2, clock=clock)
    delivery.start()
    assert delivery.offer(message("m0"))
    idle = threading.Event()
    for _ in range(3000):
        if delivery.counters["retried"]:
            break
        idle.wait(0.01)
    # waiting an hour for its retry, m0 keeps its place in the queue
    assert delivery.waiting() == 1 and receiver.tries == 1
    delivery.stop()
    delivery.join(10)
    assert receiver.tries == 2 and delivery.counters["failed"] == 1
