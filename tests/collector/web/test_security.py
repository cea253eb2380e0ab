"""Authentication from a credentials file (constant-time checks, strict file), and the 401."""
import base64
import os

import pytest

from routerwatch_collector.web.security import Credentials, CredentialsError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TOKEN = "f3a1c0de9b8e7d6c5b4a39281706f5e4"


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def credentials_file(tmp_path, text, mode=0o600):
    path = tmp_path / "dashboard.auth"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_users_and_tokens_from_a_file(tmp_path):
    creds = Credentials.from_file(credentials_file(
        tmp_path, "# the NOC\nalice:correct horse battery\n\n%s\n" % TOKEN))
    assert creds.check(basic("alice", "correct horse battery"))
    assert creds.check("Bearer " + TOKEN)
    assert creds.check(b"bearer " + TOKEN.encode())
    for wrong in (basic("alice", "correct horse batterY"), basic("bob", "correct horse battery"),
                  basic("alice", ""), "Bearer " + TOKEN[:-1], "Bearer", "", None,
                  "Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode(),
                  # a token is not a password, and a password is not a token
                  basic("alice", TOKEN), "Bearer correct horse battery",
                  "Digest " + TOKEN, "Bearer " + TOKEN * 200):
        assert not creds.check(wrong), wrong


def test_a_password_with_a_colon_and_non_ascii_text_works(tmp_path):
    creds = Credentials.from_file(credentials_file(tmp_path, "jörg:pa:ss wörd long\n"))
    header = "Basic " + base64.b64encode("jörg:pa:ss wörd long".encode()).decode()
    assert creds.check(header)


@pytest.mark.parametrize("text, mode, message", [
    ("alice:correct horse battery\n", 0o644, "readable by other users"),
    ("# nothing\n", 0o600, "holds no user and no token"),
    ("alice:short\n", 0o600, "at least 12"),
    (":correct horse battery\n", 0o600, "user name is missing"),
    ("x" * 2000 + "\n", 0o600, "longer than"),
])
def test_a_bad_credentials_file_is_refused_with_the_reason(tmp_path, text, mode, message):
    with pytest.raises(CredentialsError, match=message):
        Credentials.from_file(credentials_file(tmp_path, text, mode))


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CredentialsError, match="cannot read"):
        Credentials.from_file(tmp_path / "absent")


def test_with_credentials_every_route_needs_them(db, client_for, tmp_path):
    creds = Credentials.from_file(credentials_file(
        tmp_path, "alice:correct horse battery\n%s\n" % TOKEN))
    client = client_for(db, credentials=creds)
    for url in ("/", "/api/fleet", "/static/style.css", "/devices/x", "/nope"):
        response = client.get(url)
        assert response.status_code == 401, url
        assert response.headers["www-authenticate"].startswith("Basic realm=")
        assert "default-src 'self'" in response.headers["content-security-policy"]
    assert client.get("/api/fleet", headers={"Authorization": "Bearer " + TOKEN}).status_code == 200
    assert client.get("/", headers={"Authorization": basic(
        "alice", "correct horse battery")}).status_code == 200
