"""A real Home Assistant Core for tests, from the venv ci/install-homeassistant.sh makes
(.venv-ha, or $ROUTERWATCH_HA_VENV).

    ha = HomeAssistant(workdir)
    ha.start()                              # free loopback port, own config dir, own token
    ha.add_mqtt("127.0.0.1", broker.port)   # the MQTT integration, through its config flow
    ha.states()                             # /api/states as {entity_id: state dict}
    ha.render("{{ device_attr(...) }}")     # /api/template
    ha.stop()                               # always kills it

The owner and a long-lived access token are written into the config dir's auth storage before
the start (the storage format of the pinned release), so no onboarding is needed; the token is
signed the way Home Assistant signs its access tokens (HS256 with the refresh token's key). The
MQTT integration is set up the way a user does it, through the config flow of the REST API.
"""
import base64
import datetime
import hashlib
import hmac
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from broker import free_port

REPO = Path(__file__).resolve().parents[2]
HA_VERSION = "2025.4.4"          # the same pin as ci/install-homeassistant.sh


def ha_venv():
    return Path(os.environ.get("ROUTERWATCH_HA_VENV") or REPO / ".venv-ha")


def find_hass():
    hass = ha_venv() / "bin" / "hass"
    return hass if hass.exists() else None


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def access_token(refresh_id, jwt_key, lifetime=3600):
    now = int(time.time())
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = _b64(json.dumps({"iss": refresh_id, "iat": now, "exp": now + lifetime}).encode())
    signature = hmac.new(jwt_key.encode(), ("%s.%s" % (header, claims)).encode(),
                         hashlib.sha256).digest()
    return "%s.%s.%s" % (header, claims, _b64(signature))


CONFIGURATION = """\
homeassistant:
  name: routerwatch test
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
  language: en
  auth_providers:
    - type: trusted_networks
      trusted_networks: [127.0.0.1/32]
      allow_bypass_login: true
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
"""


class HomeAssistant:
    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.config_dir = self.workdir / "ha-config"
        self.port = None
        self.process = None
        self.token = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout=120):
        hass = find_hass()
        if hass is None:
            raise RuntimeError("Home Assistant is not installed (ci/install-homeassistant.sh)")
        self.port = free_port()
        storage = self.config_dir / ".storage"
        storage.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        self._seed_owner(storage)
        log = open(self.workdir / "home-assistant.out", "wb")
        self.process = subprocess.Popen(
            [str(hass), "--config", str(self.config_dir), "--skip-pip"], stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("Home Assistant exited (%s): %s" % (
                    self.process.returncode, self.log_tail()))
            try:
                if self.api("GET", "/api/").get("message") == "API running.":
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError("Home Assistant did not answer within %d s: %s" % (timeout,
                                                                              self.log_tail()))

    def _seed_owner(self, storage):
        user_id, refresh_id = secrets.token_hex(16), secrets.token_hex(16)
        jwt_key = secrets.token_hex(64)
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        auth = {"version": 1, "minor_version": 1, "key": "auth", "data": {
            # no groups: Home Assistant creates its system groups and makes the user an admin
            "users": [{"id": user_id, "group_ids": [], "is_owner": True, "is_active": True,
                       "name": "routerwatch tests", "system_generated": False,
                       "local_only": False}],
            "groups": [], "credentials": [],
            "refresh_tokens": [{
                "id": refresh_id, "user_id": user_id, "client_id": None,
                "client_name": "routerwatch tests", "client_icon": None,
                "token_type": "long_lived_access_token", "created_at": now,
                "access_token_expiration": 86400, "token": secrets.token_hex(64),
                "jwt_key": jwt_key, "last_used_at": None, "last_used_ip": None,
                "credential_id": None, "version": HA_VERSION}]}}
        (storage / "auth").write_text(json.dumps(auth))
        # onboarding done: the frontend (the screenshot) shows the dashboard, not the wizard
        (storage / "onboarding").write_text(json.dumps({
            "version": 4, "minor_version": 1, "key": "onboarding",
            "data": {"done": ["user", "core_config", "analytics", "integration"]}}))
        self.token = access_token(refresh_id, jwt_key)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(10)
        self.process = None

    def log_tail(self, lines=30):
        try:
            text = (self.workdir / "home-assistant.out").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------ the REST API
    def api(self, method, path, body=None, timeout=10):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (self.port, path), data=data, method=method,
            headers={"Authorization": "Bearer %s" % self.token,
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
        try:
            return json.loads(text)
        except ValueError:
            return text

    def add_mqtt(self, host, port):
        """The MQTT integration through its config flow, as in Settings -> Add integration."""
        step = self.api("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        for _ in range(5):
            if step.get("type") == "create_entry":
                return step
            if step.get("type") == "menu":
                step = self.api("POST", "/api/config/config_entries/flow/%s" % step["flow_id"],
                                {"next_step_id": "broker"})
                continue
            if step.get("type") != "form":
                raise RuntimeError("unexpected MQTT config flow step: %r" % step)
            step = self.api("POST", "/api/config/config_entries/flow/%s" % step["flow_id"],
                            {"broker": host, "port": port})
        raise RuntimeError("the MQTT config flow did not finish: %r" % step)

    def states(self):
        return {s["entity_id"]: s for s in self.api("GET", "/api/states")}

    def render(self, template):
        return self.api("POST", "/api/template", {"template": template})
