"""Where the dashboard listens, what it demands off loopback, and `serve` as a real process."""
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from broker import free_port, missing_tool
from routerwatch_collector.web.server import ServeError, check_settings, parse_listen


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:9000", ("::1", 9000)),
    ("localhost:80", ("localhost", 80)), (":8080", ("127.0.0.1", 8080)),
    ("0.0.0.0:443", ("0.0.0.0", 443)),
])
def test_listen_addresses(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["8080", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000",
                                  "a b:80", "[::1:80", "127.0.0.1:80/x"])
def test_bad_listen_addresses_are_refused(text):
    with pytest.raises(ServeError, match="--listen"):
        parse_listen(text)


def test_loopback_needs_nothing_and_anything_else_needs_credentials(tmp_path):
    assert check_settings("127.0.0.1", None, None, None) is None
    assert check_settings("::1", None, None, None) is None
    for host in ("0.0.0.0", "192.0.2.10", "::", "dashboard.example"):
        with pytest.raises(ServeError, match="needs --auth-file"):
            check_settings(host, None, None, None)
    auth = tmp_path / "auth"
    auth.write_text("alice:correct horse battery\n")
    os.chmod(auth, 0o600)
    assert check_settings("0.0.0.0", str(auth), None, None) is not None
    with pytest.raises(ServeError, match="go together"):
        check_settings("127.0.0.1", None, str(tmp_path / "cert.pem"), None)
    with pytest.raises(ServeError, match="cannot load the TLS certificate"):
        check_settings("127.0.0.1", None, str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))


def serve(*args):
    return subprocess.Popen([sys.executable, "-m", "routerwatch_collector.cli", "serve"]
                            + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)


def wait_for(url, process, timeout=20.0, context=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("serve exited: %s" % process.stderr.read())
        try:
            return urllib.request.urlopen(url, timeout=2, context=context)
        except urllib.error.HTTPError as exc:
            return exc
        except OSError:
            time.sleep(0.1)
    raise AssertionError("no answer from %s" % url)


def test_serve_answers_on_loopback_and_stops_on_sigterm(db):
    port = free_port()
    process = serve("--db", str(db), "--listen", "127.0.0.1:%d" % port)
    try:
        response = wait_for("http://127.0.0.1:%d/api/fleet" % port, process)
        assert response.status == 200
        assert b'"total":2' in response.read().replace(b" ", b"")
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_serve_refuses_a_public_address_without_credentials_and_a_missing_db(db, tmp_path):
    result = serve("--db", str(db), "--listen", "0.0.0.0:%d" % free_port())
    out, err = result.communicate(timeout=20)
    assert result.returncode == 2 and "needs --auth-file" in err and "Traceback" not in err
    result = serve("--db", str(tmp_path / "absent.sqlite"))
    out, err = result.communicate(timeout=20)
    assert result.returncode == 3 and "no database at" in err
    assert not (tmp_path / "absent.sqlite").exists()


def test_serve_with_tls_and_a_token(db, tmp_path):
    import ssl
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                           "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                           "-keyout", str(key), "-out", str(cert)], capture_output=True)
    if made.returncode:
        # under CI=true a failure: ci/install-system-packages.sh installs openssl
        missing_tool("openssl cannot make a certificate: %s" % made.stderr[-200:])
    auth = tmp_path / "auth"
    auth.write_text("0123456789abcdef0123\n")
    os.chmod(auth, 0o600)
    port = free_port()
    process = serve("--db", str(db), "--listen", "127.0.0.1:%d" % port, "--cert", str(cert),
                    "--key", str(key), "--auth-file", str(auth))
    context = ssl.create_default_context(cafile=str(cert))
    try:
        denied = wait_for("https://127.0.0.1:%d/api/fleet" % port, process, context=context)
        assert denied.code == 401
        denied.close()
        request = urllib.request.Request("https://127.0.0.1:%d/api/fleet" % port,
                                         headers={"Authorization": "Bearer 0123456789abcdef0123"})
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            assert response.status == 200
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0


def test_a_port_in_use_is_a_clear_error(db):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = serve("--db", str(db), "--listen", "127.0.0.1:%d" % port)
        out, err = result.communicate(timeout=20)
    assert result.returncode == 3
    assert "cannot listen on 127.0.0.1:%d" % port in err and "Traceback" not in err
