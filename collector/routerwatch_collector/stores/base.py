"""The Store interface and the rows it returns: what the collector needs from storage, whichever
database holds it.

Every piece of shared state (which anomalies exist, who raised an agent.silent) lives in the
database, never in one process, so several collector processes can write to one store: the
exactly-once rule is a unique (device, run, seq), a silence is claimed with an
UPDATE ... WHERE silent_since IS NULL that only one writer wins.

Times are seconds since the epoch, passed in by the caller (the collector's clock, `received_at`),
never read here.
"""
import contextlib
import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

from routerwatch import jsonio

# status column values: what the agent said last, with the Last Will told apart from a clean stop
STATUS_ONLINE, STATUS_OFFLINE, STATUS_STOPPED = "online", "offline", "stopped"

# The heartbeat interval a router announces sets its silence deadline, within these bounds: an
# interval of 0 would make every tick a silence, a huge one would switch the alarm off. The agent
# itself allows 5-3600 s (intervals.heartbeat).
HEARTBEAT_INTERVAL_MIN, HEARTBEAT_INTERVAL_MAX = 5.0, 86400.0

# Heartbeat history for the dashboard's charts: at most one sample per device per spacing, kept
# for a day, so a device holds at most 1440 samples at the default spacing whatever it sends.
HEARTBEAT_SAMPLE_SPACING = 60.0
HEARTBEAT_HISTORY_SECONDS = 86400.0

# Every read the dashboard makes is bounded: a caller's limit is clipped to this.
MAX_READ_ROWS = 1000

# anomaly_counts holds the number of anomalies per 5 minutes (by arrival), severity and kind, so
# the fleet's chart and top kinds over a day or a month read a few thousand rows, not millions.
# Histogram bars are whole multiples of it (the dashboard's are 5 min and longer).
ROLLUP_SECONDS = 300


# anomaly_counts_hourly: the same counts per hour, so a week's chart and top kinds read 168
# hours' rows instead of 2,016 five-minute ones (used for bars that are whole hours)
HOURLY_ROLLUP_SECONDS = 3600


def rollup_bucket(received_at, size=ROLLUP_SECONDS):
    return float(math.floor(received_at / size) * size)


# The most messages one gap can claim to be missing. A router loses at most what its spool
# dropped (spool.max_items is at most 1,000,000) or the heartbeats of an outage (a year of the
# shortest 5 s interval is 6.3 million, but heartbeats are numbered per run and a run rarely
# lasts that long); a run that starts at seq 2^53 claims 9e15. A gap wider than this is counted
# as one suspect event (`suspect`), not as missing messages: a router cannot inflate the fleet's
# loss figures, and no sum over gaps can overflow.
GAP_CLAIM_MAX = 1000000
# SQL for one gap row (SQLite and PostgreSQL alike): whether it is suspect (1/0), and how many
# messages it counts as missing (fill_gap never lets `filled` exceed the width)
_GAP_WIDTH = "(last_seq - first_seq + 1)"
_GAP_SUSPECT = "(CASE WHEN %s > %d THEN 1 ELSE 0 END)" % (_GAP_WIDTH, GAP_CLAIM_MAX)
_GAP_MISSING = "(CASE WHEN %s > %d THEN 0 ELSE %s - filled END)" % (
    _GAP_WIDTH, GAP_CLAIM_MAX, _GAP_WIDTH)


def clip_limit(limit):
    return max(1, min(int(limit), MAX_READ_ROWS))


def arrival_times(batch, received_at):
    """add_anomalies()'s `received_at` as one time per anomaly."""
    if isinstance(received_at, (list, tuple)):
        if len(received_at) != len(batch):
            raise ValueError("received_at has %d times for %d anomalies"
                             % (len(received_at), len(batch)))
        return list(received_at)
    return [received_at] * len(batch)


@dataclass(frozen=True)
class AnomalyFilter:
    """What the dashboard and the API select anomalies by; every field optional.
    `kind` is a kind or a glob of one (`login.*`, `*.silent`); `severities` the accepted ones;
    `since`/`until` bound received_at (the collector's clock), until exclusive."""
    device: Optional[str] = None
    kind: Optional[str] = None
    severities: tuple = ()
    since: Optional[float] = None
    until: Optional[float] = None


@dataclass(frozen=True)
class StoredAnomaly:
    """One row of the anomalies table: the contract fields plus when the collector got it."""
    device: str
    run: str
    seq: int
    time: float
    kind: str
    severity: str
    summary: str
    evidence: dict
    count: int
    received_at: float
    origin: str          # "agent", or "collector" for the collector's own agent.silent
    id: Optional[int] = None   # the store's row id, set on rows read back (the dashboard links it)

    def as_dict(self):
        out = {"device": self.device, "run": self.run, "seq": self.seq, "time": self.time,
               "kind": self.kind, "severity": self.severity, "summary": self.summary,
               "evidence": self.evidence, "count": self.count,
               "received_at": self.received_at, "origin": self.origin}
        if self.id is not None:
            out["id"] = self.id
        return out


