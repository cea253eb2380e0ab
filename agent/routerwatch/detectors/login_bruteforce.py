"""login.bruteforce: many failed logins from one source within a sliding window.

A source is one IPv4 address or one IPv6 /64 (a single host with SLAAC privacy addresses, or an
attacker who owns the /64, rotates through it). Failures whose address is unknown (LuCI's "?",
lines too long to trust their end) are judged together as the source "unknown".

The finding is sent when the window first holds `threshold` failures and again each time the
incident's total doubles; the runtime's incident gate folds those repeats into one anomaly per
source (incident key = the source), so one attack is one anomaly with a count.
"""
from collections import deque
from dataclasses import dataclass

from ..bounded import BoundedDict
from ..events import LoginAttempt
from ..options import option
from ..parsers.login_address import source_group
from .base import Detector, DetectorConfig, Finding

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Config(DetectorConfig):
    threshold: int = option(10, 2, 1000,
                            "failures from one source in the window; fail2ban bans at 5, but the "
                            "owner mistyping a password five times must not page anyone")
    window: int = option(600, 10, 86400, "seconds the failures are counted over")
    high_threshold: int = option(100, 2, 1000000,
                                 "failures in one incident that make it high: a tool, not a person")
    ipv6_prefix: int = option(64, 32, 128, "IPv6 sources are grouped by this prefix length")
    max_sources: int = option(4096, 16, 1000000,
                              "sources tracked at once; the least recently failing are forgotten")
    max_users: int = option(16, 1, 256, "distinct user names kept as evidence per source")


class _Source:
    __slots__ = ("recent", "in_window", "total", "first", "last", "users", "addresses",
                 "services", "next_report")

    def __init__(self, time):
        self.recent = deque()        # (time, attempts), at most `threshold` entries
        self.in_window = 0           # sum of attempts in `recent`
        self.total = 0               # failures since this incident began
        self.first = time
        self.last = time
        self.users = []              # bounded by max_users
        self.addresses = []          # bounded (IPv6 /64 members)
        self.services = []
        self.next_report = 0         # total at which the next finding goes out (0 = not yet)


MAX_ADDRESSES = 8


class LoginBruteforce(Detector):
    kind = "login.bruteforce"
    Config = Config
    consumes = (LoginAttempt,)

    def __init__(self, config):
        super().__init__(config)
        self._sources = BoundedDict(config.max_sources)

    def drops(self):
        return {"login.bruteforce.sources": self._sources.evicted}

    def observe(self, event):
        if event.outcome != "failure":
            return []
        cfg = self.config
        key = source_group(event.source_ip, 32, cfg.ipv6_prefix) or UNKNOWN
        now = event.time
        state = self._sources.get(key)
        if state is None or now - state.last > cfg.window:
            state = _Source(now)      # quiet for a whole window: a new incident
            self._sources.set(key, state)
        state.last = max(state.last, now)
        state.total += event.attempts
        recent = state.recent
        recent.append((now, event.attempts))
        state.in_window += event.attempts
        cutoff = now - cfg.window
        # keeping the latest `threshold` entries is enough: each stands for at least one failure
        while recent and (recent[0][0] < cutoff or len(recent) > cfg.threshold):
            state.in_window -= recent.popleft()[1]
        if event.user is not None and event.user not in state.users \
                and len(state.users) < cfg.max_users:
            state.users.append(event.user)
        if event.source_ip is not None and event.source_ip not in state.addresses \
                and len(state.addresses) < MAX_ADDRESSES:
            state.addresses.append(event.source_ip)
        if event.service not in state.services:
            state.services.append(event.service)
        if state.next_report == 0:
            if state.in_window < cfg.threshold:
                return []
        elif state.total < state.next_report:
            return []
        state.next_report = max(state.total * 2, cfg.threshold * 2)
        return [self._finding(key, state, event)]

    def _finding(self, key, state, event):
        cfg = self.config
        severity = "high" if state.total >= cfg.high_threshold else "medium"
        source = event.source_ip if key != UNKNOWN else None
        where = key if key != UNKNOWN else "an unknown source"
        summary = "%d failed logins from %s (%s) in %d s" % (
            state.total, where, "+".join(state.services), state.last - state.first)
        evidence = {
            "source_ip": source,
            "source": key,
            "addresses": list(state.addresses),
            "users": list(state.users),
            "failures": state.total,
            "window": cfg.window,
            "threshold": cfg.threshold,
            "first": state.first,
            "last": state.last,
            "service": state.services[0] if len(state.services) == 1 else "+".join(state.services),
        }
        return Finding(kind=self.kind, severity=severity, summary=summary, evidence=evidence,
                       incident=key, time=event.time)


DETECTOR = LoginBruteforce
