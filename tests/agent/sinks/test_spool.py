"""The spool: anomalies wait here, in order, until the broker acknowledges them; caps drop the
lowest severity first and count it; the tmp/flash file survives a restart and a torn write."""
import os

import pytest

from routerwatch.config import SpoolConfig
from routerwatch.contract import Anomaly, decode, encode
from routerwatch.sinks.spool import Spool

RUN = "0123456789abcdef"


def anomaly(seq, severity="high", device="rw-a", run=RUN, **extra):
    return Anomaly(device=device, run=run, seq=seq, time=1700000000.0 + seq,
                   kind="login.bruteforce", severity=severity,
                   summary="5 failed logins from 192.0.2.%d" % (seq % 250), evidence=extra)


def put(spool, seq, severity="high", **extra):
    return spool.put(severity, encode(anomaly(seq, severity, **extra)))


def seqs(pairs):
    return [decode(payload).seq for _, payload in pairs]


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


# ---------------------------------------------------------------- RAM: order, ack, caps

def test_anomalies_are_handed_out_in_arrival_order_and_stay_until_acknowledged():
    spool = Spool(SpoolConfig())
    for seq in range(1, 6):
        put(spool, seq, "info" if seq % 2 else "critical")
    first = spool.take(3)
    assert seqs(first) == [1, 2, 3]
    assert spool.depth() == 5 and spool.inflight() == 3
    assert seqs(spool.take(10)) == [4, 5]
    for sid, _ in first:
        assert spool.ack(sid)
    assert spool.depth() == 2
    assert not spool.ack(first[0][0]), "a second PUBACK for the same anomaly changes nothing"


def test_full_spool_drops_the_oldest_lowest_severity_first_and_counts_every_drop():
    spool = Spool(SpoolConfig(max_items=10))
    severities = ["high", "info", "medium", "low", "critical", "info", "low", "high", "medium",
                  "info"]
    for seq, sev in enumerate(severities, 1):
        put(spool, seq, sev)
    # four more arrive: the three info ones go first (oldest first), then the oldest low
    for seq in range(11, 15):
        put(spool, seq, "high")
    kept = seqs(spool.take(100))
    assert kept == [1, 3, 5, 7, 8, 9, 11, 12, 13, 14]
    assert spool.drops()["spool"] == 4
    assert spool.depth() == 10


def test_a_new_info_anomaly_is_itself_dropped_when_the_spool_is_full_of_worse_ones():
    spool = Spool(SpoolConfig(max_items=10))
    for seq in range(1, 11):
        put(spool, seq, "critical")
    put(spool, 11, "info")
    assert seqs(spool.take(100)) == list(range(1, 11))
    assert spool.drops()["spool"] == 1


def test_byte_cap_is_enforced_too():
    spool = Spool(SpoolConfig(max_items=1000, max_bytes=16 * 1024))
    for seq in range(1, 200):
        put(spool, seq, "medium", note="x" * 200)
    assert spool.live_bytes() <= 16 * 1024
    kept = seqs(spool.take(1000))
    assert kept == list(range(200 - len(kept), 200)), "the newest are kept, in order"
    assert spool.drops()["spool"] == 199 - len(kept) > 0


def test_anomalies_already_with_the_publisher_count_for_the_cap_like_any_other():
    spool = Spool(SpoolConfig(max_items=10))
    for seq in range(1, 11):
        put(spool, seq, "info")
    spool.take(10)                       # all ten are in flight, none acknowledged
    put(spool, 11, "critical")
    put(spool, 12, "low")
    assert spool.depth() == 10 and spool.drops()["spool"] == 2
    assert seqs(spool.take(10)) == [11, 12]
    assert not spool.ack(1) and not spool.ack(2), "the two oldest info ones were dropped"
    assert spool.ack(3)


# ---------------------------------------------------------------- tmp: survives a restart

def tmp_config(tmp_path, **kw):
    return SpoolConfig(mode="tmp", **kw), str(tmp_path / "spool")


def test_tmp_spool_survives_a_restart_with_original_device_run_and_seq(tmp_path):
    config, path = tmp_config(tmp_path)
    spool = Spool(config, path)
    for seq in range(1, 6):
        put(spool, seq, "high")
    for sid, _ in spool.take(2):
        spool.ack(sid)
    del spool                            # no close(): as if the process was killed
    again = Spool(config, path)
    restored = [decode(p) for _, p in again.take(100)]
    assert [(a.device, a.run, a.seq) for a in restored] == [("rw-a", RUN, s) for s in (3, 4, 5)]
    assert again.counters()["spool.restored"] == 3
    # new anomalies continue after the restored ones
    put(again, 6, "low")
    assert seqs(again.take(10)) == [6]


def test_acknowledging_flips_one_byte_in_place_and_an_empty_spool_truncates_the_file(tmp_path):
    config, path = tmp_config(tmp_path)
    spool = Spool(config, path)
    put(spool, 1)
    put(spool, 2)
    size = os.path.getsize(path)
    (sid1, _), (sid2, _) = spool.take(2)
    spool.ack(sid1)
    assert os.path.getsize(path) == size
    assert open(path, "rb").read().startswith(b"-1 high ")
    spool.ack(sid2)
    assert os.path.getsize(path) == 0


def test_torn_last_line_is_skipped_and_counted(tmp_path):
    config, path = tmp_config(tmp_path)
    spool = Spool(config, path)
    for seq in range(1, 4):
        put(spool, seq)
    spool.close()
    data = open(path, "rb").read()
    with open(path, "wb") as handle:     # the kill landed in the middle of the third write
        handle.write(data[: len(data) - 40])
    again = Spool(config, path)
    assert seqs(again.take(10)) == [1, 2]
    assert again.drops()["spool.damaged"] == 1
    assert open(path, "rb").read().endswith(b"\n"), "the file was rewritten without the tear"
    put(again, 4)
    again.close()
    assert seqs(Spool(config, path).take(10)) == [1, 2, 4]