@dataclass(frozen=True)
class DeviceRow:
    device: str
    first_seen: float
    last_seen: float
    run: str
    status: Optional[str]          # online | offline (Last Will) | stopped (clean shutdown)
    status_at: Optional[float]
    alive_at: Optional[float]      # last heartbeat or "online": what silence is measured from
    heartbeat_interval: Optional[float]
    last_heartbeat: Optional[dict]  # uptime, rss_kb, cpu_percent, spool_depth, counters, drops
    heartbeats: int
    anomalies: int
    rejected: int
    agent_version: Optional[str]
    firmware: Optional[dict]
    firmware_hash: Optional[str]
    baseline_hash: Optional[str]
    package_manager: Optional[str]
    silent_since: Optional[float]
    gaps_missing: int = 0          # sequence numbers never received (anomalies + heartbeats)
    gaps_suspect: int = 0          # jumps too wide to be losses (GAP_CLAIM_MAX): one event each

    def as_dict(self):
        return dict(self.__dict__)


# DeviceRow's fields that DeviceListing holds as plain values (the rest are the JSON documents),
# in the order of both
DEVICE_LISTING_PLAIN = ("device", "first_seen", "last_seen", "run", "status", "status_at",
                        "alive_at", "heartbeat_interval", "heartbeats", "anomalies", "rejected",
                        "agent_version", "firmware_hash", "baseline_hash", "package_manager",
                        "silent_since", "gaps_missing", "gaps_suspect")


def firmware_label(release, model):
    """A device's firmware as the device list shows it: release and model."""
    if release is None or model is None:
        return release or model or ""
    return release + " " + model


class DeviceLine(NamedTuple):
    """One line of the whole-fleet text list: only the columns it prints, so the database
    sends (and the driver converts) half the values of a DeviceListing for each device."""
    device: str
    status: Optional[str]
    last_seen: float
    silent_since: Optional[float]
    firmware_release: Optional[str]
    firmware_model: Optional[str]
    anomalies: int
    heartbeats: int
    gaps_missing: int
    gaps_suspect: int

    def firmware_label(self):
        return firmware_label(self.firmware_release, self.firmware_model)


class DeviceListing(NamedTuple):
    """One device of the whole-fleet list (`routerwatch-collector devices`), read as a stream:
    the device row's plain columns, the firmware's release and model from their own columns, and
    the last heartbeat and the firmware as the JSON text they are kept in, so a fleet of 100,000
    is listed without decoding 200,000 JSON documents. as_row() decodes them when wanted.
    Immutable like the frozen dataclasses, but a tuple: made from a result row at a fifth of the
    cost, which counts 100,000 times over."""
    device: str
    first_seen: float
    last_seen: float
    run: str
    status: Optional[str]
    status_at: Optional[float]
    alive_at: Optional[float]
    heartbeat_interval: Optional[float]
    heartbeats: int
    anomalies: int
    rejected: int
    agent_version: Optional[str]
    firmware_hash: Optional[str]
    baseline_hash: Optional[str]
    package_manager: Optional[str]
    silent_since: Optional[float]
    gaps_missing: int
    gaps_suspect: int
    firmware_release: Optional[str]
    firmware_model: Optional[str]
    last_heartbeat_json: Optional[str]
    firmware_json: Optional[str]

    def plain(self):
        """DeviceRow.as_dict() without last_heartbeat and firmware."""
        return dict(zip(DEVICE_LISTING_PLAIN, self))

    def firmware_label(self):
        """Release and model, as the device list shows the firmware."""
        return firmware_label(self.firmware_release, self.firmware_model)

    def as_row(self):
        return DeviceRow(last_heartbeat=None if self.last_heartbeat_json is None
                         else jsonio.loads(self.last_heartbeat_json),
                         firmware=None if self.firmware_json is None
                         else jsonio.loads(self.firmware_json), **self.plain())


