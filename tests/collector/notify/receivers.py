"""Real notification receivers on loopback for the notification tests: an HTTP endpoint (what
json:// and ntfy:// post to) and an SMTP server (aiosmtpd, what mailto:// sends to).

    with HttpReceiver() as http:            # http.port, http.requests: [Request]
        ...
    with HttpReceiver(hang=True) as http:   # accepts and reads, never answers (a dead receiver)
    with SmtpReceiver() as smtp:            # smtp.port, smtp.messages: [email.message.Message]
"""
import email
import email.policy
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict
    body: bytes


class HttpReceiver:
    def __init__(self, hang=False, status=200):
        self.hang = hang
        self.status = status
        self.requests = []
        self.hanging = threading.Event()     # set while a request is held unanswered
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(Request(self.command, self.path,
                                                 {k.lower(): v for k, v in self.headers.items()},
                                                 body))
                if receiver.hang:
                    receiver.hanging.set()
                    receiver._release.wait(60)
                    return
                payload = b'{"id":"x","event":"message"}'
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_PUT = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count, timeout=30.0):
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.requests)


class SmtpReceiver:
    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                receiver.messages.append(email.message_from_bytes(
                    envelope.content, policy=email.policy.default))
                return "250 OK"

        self.port = free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self._controller.start()
        return self

    def __exit__(self, *exc):
        self._controller.stop()

    def wait_for(self, count, timeout=30.0):
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.messages)
