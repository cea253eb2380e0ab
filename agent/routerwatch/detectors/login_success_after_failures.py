"""login.success_after_failures: a login succeeded from a source that was just failing, or for a
user name many sources were just failing on: a guessed password, the worst login outcome.

Two ways to see it:
  * the source (an IPv4 address, an IPv6 /64) failed at least `min_failures` times within
    `window` before the success: a brute force that worked;
  * the user name failed at least `min_user_failures` times within `window`, from any sources:
    a distributed guess (spray) that worked, wherever the success comes from.
The owner mistyping a password once or twice and then logging in stays below both. A success
clears what was remembered for its source and name, so the next login does not repeat it.
"""
from dataclasses import dataclass

from ..bounded import BoundedDict
from ..events import LoginAttempt
from ..options import option
from ..parsers.login_address import source_group
from .base import Detector, DetectorConfig, Finding

MAX_LISTED = 16


@dataclass(frozen=True)
class Config(DetectorConfig):
    window: int = option(3600, 60, 7 * 86400,
                         "seconds before a success in which failures make it suspicious")
    min_failures: int = option(5, 1, 100000,
                               "failures from the source before the success; the owner "
                               "mistyping once or twice stays below")
    min_user_failures: int = option(10, 1, 100000,
                                    "failures for the user name (from any sources) before a "
                                    "success for it")
    ipv6_prefix: int = option(64, 32, 128, "IPv6 sources are grouped by this prefix length")
    max_tracked: int = option(4096, 16, 1000000,
                              "sources and user names remembered each; the oldest are forgotten")


class _Failures:
    __slots__ = ("count", "first", "last", "names", "services")

    def __init__(self, time):
        self.count = 0
        self.first = time
        self.last = time
        self.names = []      # user names failing from a source, or sources failing for a name
        self.services = []


class LoginSuccessAfterFailures(Detector):
    kind = "login.success_after_failures"
    Config = Config
    consumes = (LoginAttempt,)

    def __init__(self, config):
        super().__init__(config)
        self._by_source = BoundedDict(config.max_tracked)
        self._by_user = BoundedDict(config.max_tracked)

    def drops(self):
        return {"login.success_after_failures.tracked":
                self._by_source.evicted + self._by_user.evicted}

    def observe(self, event):
        group = source_group(event.source_ip, 32, self.config.ipv6_prefix)
        if event.outcome == "failure":
            if group is not None:
                self._note(self._by_source, group, event, event.user)
            if event.user is not None:
                self._note(self._by_user, event.user, event, event.source_ip)
            return []
        if event.outcome != "success":
            return []
        cfg = self.config
        by_source = self._by_source.pop(group) if group is not None else None
        by_user = self._by_user.pop(event.user) if event.user is not None else None
        if by_source is not None and event.time - by_source.last <= cfg.window \
                and by_source.count >= cfg.min_failures:
            return [self._finding(event, group, by_source, "source")]
        if by_user is not None and event.time - by_user.last <= cfg.window \
                and by_user.count >= cfg.min_user_failures:
            return [self._finding(event, group, by_user, "user")]
        return []

    def _note(self, table, key, event, name):
        state = table.get(key)
        if state is None or event.time - state.last > self.config.window:
            state = _Failures(event.time)
            table.set(key, state)
        state.count += event.attempts
        state.last = max(state.last, event.time)
        if name is not None and name not in state.names and len(state.names) < MAX_LISTED:
            state.names.append(name)
        if event.service not in state.services:
            state.services.append(event.service)

    def _finding(self, event, group, failures, by):
        if by == "source":
            summary = "login as %s from %s succeeded after %d failures from it" % (
                event.user or "?", event.source_ip or "?", failures.count)
            incident = group
        else:
            summary = "login as %s from %s succeeded after %d failures for that user" % (
                event.user or "?", event.source_ip or "?", failures.count)
            incident = "user:%s" % event.user
        evidence = {
            "source_ip": event.source_ip,
            "source": group,
            "user": event.user,
            "service": event.service,
            "method": event.method,
            "by": by,
            "failures": failures.count,
            # from a source: the user names it tried; for a user: the sources that tried it
            ("users" if by == "source" else "sources"): list(failures.names),
            "failed_services": list(failures.services),
            "window": self.config.window,
            "first": failures.first,
            "last": failures.last,
            "success": event.time,
        }
        return Finding(kind=self.kind, severity="high", summary=summary, evidence=evidence,
                       incident=incident, time=event.time)


DETECTOR = LoginSuccessAfterFailures
