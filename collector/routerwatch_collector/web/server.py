"""`routerwatch-collector serve` and `run --serve`: where the dashboard listens and how.

Loopback by default. Any other address needs --auth-file (users and tokens, see security.py);
without --cert/--key it is plain HTTP, so put it behind a TLS reverse proxy or give it both.
"""
import ipaddress
import logging
import re
import ssl
import threading

from .security import Credentials, CredentialsError

DEFAULT_LISTEN = "127.0.0.1:8080"
log = logging.getLogger("routerwatch_collector")

_LISTEN_RE = re.compile(r"\A(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)|([0-9A-Fa-f:]+:[0-9A-Fa-f:.]*))?:(\d{1,5})\Z")


class ServeError(ValueError):
    """A setting the dashboard cannot start with; the text says what to change."""


def parse_listen(text):
    """'127.0.0.1:8080', '[::1]:8080', 'localhost:8080', '0.0.0.0:443' -> (host, port)."""
    match = _LISTEN_RE.match(text.strip())
    if not match:
        raise ServeError("--listen must be HOST:PORT like 127.0.0.1:8080 or [::1]:8080, got %r"
                         % text[:80])
    host = match.group(1) or match.group(2) or match.group(3) or "127.0.0.1"
    port = int(match.group(4))
    if not 1 <= port <= 65535:
        raise ServeError("--listen port must be 1-65535, got %d" % port)
    return host, port


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False       # a host name may resolve anywhere: treat it as reachable


def check_settings(host, auth_file, cert, key):
    """Credentials (or None) for these settings, or a ServeError saying what is missing."""
    if (cert is None) != (key is None):
        raise ServeError("--cert and --key go together")
    if cert:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ServeError("cannot load the TLS certificate %s and key %s: %s"
                             % (cert, key, exc))
    credentials = None
    if auth_file:
        try:
            credentials = Credentials.from_file(auth_file)
        except CredentialsError as exc:
            raise ServeError(str(exc))
    if not is_loopback(host) and credentials is None:
        raise ServeError("the dashboard shows which routers are compromised: listening on %s "
                         "(not loopback) needs --auth-file with users or tokens" % host)
    if not is_loopback(host) and not cert:
        log.warning("the dashboard on %s speaks plain HTTP: passwords and tokens cross the "
                    "network readable; give it --cert/--key or put a TLS proxy in front", host)
    return credentials


def uvicorn_server(app, host, port, cert=None, key=None):
    import uvicorn
    config = uvicorn.Config(
        app, host=host, port=port, ssl_certfile=cert, ssl_keyfile=key, http="h11",
        loop="asyncio", lifespan="on", log_level="warning", access_log=False,
        server_header=False, proxy_headers=False, limit_concurrency=100, timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024, timeout_graceful_shutdown=3)
    return uvicorn.Server(config)


def store_factory(db, open_store):
    return lambda: open_store(db, create=False, read_only=True)


class BackgroundServer:
    """The dashboard in a thread beside `run`'s MQTT loop (one process does both)."""

    def __init__(self, server):
        self.server = server
        self.thread = threading.Thread(target=server.run, name="dashboard", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self, timeout=10.0):
        self.server.should_exit = True
        self.thread.join(timeout)
