"""login.new_source: a successful login from a network never seen logging in before.

Sources are remembered as networks, not addresses: IPv4 by /24 (DHCP moves a laptop around the
LAN's /24) and IPv6 by /64 (privacy addresses change daily inside one /64). The set is bounded
(least recently seen forgotten first) and kept in <state_dir>/login_new_source.json so a restart
does not make every known network new again. Flash wears out, so the file is written only when
the set changed (a network added or forgotten, not a known one seen again), at most every
`persist_minutes`, atomically (temp file + rename).

Severity: the first successful login the agent ever sees (nothing remembered: a fresh install)
is `info` - that is the owner setting the router up. Later, a new network on the owner's side
(the LAN, private, link-local, loopback: inside.py) is `low` (a new device at home), a new outside
one `medium`. A password that was
guessed is login.success_after_failures' finding, which is high.
"""
import ipaddress
import logging
import os
from dataclasses import dataclass

from .. import jsonio
from ..bounded import BoundedDict
from ..events import LoginAttempt
from ..options import option
from ..parsers.login_address import source_group
from .base import Detector, DetectorConfig, Finding

log = logging.getLogger("routerwatch")

STATE_FILE = "login_new_source.json"
STATE_VERSION = 1
MAX_STATE_BYTES = 1024 * 1024
# a password or key that is right but still needs a second factor is no login yet
NOT_A_LOGIN = ("password_partial", "pubkey_partial")


@dataclass(frozen=True)
class Config(DetectorConfig):
    ipv4_prefix: int = option(24, 8, 32, "IPv4 sources are remembered by this prefix length: "
                              "DHCP moves a device around its /24")
    ipv6_prefix: int = option(64, 32, 128, "IPv6 sources are remembered by this prefix length: "
                              "privacy addresses change daily inside a /64")
    max_sources: int = option(256, 8, 100000, "networks remembered; the least recently seen "
                              "are forgotten (and would be new again)")
    persist_minutes: int = option(60, 1, 10080, "at most one write of the state file per this "
                                  "many minutes, and only when the set changed (flash wear)")


class LoginNewSource(Detector):
    kind = "login.new_source"
    Config = Config
    consumes = (LoginAttempt,)

    def __init__(self, config, state_dir=None):
        super().__init__(config)
        self._known = BoundedDict(config.max_sources)    # network -> last successful login
        self._path = None
        self._dirty = False
        self._last_write = None
        self.writes = 0
        self._write_failed = False
        if state_dir:
            self.use_state_dir(state_dir)

    # ------------------------------------------------------------------ state on flash
    def use_state_dir(self, state_dir):
        """Remember across restarts in state_dir (the runtime calls this with config.state_dir)."""
        self._path = os.path.join(state_dir, STATE_FILE)
        self._load()

    def _load(self):
        for net, seen in read_known_networks(self._path, self.config.max_sources):
            self._known.set(net, seen)

    def _save(self, now):
        networks = dict(self._known.items())
        text = jsonio.dumps({"v": STATE_VERSION, "networks": networks})
        temp = "%s.tmp" % self._path
        try:
            os.makedirs(os.path.dirname(self._path), exist_ok=True)
            with open(temp, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self._path)
        except OSError as exc:
            if not self._write_failed:
                log.warning("login.new_source: cannot write %s: %s", self._path, exc.strerror)
            self._write_failed = True
        else:
            self.writes += 1
            self._write_failed = False
        # a failed write waits its turn like a good one: retrying every loop would hammer flash
        self._dirty = False if not self._write_failed else True
        self._last_write = now

    def tick(self, now):
        if self._dirty and self._path is not None and (
                self._last_write is None
                or now - self._last_write >= self.config.persist_minutes * 60):
            self._save(now)
        return []

    def close(self):
        """Save what changed since the last write (the agent is stopping; the router may be
        rebooting)."""
        if self._dirty and self._path is not None:
            self._save(self._last_write or 0.0)

    def drops(self):
        return {"login.new_source.forgotten": self._known.evicted}

    # ------------------------------------------------------------------ detection
    def observe(self, event):
        if event.outcome != "success" or event.source_ip is None \
                or event.method in NOT_A_LOGIN:
            return []
        cfg = self.config
        network = source_group(event.source_ip, cfg.ipv4_prefix, cfg.ipv6_prefix)
        if network in self._known:
            self._known.set(network, event.time)     # refreshes recency; not a change to save
            return []
        first_ever = len(self._known) == 0
        evicted = self._known.evicted
        self._known.set(network, event.time)
        self._dirty = True
        if first_ever:
            severity = "info"
            summary = "first login seen on this router: %s from %s (%s) is now known" % (
                event.user or "?", event.source_ip, event.service)
        else:
            severity = "low" if event.source_ip in self.inside else "medium"
            summary = "login as %s from a new network %s (%s via %s)" % (
                event.user or "?", network, event.source_ip, event.service)
        evidence = {
            "source_ip": event.source_ip,
            "source": network,
            "user": event.user,
            "service": event.service,
            "method": event.method,
            "first_ever": first_ever,
            "known_sources": len(self._known) - 1,
            "forgot_oldest": self._known.evicted > evicted,
        }
        return [Finding(kind=self.kind, severity=severity, summary=summary, evidence=evidence,
                        incident=network, time=event.time)]


def read_known_networks(path, limit):
    """[(network text, last seen)] of a state file, least recently seen first, at most `limit`;
    [] (with a warning) when it is missing or unreadable. login.success_after_failures reads it
    too: a network the owner logged in from before is no stranger."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("login.new_source: cannot read %s: %s", path, exc.strerror)
        return []
    try:
        state = jsonio.loads(data) if len(data) <= MAX_STATE_BYTES else None
    except ValueError:
        state = None
    networks = state.get("networks") if isinstance(state, dict) else None
    if not isinstance(networks, dict):
        log.warning("login.new_source: ignoring unreadable %s", path)
        return []
    entries = [(net, float(seen)) for net, seen in networks.items()
               if isinstance(net, str) and len(net) <= 64 and _is_network(net)
               and isinstance(seen, (int, float)) and not isinstance(seen, bool)]
    return sorted(entries, key=lambda item: item[1])[-limit:]


def _is_network(text):
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


DETECTOR = LoginNewSource
