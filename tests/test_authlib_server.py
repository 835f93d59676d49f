"""Tests of the Authlib-based test authorization server, driven over HTTP with requests."""

import base64
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote_plus

import pytest
import requests

from tests.support.authlib_server import PasswordGrantServer

# A secret with characters that RFC 6749 section 2.3.1 form-urlencoding
# changes: "+" and "/" and ":" are reserved, "é" is non-ASCII.
SPECIAL_SECRET = "s3cr+t/:é"
BASIC_CLIENT = {
    "client_id": "sn-client",
    "client_secret": SPECIAL_SECRET,
    "token_endpoint_auth_method": "client_secret_basic",
}
POST_CLIENT = {
    "client_id": "post-client",
    "client_secret": "post-secret",
    "token_endpoint_auth_method": "client_secret_post",
}
USERS = {"alice": "correct-password"}
TIMEOUT = 5


def basic_authorization(client_id: str, client_secret: str) -> dict[str, str]:
    """Build an Authorization header encoded as RFC 6749 section 2.3.1 requires."""
    credentials = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    encoded = base64.b64encode(credentials.encode("ascii")).decode("ascii")
    return {"Authorization": f"Basic {encoded}"}


def raw_basic_authorization(client_id: str, client_secret: str, encoding: str) -> dict[str, str]:
    """Build an Authorization header without form-urlencoding, in the given charset."""
    credentials = f"{client_id}:{client_secret}".encode(encoding)
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode("ascii")}


BASIC_HEADERS = basic_authorization(BASIC_CLIENT["client_id"], BASIC_CLIENT["client_secret"])


class FakeClock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def server(clock):
    with PasswordGrantServer(
        clients=[BASIC_CLIENT, POST_CLIENT],
        users=USERS,
        access_token_ttl=3600,
        clock=clock,
    ) as running_server:
        yield running_server


def request_password_token(server, password="correct-password", **extra_form):
    form = {"grant_type": "password", "username": "alice", "password": password, **extra_form}
    return requests.post(server.token_endpoint, data=form, headers=BASIC_HEADERS, timeout=TIMEOUT)


def refresh(server, refresh_token):
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return requests.post(server.token_endpoint, data=form, headers=BASIC_HEADERS, timeout=TIMEOUT)


def revoke(server, token, token_type_hint=None):
    form = {"token": token}
    if token_type_hint is not None:
        form["token_type_hint"] = token_type_hint
    return requests.post(server.revocation_endpoint, data=form, headers=BASIC_HEADERS, timeout=TIMEOUT)


