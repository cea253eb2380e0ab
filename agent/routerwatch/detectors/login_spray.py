"""login.spray: failed logins spread over many user names or many sources.

Password spraying tries few passwords on many accounts, and botnets such as CovertNetwork-1658
do it low and slow: thousands of nodes, each trying an account about once a day, so that no
single source ever reaches a brute-force threshold. On a router the accounts are few, so what
such an attack leaves is
  * many distinct sources failing within a day, each only once or twice, and/or
  * many distinct user names failing (a router has root and perhaps one more account).
A healthy router sees failures from one or two of the owner's devices, for one or two names.
Sources are grouped (IPv6 by /64) so one host's rotating privacy addresses count once, failures
without a known source are not counted as sources, and names dropbear does not log (the
2020.79-2024.85 nonexistent-user line) cannot count as names.

One router-wide incident ("spray"): the finding is sent when a threshold is first met and
refreshed each time the count of sources or names doubles; the incident gate folds the
refreshes into one anomaly.
"""
from dataclasses import dataclass

from ..bounded import BoundedDict
from ..events import LoginAttempt
from ..options import option
from ..parsers.login_address import source_group
from .base import Detector, DetectorConfig, Finding

MAX_LISTED = 16


class _At:
    """The time of a finding rebuilt from the state alone."""
    __slots__ = ("time",)

    def __init__(self, time):
        self.time = time


@dataclass(frozen=True)
class Config(DetectorConfig):
    cooldown: int = option(3600, 0, 86400,
                           "seconds during which repeats are counted, not sent: a spray lasts days")
    window: int = option(86400, 60, 7 * 86400,
                         "seconds the distinct sources and names are counted over: a low-and-slow "
                         "spray tries each account about once a day")
    min_sources: int = option(10, 2, 100000,
                              "distinct failing sources in the window; a healthy router sees the "
                              "owner's one or two devices")
    min_users: int = option(6, 2, 100000,
                            "distinct failing user names in the window; a router has root and "
                            "perhaps one more account")
    ipv6_prefix: int = option(64, 32, 128, "IPv6 sources are grouped by this prefix length")
    max_tracked: int = option(4096, 16, 1000000,
                              "sources and names remembered each; the oldest are forgotten")


class LoginSpray(Detector):
    kind = "login.spray"
    Config = Config
    consumes = (LoginAttempt,)

    def __init__(self, config):
        super().__init__(config)
        self._sources = BoundedDict(config.max_tracked)   # group -> last failure time
        self._users = BoundedDict(config.max_tracked)     # name -> last failure time
        self._failure_count = 0
        self._reported = (0, 0)      # (sources, users) of the last finding of this incident
        self._first = None
        self._last = None
        self._services = []

    def drops(self):
        return {"login.spray.tracked": self._sources.evicted + self._users.evicted}

    def observe(self, event):
        if event.outcome != "failure":
            return []
        cfg = self.config
        now = event.time
        cutoff = now - cfg.window
        self._expire(self._sources, cutoff)
        self._expire(self._users, cutoff)
        if self._last is None or now - self._last > cfg.window:
            # a whole window without failures: whatever comes now is a new incident
            self._failure_count, self._first, self._services = 0, now, []
            self._reported = (0, 0)
        self._last = now if self._last is None else max(self._last, now)
        self._failure_count += event.attempts
        if event.service not in self._services:
            self._services.append(event.service)
        new = False
        group = source_group(event.source_ip, 32, cfg.ipv6_prefix)
        if group is not None:
            new |= group not in self._sources
            self._sources.set(group, now)
        if event.user is not None:
            new |= event.user not in self._users
            self._users.set(event.user, now)
        if not new:
            return []
        sources, users = len(self._sources), len(self._users)
        by_sources, by_users = sources >= cfg.min_sources, users >= cfg.min_users
        if not (by_sources or by_users):
            return []
        # refresh the finding when a count has doubled since the last one, not on every new
        # source: a flood from random addresses must cost nothing per line
        last_sources, last_users = self._reported
        if not ((by_sources and sources >= 2 * last_sources)
                or (by_users and users >= 2 * last_users)):
            return []
        self._reported = (sources, users)
        return [self._finding(event, sources, users, by_sources, by_users)]

    @staticmethod
    def _expire(table, cutoff):
        while True:
            oldest = table.oldest()
            if oldest is None or oldest[1] >= cutoff:
                return
            table.pop(oldest[0])

    def final(self, finding):
        """The incident's finding with its counts and span as they are now (--once); the
        distinct counts are the most the window held."""
        if finding.evidence["first"] != self._first:
            return finding
        cfg = self.config
        sources = max(len(self._sources), finding.evidence["distinct_sources"])
        users = max(len(self._users), finding.evidence["distinct_users"])
        return self._finding(_At(self._last), sources, users, sources >= cfg.min_sources,
                             users >= cfg.min_users)

    def _finding(self, event, sources, users, by_sources, by_users):
        cfg = self.config
        # the most recent ones are the most useful to list: the table is ordered oldest first
        recent_sources = self._sources.keys()[-MAX_LISTED:]
        recent_users = self._users.keys()[-MAX_LISTED:]
        what = []
        if by_sources:
            what.append("%d sources" % sources)
        if by_users:
            what.append("%d user names" % users)
        summary = "password spray: failed logins from %s within %d h (%s)" % (
            " and ".join(what), cfg.window // 3600 or 1, "+".join(self._services))
        evidence = {
            "distinct_sources": sources,
            "distinct_users": users,
            "sources": recent_sources,
            "users": recent_users,
            "failures": self._failure_count,
            "window": cfg.window,
            "first": self._first,
            "last": self._last,
            "service": "+".join(self._services),
            "by": [name for name, hit in (("sources", by_sources), ("users", by_users)) if hit],
        }
        return Finding(kind=self.kind, severity="medium", summary=summary, evidence=evidence,
                       incident="spray", time=event.time)


DETECTOR = LoginSpray
