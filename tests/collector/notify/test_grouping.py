"""Given stored anomalies arriving over time, when the Grouper sorts them, then each router gets
one message per burst, sent after group_wait or at group_threshold, and no more than
max_per_hour messages."""
from routerwatch_collector.notify.grouping import MAX_KINDS, MAX_LISTED, Grouper
from routerwatch_collector.store import StoredAnomaly


def row(device="rw-a", kind="login.bruteforce", severity="high", count=1, seq=1):
    return StoredAnomaly(device=device, run="0123456789abcdef", seq=seq, time=0.0, kind=kind,
                         severity=severity, summary="s", evidence={}, count=count,
                         received_at=0.0, origin="agent")


def test_a_burst_is_one_message_after_group_wait():
    grouper = Grouper(group_wait=30, group_threshold=100, max_per_hour=6)
    grouper.add(row(seq=1), 0.0)
    grouper.add(row(seq=2, kind="conn.new_listener", severity="critical"), 10.0)
    grouper.add(row(seq=3, count=4), 20.0)
    assert grouper.due(29.9) == []
    assert grouper.next_due(20.0) == 10.0
    (group,) = grouper.due(30.0)
    assert (group.device, group.total, group.highest) == ("rw-a", 6, "critical")
    assert group.kinds == {"login.bruteforce": 5, "conn.new_listener": 1}
    assert grouper.waiting() == 0 and grouper.due(1000.0) == []


def test_devices_are_grouped_apart():
    grouper = Grouper(group_wait=30, group_threshold=100)
    grouper.add(row(device="rw-a"), 0.0)
    grouper.add(row(device="rw-b"), 5.0)
    assert [g.device for g in grouper.due(30.0)] == ["rw-a"]
    assert [g.device for g in grouper.due(35.0)] == ["rw-b"]


def test_the_threshold_sends_at_once():
    grouper = Grouper(group_wait=30, group_threshold=3)
    for seq in range(1, 3):
        grouper.add(row(seq=seq), 0.0)
    assert grouper.due(0.0) == []
    grouper.add(row(seq=3), 1.0)
    (group,) = grouper.due(1.0)
    assert group.total == 3


def test_the_rate_limit_holds_a_group_back_and_it_collects_the_flood():
    grouper = Grouper(group_wait=0, group_threshold=1, max_per_hour=2)
    sent = []
    for minute in range(120):
        now = minute * 60.0
        grouper.add(row(seq=minute + 1), now)
        sent.extend((now, g.total) for g in grouper.due(now))
    # two in the first hour, then one more each time the oldest send is an hour old
    assert [t for t, _ in sent] == [0.0, 60.0, 3600.0, 3660.0]
    assert sum(total for _, total in sent) + grouper._open.get("rw-a").total == 120
    assert grouper.held_back >= 1
    (last,) = grouper.due(7200.0)
    assert last.total == 120 - sum(total for _, total in sent)


def test_stopping_sends_everything_open_whatever_the_limits():
    grouper = Grouper(group_wait=30, group_threshold=100, max_per_hour=1)
    grouper.add(row(device="rw-a"), 0.0)
    grouper.due(30.0)
    grouper.add(row(device="rw-a"), 31.0)
    grouper.add(row(device="rw-b"), 31.0)
    assert sorted(g.device for g in grouper.due(31.0, everything=True)) == ["rw-a", "rw-b"]


def test_groups_are_bounded_in_rows_kinds_and_devices():
    grouper = Grouper(group_wait=30, group_threshold=10 ** 6, max_open_groups=4)
    for i in range(MAX_KINDS + 20):
        grouper.add(row(kind="conn.k%d" % i, seq=i + 1), 0.0)
    for device in range(10):
        grouper.add(row(device="rw-d%d" % device), 1.0)
    assert grouper.waiting() == 4 and grouper.dropped == 7   # rw-a and 6 others evicted
    grouper = Grouper(group_wait=30, group_threshold=10 ** 6)
    for i in range(MAX_KINDS + 20):
        grouper.add(row(kind="conn.k%d" % i, seq=i + 1), 0.0)
    (group,) = grouper.due(30.0)
    assert len(group.listed) == MAX_LISTED
    assert len(group.kinds) == MAX_KINDS + 1 and group.kinds["other"] == 20
    assert group.total == MAX_KINDS + 20
