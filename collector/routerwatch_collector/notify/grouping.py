"""Which stored anomalies become which notification: one message per burst and device, and no
more than a few messages per device and hour.

Like CrowdSec's notification plugins: the first anomaly of a device opens a group, later ones
join it, and the group is sent `group_wait` seconds after it opened, or at once when it holds
`group_threshold` anomalies. A device that already had `max_per_hour` messages in the last hour
keeps collecting into its open group until the oldest of them is an hour old, so a flood ends
as one message that counts everything instead of a stream of them.

Pure and single-threaded: time is passed in. Every table is capped and what a cap throws away is
counted.
"""
from dataclasses import dataclass, field

from routerwatch.bounded import BoundedDict
from routerwatch.contract import SEVERITIES

HOUR = 3600.0
MAX_LISTED = 10        # anomalies a message lists one by one; the rest are counted per kind
MAX_KINDS = 32         # distinct kinds counted per group; more are counted as "other"
MAX_OPEN_GROUPS = 4096 # devices with a message waiting; beyond this the oldest group is dropped


def severity_rank(severity):
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


@dataclass
class Group:
    """The anomalies of one device waiting to be sent as one message."""
    device: str
    opened: float
    listed: list = field(default_factory=list)          # the first MAX_LISTED rows
    kinds: dict = field(default_factory=dict)           # kind -> anomalies (count included)
    examples: dict = field(default_factory=dict)        # kind -> its first row, MAX_KINDS kinds
    total: int = 0                                       # anomalies in the group
    highest: str = "info"
    held: bool = False                                   # it waited for the rate limit

    def shown(self):
        """The rows a message lists: the first MAX_LISTED, and the first of every other kind,
        so a kind arriving late in a flood (agent.silent after an attack) is still named."""
        rows = list(self.listed)
        listed_kinds = {row.kind for row in rows}
        rows.extend(row for kind, row in self.examples.items() if kind not in listed_kinds)
        return rows

    def add(self, row):
        weight = max(1, int(getattr(row, "count", 1) or 1))
        self.total += weight
        if len(self.listed) < MAX_LISTED:
            self.listed.append(row)
        kind = row.kind if row.kind in self.kinds or len(self.kinds) < MAX_KINDS else "other"
        if kind != "other" and kind not in self.examples:
            self.examples[kind] = row
        self.kinds[kind] = self.kinds.get(kind, 0) + weight
        if severity_rank(row.severity) > severity_rank(self.highest):
            self.highest = row.severity


class Grouper:
    def __init__(self, group_wait=30.0, group_threshold=10, max_per_hour=6,
                 max_open_groups=MAX_OPEN_GROUPS):
        self.group_wait = group_wait
        self.group_threshold = group_threshold
        self.max_per_hour = max_per_hour
        self._open = BoundedDict(max_open_groups)                 # device -> Group
        self._sent = BoundedDict(max_open_groups)                 # device -> [send times]
        self.held_back = 0    # groups that waited for the rate limit

    @property
    def dropped(self):
        """Groups thrown away because too many devices had one open at once."""
        return self._open.evicted

    def add(self, row, now):
        group = self._open.get(row.device)
        if group is None:
            group = Group(device=row.device, opened=now)
            self._open.set(row.device, group)
        group.add(row)

    def waiting(self):
        return len(self._open)

    def next_due(self, now):
        """Seconds until a group may be due (None when none is open)."""
        soonest = None
        for device, group in self._open.items():
            due = self._due_at(device, group)
            soonest = due if soonest is None else min(soonest, due)
        return None if soonest is None else max(0.0, soonest - now)

    def due(self, now, everything=False):
        """The groups to send now, removed from the open ones. `everything`: all of them,
        rate limit or not (the collector is stopping)."""
        out = []
        for device, group in self._open.items():
            ready = group.total >= self.group_threshold or now >= group.opened + self.group_wait
            if not everything and not ready:
                continue
            if not everything and now < self._due_at(device, group):
                if not group.held:
                    group.held = True
                    self.held_back += 1
                continue
            self._open.pop(device)
            sent = [t for t in self._sent.get(device, []) if now - t < HOUR]
            sent.append(now)
            self._sent.set(device, sent[-self.max_per_hour:])
            out.append(group)
        return out

    def _due_at(self, device, group):
        ready_at = group.opened if group.total >= self.group_threshold \
            else group.opened + self.group_wait
        sent = self._sent.get(device) or []
        recent = [t for t in sent if t > ready_at - HOUR]
        if len(recent) >= self.max_per_hour:
            ready_at = max(ready_at, recent[-self.max_per_hour] + HOUR)
        return ready_at
