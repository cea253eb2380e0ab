"""login.bruteforce: many failed logins from one source, within a short window or a long one.

A source is one IPv4 address or one IPv6 /64 (a single host with SLAAC privacy addresses, or an
attacker who owns the /64, rotates through it). Failures whose address is unknown (LuCI's "?",
lines too long to trust their end) are judged together as the source "unknown", as outside.

Sources are judged by their side (inside.py): a stranger has no password to mistype, so an outside
source is held to fail2ban's default (maxretry 5 in 10 min) and the owner's side (the LAN,
private, link-local, loopback) to a tolerant threshold. Two windows per source:
  * `window` (10 min): a fast guesser, reported at `threshold` / `inside_threshold` failures;
  * `slow_window` (a day): a guesser that stays under the short window - a few tries every ten
    minutes, all day (what fail2ban's recidive jail and CrowdSec's ssh-slow-bf catch) - reported
    at `slow_threshold` / `inside_slow_threshold` failures. It is counted in at most
    SLOW_BUCKETS time buckets per source, so its memory is bounded whatever the rate.
An incident lasts while the source keeps failing within `slow_window` of its previous failure.

The finding is sent when a threshold is first met and again each time the incident's total
doubles; the runtime's incident gate folds those repeats into one anomaly per source (incident
key = the source), so one attack is one anomaly with a count.
"""
from collections import deque
from dataclasses import dataclass

from ..bounded import BoundedDict
from ..events import LoginAttempt
from ..options import option
from ..parsers.login_address import source_group
from .base import Detector, DetectorConfig, Finding

UNKNOWN = "unknown"
SLOW_BUCKETS = 24             # the long window is counted in this many slices (an hour each)


@dataclass(frozen=True)
class Config(DetectorConfig):
    threshold: int = option(5, 2, 1000,
                            "failures from an outside source in the window: as strict as "
                            "fail2ban (maxretry 5 in 10 min); a stranger has no password to "
                            "mistype")
    inside_threshold: int = option(10, 2, 1000,
                                   "failures from the owner's side (LAN, private, link-local, "
                                   "loopback) in the window: the owner mistyping a password five "
                                   "times must not page anyone")
    window: int = option(600, 10, 86400, "seconds the short window counts failures over")
    slow_window: int = option(86400, 600, 7 * 86400,
                              "seconds of the long window, for guessers that stay under the "
                              "short one (fail2ban's recidive, CrowdSec's ssh-slow-bf look as "
                              "far back)")
    slow_threshold: int = option(20, 2, 1000000,
                                 "failures from an outside source in the long window")
    inside_slow_threshold: int = option(60, 2, 1000000,
                                        "failures from the owner's side in the long window: a "
                                        "forgotten device retrying an old password stays below")
    high_threshold: int = option(100, 2, 1000000,
                                 "failures in one incident that make it high: a tool, not a person")
    ipv6_prefix: int = option(64, 32, 128, "IPv6 sources are grouped by this prefix length")
    max_sources: int = option(4096, 16, 1000000,
                              "sources tracked at once; the least recently failing are forgotten")
    max_users: int = option(16, 1, 256, "distinct user names kept as evidence per source")


class _Source:
    __slots__ = ("recent", "in_window", "slow", "in_slow", "total", "first", "last", "users",
                 "addresses", "services", "next_report", "inside", "by")

    def __init__(self, time, inside):
        self.recent = deque()        # (time, attempts), at most `threshold` entries
        self.in_window = 0           # sum of attempts in `recent`
        self.slow = deque()          # [bucket number, attempts], at most SLOW_BUCKETS + 1
        self.in_slow = 0             # sum of attempts in `slow`
        self.total = 0               # failures since this incident began
        self.first = time
        self.last = time
        self.users = []              # bounded by max_users
        self.addresses = []          # bounded (IPv6 /64 members)
        self.services = []
        self.next_report = 0         # total at which the next finding goes out (0 = not yet)
        self.inside = inside
        self.by = None               # which window first reported it: "window" | "slow_window"


MAX_ADDRESSES = 8


class _Latest:
    """What _finding reads of an event, for a finding rebuilt from the state alone."""
    __slots__ = ("source_ip", "time")

    def __init__(self, source_ip, time):
        self.source_ip = source_ip
        self.time = time


