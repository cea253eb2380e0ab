"""login.success_after_failures: a login succeeded from a source that was just failing, or a
password was accepted from a stranger for a user name a spray was just failing on: a guessed
password, the worst login outcome.

Two ways to see it:
  * the source (an IPv4 address, an IPv6 /64) failed at least `min_failures` times within
    `window` before the success, whatever the method: a brute force that worked;
  * the user name failed at least `min_user_failures` times within `window`, from at least
    `min_user_sources` sources (a spray), and the success
      - is a password (a key is not something a spray guesses),
      - comes from outside (inside.py: not the LAN, private, link-local or loopback), and
      - comes from a network not known for logins: neither remembered by login.new_source (its
        state file) nor seen logging in since the agent started.
    On a router whose SSH faces the internet bots fail on root all day; the owner logging in
    from home, from a remembered network, or with a key is not a guessed password.
The owner mistyping a password once or twice and then logging in stays below both. A finding
clears what it was built on, so the next login does not repeat it; a success that is no finding
clears only its own source's failures (the owner's key login does not end a running spray).
"""
import ipaddress
import os
from dataclasses import dataclass

from ..bounded import BoundedDict
from ..events import LoginAttempt
from ..options import option
from ..parsers.login_address import source_group
from .base import Detector, DetectorConfig, Finding
from .login_new_source import STATE_FILE, read_known_networks

MAX_LISTED = 16
# what a spray can guess: passwords (LuCI's included), not keys
PASSWORD_METHODS = ("password", "password_partial", "blank_password")
# how networks seen logging in are remembered, as login.new_source does by default
KNOWN_IPV4_PREFIX = 24
KNOWN_IPV6_PREFIX = 64


@dataclass(frozen=True)
class Config(DetectorConfig):
    window: int = option(3600, 60, 7 * 86400,
                         "seconds before a success in which failures make it suspicious")
    min_failures: int = option(5, 1, 100000,
                               "failures from the source before the success; the owner "
                               "mistyping once or twice stays below")
    min_user_failures: int = option(10, 1, 100000,
                                    "failures for the user name (from any sources) before a "
                                    "password success for it from an unknown outside network")
    min_user_sources: int = option(3, 1, 100000,
                                   "distinct sources those failures come from: a spray, not one "
                                   "bot (which the source rule covers)")
    ipv6_prefix: int = option(64, 32, 128, "IPv6 sources are grouped by this prefix length")
    max_tracked: int = option(4096, 16, 1000000,
                              "sources, user names and known networks remembered each; the "
                              "oldest are forgotten")


class _Failures:
    __slots__ = ("count", "first", "last", "names", "services", "distinct")

    def __init__(self, time):
        self.count = 0
        self.first = time
        self.last = time
        self.names = []      # user names failing from a source, or sources failing for a name
        self.services = []
        self.distinct = 0    # distinct names (sources) seen, beyond the listed ones too


class LoginSuccessAfterFailures(Detector):
    kind = "login.success_after_failures"
    Config = Config
    consumes = (LoginAttempt,)

    def __init__(self, config):
        super().__init__(config)
        self._by_source = BoundedDict(config.max_tracked)
        self._by_user = BoundedDict(config.max_tracked)
        self._known = BoundedDict(config.max_tracked)    # network text -> last login
        self._known_prefixes = {(KNOWN_IPV4_PREFIX, KNOWN_IPV6_PREFIX)}

    def use_state_dir(self, state_dir):
        """Networks login.new_source remembers (read only; that detector writes the file)."""
        for net, seen in read_known_networks(os.path.join(state_dir, STATE_FILE),
                                             self.config.max_tracked):
            network = ipaddress.ip_network(net, strict=False)
            pair = (network.prefixlen, KNOWN_IPV6_PREFIX) if network.version == 4 \
                else (KNOWN_IPV4_PREFIX, network.prefixlen)
            self._known_prefixes.add(pair)
            self._known.set(str(network), seen)

    def drops(self):
        return {"login.success_after_failures.tracked":
                self._by_source.evicted + self._by_user.evicted + self._known.evicted}

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
        if by_source is not None and event.time - by_source.last <= cfg.window \
                and by_source.count >= cfg.min_failures:
            return [self._finding(event, group, by_source, "source")]
        known = self._is_known(event.source_ip)
        by_user = self._by_user.get(event.user) if event.user is not None else None
        if by_user is not None and event.time - by_user.last <= cfg.window \
                and by_user.count >= cfg.min_user_failures \
                and by_user.distinct >= cfg.min_user_sources \
                and event.method in PASSWORD_METHODS \
                and event.source_ip is not None and event.source_ip not in self.inside \
                and not known:
            self._by_user.pop(event.user)
            return [self._finding(event, group, by_user, "user")]
        if event.source_ip is not None:
            self._remember(event.source_ip, event.time)
        return []

    def _is_known(self, ip):
        if ip is None:
            return False
        return any(source_group(ip, v4, v6) in self._known for v4, v6 in self._known_prefixes)

    def _remember(self, ip, time):
        self._known.set(source_group(ip, KNOWN_IPV4_PREFIX, KNOWN_IPV6_PREFIX), time)

    def _note(self, table, key, event, name):
        state = table.get(key)
        if state is None or event.time - state.last > self.config.window:
            state = _Failures(event.time)
            table.set(key, state)
        state.count += event.attempts
        state.last = max(state.last, event.time)
        if name is not None and name not in state.names:
            state.distinct += 1
            if len(state.names) < MAX_LISTED:
                state.names.append(name)
        if event.service not in state.services:
            state.services.append(event.service)

    def _finding(self, event, group, failures, by):
        if by == "source":
            summary = "login as %s from %s succeeded after %d failures from it" % (
                event.user or "?", event.source_ip or "?", failures.count)
            incident = group
        else:
            summary = ("password login as %s from an unknown outside network %s during a spray: "
                       "%d failures for that user from %d sources" % (
                           event.user or "?", event.source_ip or "?", failures.count,
                           failures.distinct))
            incident = "user:%s" % event.user
        evidence = {
            "source_ip": event.source_ip,
            "source": group,
            "inside": event.source_ip is not None and event.source_ip in self.inside,
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