def introspect(server, token):
    response = requests.post(
        server.introspection_endpoint, data={"token": token}, headers=BASIC_HEADERS, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_endpoints_on_loopback(server):
    assert server.base_url.startswith("http://127.0.0.1:")
    assert server.token_endpoint == server.base_url + "/oauth/token"
    assert server.revocation_endpoint == server.base_url + "/oauth/revoke"
    assert server.introspection_endpoint == server.base_url + "/oauth/introspect"


def test_password_grant_issues_tokens(server):
    response = request_password_token(server)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "useraccount"
    assert body["access_token"]
    assert body["refresh_token"]
    assert server.is_active(body["access_token"])
    assert server.is_active(body["refresh_token"])


def test_password_grant_echoes_scope(server):
    response = request_password_token(server, scope="read write")

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read write"


def test_password_grant_wrong_password(server):
    response = request_password_token(server, password="wrong-password")

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_grant"
    assert body["error_description"] == "Invalid username or password"


def test_password_grant_unknown_user(server):
    form = {"grant_type": "password", "username": "mallory", "password": "correct-password"}
    response = requests.post(server.token_endpoint, data=form, headers=BASIC_HEADERS, timeout=TIMEOUT)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_refresh_rotates_refresh_token(server):
    first = request_password_token(server).json()

    second_response = refresh(server, first["refresh_token"])
    assert second_response.status_code == 200, second_response.text
    second = second_response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["expires_in"] == 3600
    assert second["scope"] == "useraccount"
    assert not server.is_active(first["refresh_token"])
    assert server.is_active(second["refresh_token"])

    reuse = refresh(server, first["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"

    third = refresh(server, second["refresh_token"])
    assert third.status_code == 200, third.text


def test_concurrent_refresh_succeeds_once(server):
    tokens = request_password_token(server).json()

    with ThreadPoolExecutor(max_workers=8) as executor:
        responses = list(executor.map(lambda _: refresh(server, tokens["refresh_token"]), range(8)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [400] * 7


def test_refresh_keeps_original_scope(server):
    first = request_password_token(server, scope="read write").json()

    response = refresh(server, first["refresh_token"])

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read write"


def test_revocation_with_hints(server):
    tokens = request_password_token(server).json()
    assert introspect(server, tokens["refresh_token"])["active"] is True

    refresh_revocation = revoke(server, tokens["refresh_token"], "refresh_token")
    assert refresh_revocation.status_code == 200, refresh_revocation.text
    assert introspect(server, tokens["refresh_token"]) == {"active": False}
    assert not server.is_active(tokens["refresh_token"])
    # Revoking the refresh token leaves the access token of the same response active.
    assert server.is_active(tokens["access_token"])

    access_revocation = revoke(server, tokens["access_token"], "access_token")
    assert access_revocation.status_code == 200, access_revocation.text
    assert introspect(server, tokens["access_token"]) == {"active": False}
    assert not server.is_active(tokens["access_token"])

    revocations = [entry for entry in server.requests if entry["path"] == "/oauth/revoke"]
    assert [entry["token"] for entry in revocations] == [tokens["refresh_token"], tokens["access_token"]]
    assert [entry["token_type_hint"] for entry in revocations] == ["refresh_token", "access_token"]
    assert [entry["auth"] for entry in revocations] == ["basic", "basic"]


def test_revocation_with_wrong_hint(server):
    tokens = request_password_token(server).json()

    response = revoke(server, tokens["access_token"], "refresh_token")

    assert response.status_code == 200, response.text
    assert not server.is_active(tokens["access_token"])


def test_revocation_of_unknown_token(server):
    response = revoke(server, "never-issued", "access_token")

    assert response.status_code == 200


def test_revocation_requires_client_authentication(server):
    tokens = request_password_token(server).json()

    response = requests.post(server.revocation_endpoint, data={"token": tokens["access_token"]}, timeout=TIMEOUT)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert server.is_active(tokens["access_token"])


def test_introspection_of_active_token(server, clock):
    tokens = request_password_token(server, scope="read").json()

    payload = introspect(server, tokens["access_token"])

    assert payload["active"] is True
    assert payload["scope"] == "read"
    assert payload["client_id"] == "sn-client"
    assert payload["username"] == "alice"
    assert payload["exp"] == int(clock.now) + 3600


def test_introspection_of_expired_token(server, clock):
    tokens = request_password_token(server).json()

    clock.now += 3600

    assert introspect(server, tokens["access_token"]) == {"active": False}
    assert not server.is_active(tokens["access_token"])
    assert server.is_active(tokens["refresh_token"])


def test_introspection_of_unknown_token(server):
    assert introspect(server, "never-issued") == {"active": False}


def test_access_token_ttl_change(server):
    server.access_token_ttl = 60

    response = request_password_token(server)

    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == 60


def test_basic_auth_special_characters_encoded(server):
    response = request_password_token(server)

    assert response.status_code == 200, response.text
    assert server.requests[-1]["auth"] == "basic"


def test_basic_auth_raw_utf8_accepted(server):
    headers = raw_basic_authorization("sn-client", SPECIAL_SECRET, "utf-8")
    form = {"grant_type": "password", "username": "alice", "password": "correct-password"}

    response = requests.post(server.token_endpoint, data=form, headers=headers, timeout=TIMEOUT)

    assert response.status_code == 200, response.text


def test_basic_auth_plus_not_space():
    # Form-urlencoding turns the space into "+", which Authlib does not decode back.
    space_client = {
        "client_id": "space client",
        "client_secret": "a b",
        "token_endpoint_auth_method": "client_secret_basic",
    }
    form = {"grant_type": "password", "username": "alice", "password": "correct-password"}

    with PasswordGrantServer(clients=[space_client], users=USERS) as server:
        encoded = requests.post(
            server.token_endpoint, data=form, headers=basic_authorization("space client", "a b"), timeout=TIMEOUT
        )
        percent_encoded = requests.post(
            server.token_endpoint,
            data=form,
            headers=raw_basic_authorization("space%20client", "a%20b", "ascii"),
            timeout=TIMEOUT,
        )

    assert encoded.status_code == 401
    assert percent_encoded.status_code == 200, percent_encoded.text


def test_basic_auth_latin1_rejected(server):
    # requests.auth.HTTPBasicAuth encodes a str secret as Latin-1.
    form = {"grant_type": "password", "username": "alice", "password": "correct-password"}

    response = requests.post(server.token_endpoint, data=form, auth=("sn-client", SPECIAL_SECRET), timeout=TIMEOUT)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_basic_auth_wrong_secret(server):
    headers = basic_authorization("sn-client", "s3cr+t/:e")
    form = {"grant_type": "password", "username": "alice", "password": "correct-password"}

    response = requests.post(server.token_endpoint, data=form, headers=headers, timeout=TIMEOUT)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_strict_basic_auth_encoding():
    space_client = {
        "client_id": "space client",
        "client_secret": "a b+c",
        "token_endpoint_auth_method": "client_secret_basic",
    }
    form = {"grant_type": "password", "username": "alice", "password": "correct-password"}

    with PasswordGrantServer(clients=[BASIC_CLIENT, space_client], users=USERS, strict_basic_auth=True) as server:
        cases = [
            ("encoded special characters", BASIC_HEADERS, 200),
            ("encoded space as plus", basic_authorization("space client", "a b+c"), 200),
            ("raw utf-8", raw_basic_authorization("sn-client", SPECIAL_SECRET, "utf-8"), 401),
            ("raw latin-1", raw_basic_authorization("sn-client", SPECIAL_SECRET, "latin-1"), 401),
        ]
        for name, headers, expected_status in cases:
            response = requests.post(server.token_endpoint, data=form, headers=headers, timeout=TIMEOUT)
            assert response.status_code == expected_status, f"{name}: {response.text}"


def test_client_secret_post(server):
    form = {
        "grant_type": "password",
        "username": "alice",
        "password": "correct-password",
        "client_id": "post-client",
        "client_secret": "post-secret",
    }

    response = requests.post(server.token_endpoint, data=form, timeout=TIMEOUT)

    assert response.status_code == 200, response.text
    assert server.requests[-1]["auth"] == "post"


def test_post_client_rejects_basic(server):
    form = {"grant_type": "password", "username": "alice", "password": "correct-password"}
    headers = basic_authorization("post-client", "post-secret")

    response = requests.post(server.token_endpoint, data=form, headers=headers, timeout=TIMEOUT)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_revocation_status_forced(server):
    tokens = request_password_token(server).json()
    server.revocation_status = 503

    response = revoke(server, tokens["refresh_token"], "refresh_token")

    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert server.is_active(tokens["refresh_token"])
    assert server.requests[-1]["token"] == tokens["refresh_token"]

    server.revocation_status = None
    assert revoke(server, tokens["refresh_token"], "refresh_token").status_code == 200
    assert not server.is_active(tokens["refresh_token"])


def test_token_status_forced(server):
    tokens = request_password_token(server).json()
    server.token_status = 500

    response = refresh(server, tokens["refresh_token"])

    assert response.status_code == 500
    assert response.json()["error"] == "server_error"
    assert server.is_active(tokens["refresh_token"])
    assert server.requests[-1]["grant_type"] == "refresh_token"
    assert server.requests[-1]["token"] == tokens["refresh_token"]

    server.token_status = None
    assert refresh(server, tokens["refresh_token"]).status_code == 200


def test_requests_record(server):
    request_password_token(server)

    entry = server.requests[-1]
    assert entry == {
        "path": "/oauth/token",
        "grant_type": "password",
        "token_type_hint": None,
        "token": None,
        "auth": "basic",
    }

    server.clear_requests()
    assert server.requests == []


def test_stop_closes_port():
    server = PasswordGrantServer(clients=[BASIC_CLIENT], users=USERS).start()
    token_endpoint = server.token_endpoint

    server.stop()
    server.stop()

    with pytest.raises(requests.ConnectionError):
        requests.post(token_endpoint, data={"grant_type": "password"}, timeout=TIMEOUT)
    with pytest.raises(RuntimeError):
        server.base_url