def test_damaged_and_hostile_lines_are_skipped(tmp_path):
    config, path = tmp_config(tmp_path)
    good = b"+1 high " + encode(anomaly(1)) + b"\n"
    wrong_severity = b"+2 info " + encode(anomaly(2, "critical")) + b"\n"
    not_an_anomaly = b"+3 high {\"v\":1,\"type\":\"status\"}\n"
    garbage = b"\x00\xff+4 high\n"
    with open(path, "wb") as handle:
        handle.write(good + wrong_severity + not_an_anomaly + garbage + b"x" * 70000 + b"\n")
    spool = Spool(config, path)
    assert seqs(spool.take(10)) == [1]
    assert spool.drops()["spool.damaged"] == 4


def test_file_stays_under_max_bytes_while_anomalies_come_and_go(tmp_path):
    config, path = tmp_config(tmp_path, max_bytes=16 * 1024)
    spool = Spool(config, path)
    for seq in range(1, 400):
        put(spool, seq, "medium")
        if seq % 3:
            for sid, _ in spool.take(1):
                spool.ack(sid)
        assert os.path.getsize(path) <= 16 * 1024
    assert spool.compactions > 0
    live = spool.depth()
    del spool
    assert Spool(config, path).depth() == live


def test_lowered_cap_applies_to_what_is_restored(tmp_path):
    config, path = tmp_config(tmp_path)
    spool = Spool(config, path)
    for seq in range(1, 21):
        put(spool, seq, "info" if seq <= 10 else "high")
    spool.close()
    smaller = SpoolConfig(mode="tmp", max_items=12)
    again = Spool(smaller, path)
    assert seqs(again.take(100)) == [9, 10] + list(range(11, 21))
    assert again.drops()["spool"] == 8


# ---------------------------------------------------------------- flash: batched writes

def test_flash_mode_writes_in_batches_and_spares_the_flash_what_was_delivered_in_time(tmp_path):
    clock = FakeClock()
    config = SpoolConfig(mode="flash", flash_flush_seconds=300)
    path = str(tmp_path / "state" / "spool")
    spool = Spool(config, path, clock=clock)
    for seq in range(1, 51):             # fifty anomalies delivered within one window
        put(spool, seq)
        for sid, _ in spool.take(1):
            spool.ack(sid)
    clock.now += 301
    assert spool.maybe_flush()
    assert spool.counters()["spool.file_writes"] == 0, "nothing undelivered: flash untouched"

    for seq in range(51, 151):           # the broker is away: a hundred wait
        put(spool, seq)
    clock.now += 10
    assert not spool.maybe_flush(), "not due yet"
    assert os.path.getsize(path) == 0
    clock.now += 300
    assert spool.maybe_flush()
    assert spool.counters()["spool.file_writes"] == 1, "one write for the whole batch"
    assert Spool(config, path, clock=clock).depth() == 100

    for sid, _ in spool.take(40):        # the broker is back for a while
        spool.ack(sid)
    clock.now += 301
    spool.maybe_flush()
    assert spool.counters()["spool.file_writes"] == 2
    assert seqs(Spool(config, path, clock=clock).take(1000)) == list(range(91, 151))


def test_flash_mode_writes_what_is_left_at_close(tmp_path):
    config = SpoolConfig(mode="flash")
    path = str(tmp_path / "spool")
    spool = Spool(config, path, clock=FakeClock())
    put(spool, 1, "critical")
    spool.close()
    assert seqs(Spool(config, path).take(10)) == [1]


def test_spool_needs_a_path_for_file_modes():
    with pytest.raises(ValueError):
        Spool(SpoolConfig(mode="tmp"))


def test_a_file_that_cannot_be_written_leaves_the_anomalies_in_memory(tmp_path, monkeypatch):
    config, path = tmp_config(tmp_path)
    spool = Spool(config, path)
    put(spool, 1)

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    put(spool, 2)                        # the detection loop does not see the error
    (sid1, _), (sid2, _) = spool.take(2)
    assert spool.ack(sid1)
    assert spool.counters()["spool.file_errors"] == 2
    assert spool.depth() == 1
    monkeypatch.undo()
    put(spool, 3)
    assert seqs(spool.take(10)) == [3]
    del spool
    # 2 never reached the file; 1 was acknowledged but its '-' did not land, so it is sent once
    # more after a restart (the collector drops the copy by device, run and seq)
    assert seqs(Spool(config, path).take(10)) == [1, 3]


def test_a_symlink_planted_where_the_spool_goes_is_not_followed(tmp_path):
    config, path = tmp_config(tmp_path)
    target = tmp_path / "shadow"
    target.write_text("root:x:0:0\n")
    os.symlink(target, path)
    with pytest.raises(OSError):
        Spool(config, path)
    assert target.read_text() == "root:x:0:0\n"


def test_restored_records_out_of_order_are_sent_in_sid_order(tmp_path):
    config, path = tmp_config(tmp_path)
    lines = [b"+%d high %s\n" % (sid, encode(anomaly(sid))) for sid in (3, 1, 2)]
    with open(path, "wb") as handle:
        handle.write(b"".join(lines))
    spool = Spool(config, path)
    assert seqs(spool.take(10)) == [1, 2, 3]
    put(spool, 4)
    assert seqs(spool.take(10)) == [4]