class Store:
    """What the collector needs from storage. Methods called inside `with store.transaction():`
    commit together; called outside one, each commits on its own.

    Implementations: stores.sqlite.SqliteStore (one file) and stores.postgres.PostgresStore (a
    fleet); both give the same answers to the same calls, and nothing outside stores/ knows which
    one it talks to.
    """

    _depth = 0   # how many transaction() blocks are open; only the outermost one commits

    @contextlib.contextmanager
    def transaction(self):
        """Everything inside commits together. Nested blocks join the outer one: a method that
        needs its statements atomic may open one whether or not its caller did."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            with self._begin():
                yield self
        finally:
            self._depth = 0

    def _begin(self):
        """A context manager around the outermost transaction: begins it on entry, commits on a
        normal exit, rolls back on an exception (and lets it go on)."""
        raise NotImplementedError

    def add_anomalies(self, batch, received_at, origin="agent"):
        """Insert contract Anomalies; ones already stored (same device, run, seq), or repeated
        in the batch, are ignored. `received_at`: one time for all, or a list with one per
        anomaly. Returns the StoredAnomaly rows that are new, in batch order."""
        raise NotImplementedError

    def upsert_device(self, device, run, now, live=True):
        raise NotImplementedError

    def record_heartbeat(self, heartbeat, received_at):
        raise NotImplementedError

    def record_status(self, status, received_at, retained=False):
        raise NotImplementedError

    def record_inventory(self, inventory, received_at):
        raise NotImplementedError

    def record_rejected(self, reason, count, now, device=None, detail=""):
        raise NotImplementedError

    def highest_seq(self, device, run, message_type):
        raise NotImplementedError

    def record_gap(self, device, run, message_type, first_seq, last_seq, now):
        raise NotImplementedError

    def fill_gap(self, device, run, message_type, seq):
        raise NotImplementedError

    def silence_candidates(self, now, missed_heartbeats, listening_since=None, stop_grace=None):
        raise NotImplementedError

    def claim_silence(self, device, now):
        raise NotImplementedError

    def iter_devices(self, labels=True, documents=True):
        """Every device as a DeviceListing, by device id, streamed from the database (memory
        does not grow with the fleet). labels=False leaves out the firmware's release and
        model, documents=False the last heartbeat and firmware documents (None)."""
        raise NotImplementedError

    def iter_device_lines(self):
        """Every device as a DeviceLine (what the text list prints), by device id, streamed
        like iter_devices."""
        raise NotImplementedError

    def report_progress(self, collector_run, caught_up_at, now, deaf_until=None):
        """This collector process has been handed everything queued for it up to caught_up_at;
        up to `deaf_until` (None: never) it may have missed messages the broker routed to it
        (it connected then: QoS 0 heartbeats the broker had for it while it was away, or held
        by the process that ran before it, are gone)."""
        raise NotImplementedError

    def deaf_until(self, now, stale, gone):
        """The latest moment any collector of the store may have missed messages (None if
        none): the latest `deaf_until` of the collectors that reported within `stale` seconds,
        and for each collector that stopped reporting within `gone` seconds its last report plus
        `stale` (it died by then, and what it held went with it)."""
        raise NotImplementedError

    def heard_until(self, now, stale):
        """The earliest caught_up_at among collectors that reported within `stale` seconds
        (now if none): up to then every collector has heard what the routers sent."""
        raise NotImplementedError

    def query_anomalies(self, device=None, since=None, kind=None, limit=100):
        raise NotImplementedError

    # -------------------------------------------------------------- reads for the dashboard
    # Each one is bounded by a limit (clipped to MAX_READ_ROWS) or a time range.

    def find_anomalies(self, where, limit=100, before_id=None):
        """StoredAnomaly rows (with id) matching an AnomalyFilter, newest first; before_id pages."""
        raise NotImplementedError

    def anomaly(self, anomaly_id):
        """One StoredAnomaly (with id), or None."""
        raise NotImplementedError

    def anomaly_histogram(self, where, bucket_seconds):
        """{(bucket_start, severity): count} over where.since .. where.until (both required);
        bars start at multiples of bucket_seconds (since the epoch), a multiple of
        ROLLUP_SECONDS or shorter than it."""
        raise NotImplementedError

    def top_kinds(self, where, limit=10):
        """[(kind, count, worst severity)] in the filter, most frequent first."""
        raise NotImplementedError

    def top_devices(self, where, limit=10):
        """[(device, count, worst severity)] in the filter, most anomalies first. Reads the
        anomalies themselves: give it a narrow filter (the dashboard asks for high and
        critical ones)."""
        raise NotImplementedError

    def fleet_counts(self):
        """{"online": n, "silent": n, "stopped": n, "offline": n, "unknown": n, "total": n}.
        silent: agent.silent raised and not yet ended; offline: Last Will, not yet claimed."""
        raise NotImplementedError

    def device(self, device):
        """One DeviceRow, or None."""
        raise NotImplementedError

    def device_page(self, status=None, prefix=None, after=None, limit=100):
        """DeviceRows ordered by id, after `after`; status as in fleet_counts()."""
        raise NotImplementedError

    def heartbeat_history(self, device, since, limit=MAX_READ_ROWS):
        """[{"at", "rss_kb", "cpu_percent", "spool_depth", "drops", "source_errors"}], oldest first."""
        raise NotImplementedError

    def devices(self):
        raise NotImplementedError

    def gaps(self, device=None, limit=None):
        """Gap rows, oldest first; with a limit, the newest `limit` of them."""
        raise NotImplementedError

    def rejected(self):
        raise NotImplementedError

    def rejected_rows(self):
        """[{reason, count, first_at, last_at, last_device, last_detail}] by reason."""
        raise NotImplementedError

    def anomaly_count(self):
        raise NotImplementedError

    def maintain(self, now):
        """Periodic upkeep (the collector calls it on every tick; a backend does its work at
        most hourly): partitions made ahead, history past the retention dropped."""

    def close(self):
        raise NotImplementedError
