"""Security headers on every response, and authentication from a credentials file.

The dashboard shows which routers are compromised, so off loopback it must not answer strangers.
Credentials file (one per line, '#' comments; keep it mode 0600):

    alice:a long password        a user for the browser (HTTP Basic)
    6f1c0e...                    a token for scripts (Authorization: Bearer <token>)
"""
import base64
import binascii
import hmac
import os
import stat

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    # what routers are compromised is not for shared caches or the browser's disk
    (b"cache-control", b"no-store"),
]
MAX_CREDENTIAL_CHARS = 1024
MIN_SECRET_CHARS = 12


class CredentialsError(ValueError):
    pass


class Credentials:
    """Users and tokens from a file; checks compare in constant time against every entry."""

    def __init__(self, users, tokens):
        self.users = [(u.encode(), p.encode()) for u, p in users]
        self.tokens = [t.encode() for t in tokens]

    @classmethod
    def from_file(cls, path):
        try:
            info = os.stat(path)
            with open(path, encoding="utf-8") as handle:
                text = handle.read(1 << 20)
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialsError("cannot read the credentials file %s: %s" % (path, exc))
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialsError("the credentials file %s is readable by other users: "
                                   "chmod 600 %s" % (path, path))
        users, tokens = [], []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if len(line) > MAX_CREDENTIAL_CHARS:
                raise CredentialsError("%s line %d is longer than %d characters"
                                       % (path, number, MAX_CREDENTIAL_CHARS))
            user, colon, secret = line.partition(":")
            if colon and not user:
                raise CredentialsError("%s line %d: a user name is missing before ':'"
                                       % (path, number))
            secret = secret if colon else user
            if len(secret) < MIN_SECRET_CHARS:
                raise CredentialsError("%s line %d: a password or token must have at least %d "
                                       "characters" % (path, number, MIN_SECRET_CHARS))
            if colon:
                users.append((user, secret))
            else:
                tokens.append(secret)
        if not users and not tokens:
            raise CredentialsError("the credentials file %s holds no user and no token" % path)
        return cls(users, tokens)

    def check(self, authorization):
        """True if the Authorization header value names a known user/password or token."""
        if isinstance(authorization, str):
            authorization = authorization.encode("utf-8")
        if not authorization or len(authorization) > 4 * MAX_CREDENTIAL_CHARS:
            return False
        scheme, _, value = authorization.partition(b" ")
        scheme = scheme.lower()
        value = value.strip()
        ok = False
        if scheme == b"bearer":
            for token in self.tokens:
                ok |= hmac.compare_digest(value, token)
        elif scheme == b"basic":
            try:
                decoded = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
            user, colon, password = decoded.partition(b":")
            if not colon:
                return False
            for known_user, known_password in self.users:
                ok |= (hmac.compare_digest(user, known_user)
                       & hmac.compare_digest(password, known_password))
        return ok


class SecurityMiddleware:
    """ASGI middleware: answers 401 without valid credentials (when there are credentials),
    and adds the security headers to every response, errors and static files included."""

    def __init__(self, app, credentials=None):
        self.app = app
        self.credentials = credentials

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.credentials is not None:
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not self.credentials.check(header):
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"www-authenticate", b'Basic realm="routerwatch", charset="UTF-8"'),
                ] + SECURITY_HEADERS})
                await send({"type": "http.response.body", "body": b"authentication required\n"})
                return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in dict(SECURITY_HEADERS)]
                message = dict(message, headers=headers + SECURITY_HEADERS)
            await send(message)

        return await self.app(scope, receive, send_with_headers)