class LoginBruteforce(Detector):
    kind = "login.bruteforce"
    Config = Config
    consumes = (LoginAttempt,)

    def __init__(self, config):
        super().__init__(config)
        self._sources = BoundedDict(config.max_sources)
        self._bucket_seconds = max(1, config.slow_window // SLOW_BUCKETS)

    def drops(self):
        return {"login.bruteforce.sources": self._sources.evicted}

    def observe(self, event):
        if event.outcome != "failure":
            return []
        cfg = self.config
        key = source_group(event.source_ip, 32, cfg.ipv6_prefix) or UNKNOWN
        now = event.time
        state = self._sources.get(key)
        if state is None or now - state.last > cfg.slow_window:
            # quiet for a whole long window: a new incident
            state = _Source(now, event.source_ip is not None and event.source_ip in self.inside)
            self._sources.set(key, state)
        state.last = max(state.last, now)
        state.total += event.attempts
        short_limit = cfg.inside_threshold if state.inside else cfg.threshold
        slow_limit = cfg.inside_slow_threshold if state.inside else cfg.slow_threshold
        recent = state.recent
        recent.append((now, event.attempts))
        state.in_window += event.attempts
        cutoff = now - cfg.window
        # keeping the latest `threshold` entries is enough: each stands for at least one failure
        while recent and (recent[0][0] < cutoff or len(recent) > short_limit):
            state.in_window -= recent.popleft()[1]
        self._count_slow(state, now, event.attempts)
        if event.user is not None and event.user not in state.users \
                and len(state.users) < cfg.max_users:
            state.users.append(event.user)
        if event.source_ip is not None and event.source_ip not in state.addresses \
                and len(state.addresses) < MAX_ADDRESSES:
            state.addresses.append(event.source_ip)
        if event.service not in state.services:
            state.services.append(event.service)
        if state.next_report == 0:
            if state.in_window >= short_limit:
                by = "window"
            elif state.in_slow >= slow_limit:
                by = "slow_window"
            else:
                return []
            state.by = by
            state.next_report = max(state.total * 2, short_limit * 2)
            return [self._finding(key, state, event, short_limit, slow_limit)]
        if state.total < state.next_report:
            return []
        state.next_report = state.total * 2
        return [self._finding(key, state, event, short_limit, slow_limit)]

    def final(self, finding):
        """The incident's finding with its count and span as they are now (--once)."""
        state = self._sources.get(finding.incident)
        if state is None or state.first != finding.evidence["first"]:
            return finding         # forgotten, or a later incident of the source: keep it
        cfg = self.config
        short_limit = cfg.inside_threshold if state.inside else cfg.threshold
        slow_limit = cfg.inside_slow_threshold if state.inside else cfg.slow_threshold
        event = _Latest(finding.evidence["source_ip"], state.last)
        return self._finding(finding.incident, state, event, short_limit, slow_limit)

    def _count_slow(self, state, now, attempts):
        bucket = int(now // self._bucket_seconds)
        slow = state.slow
        if slow and slow[-1][0] >= bucket:
            slow[-1][1] += attempts     # the same slice (or a line a little out of order)
        else:
            slow.append([bucket, attempts])
        state.in_slow += attempts
        oldest = bucket - SLOW_BUCKETS
        while slow and slow[0][0] <= oldest:
            state.in_slow -= slow.popleft()[1]

    def _finding(self, key, state, event, short_limit, slow_limit):
        cfg = self.config
        severity = "high" if state.total >= cfg.high_threshold else "medium"
        source = event.source_ip if key != UNKNOWN else None
        where = key if key != UNKNOWN else "an unknown source"
        side = "inside" if state.inside else "outside"
        summary = "%d failed logins from %s (%s, %s) in %d s" % (
            state.total, where, side, "+".join(state.services), state.last - state.first)
        if state.by == "slow_window":
            summary += ", slowly: under the %d s window" % cfg.window
        evidence = {
            "source_ip": source,
            "source": key,
            "inside": state.inside,
            "addresses": list(state.addresses),
            "users": list(state.users),
            "failures": state.total,
            "window": cfg.window,
            "threshold": short_limit,
            "slow_window": cfg.slow_window,
            "slow_threshold": slow_limit,
            "first": state.first,
            "last": state.last,
            "service": state.services[0] if len(state.services) == 1 else "+".join(state.services),
            "by": state.by,
        }
        return Finding(kind=self.kind, severity=severity, summary=summary, evidence=evidence,
                       incident=key, time=event.time)


DETECTOR = LoginBruteforce
