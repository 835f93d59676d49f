"""End-to-end checks of the oidc-provider test server and its Python helpers.

These tests do not use the app. The registered redirect_uri points at port 9
on 127.0.0.1 and is never requested: the helpers stop at the redirect.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import socket
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import requests

from tests.support import oidc_server as oidc_support
from tests.support.oidc_server import (
    OidcProviderDependencyError,
    OidcProviderServer,
    OidcProviderServerError,
    check_dependencies,
    client_basic_auth,
    deny_consent,
    introspect,
    redirect_parameters,
    sign_in_and_consent,
)

REDIRECT_URI = "http://127.0.0.1:9/callback"
SCOPE = "openid profile email repo"

BASIC_CLIENT = {
    "client_id": "basic-client",
    "client_secret": "basic-secret",
    "redirect_uris": [REDIRECT_URI],
    "token_endpoint_auth_method": "client_secret_basic",
    "grant_types": ["authorization_code", "refresh_token"],
}
POST_CLIENT = {
    "client_id": "post-client",
    "client_secret": "post-secret",
    "redirect_uris": [REDIRECT_URI],
    "token_endpoint_auth_method": "client_secret_post",
    "grant_types": ["authorization_code", "refresh_token"],
}

HTTP_TIMEOUT_SECONDS = 10


def require_dependencies() -> None:
    """Skip the calling test when Node.js packages are missing, or fail it in full-suite runs."""
    try:
        check_dependencies()
    except OidcProviderDependencyError as error:
        if os.environ.get("PERSONAL_AUTH_REQUIRE_ALL_TESTS") == "1":
            pytest.fail(f"{error} (PERSONAL_AUTH_REQUIRE_ALL_TESTS=1 forbids skipping)")
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def server() -> Iterator[OidcProviderServer]:
    require_dependencies()
    with OidcProviderServer(clients=[BASIC_CLIENT, POST_CLIENT]) as running:
        yield running


def make_pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


def build_authorize_url(
    server: OidcProviderServer,
    client_id: str,
    state: str,
    code_challenge: str | None,
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": state,
    }
    if code_challenge is not None:
        params["code_challenge"] = code_challenge
        params["code_challenge_method"] = "S256"
    return f"{server.authorization_endpoint}?{urlencode(params)}"


def authorize(server: OidcProviderServer, client_id: str = "basic-client") -> tuple[dict[str, str], str, str]:
    """Run a full sign-in and return the redirect parameters, the state and the PKCE verifier."""
    verifier, challenge = make_pkce_pair()
    state = secrets.token_urlsafe(16)
    redirect_url = sign_in_and_consent(build_authorize_url(server, client_id, state, challenge))
    assert redirect_url.startswith(REDIRECT_URI + "?"), redirect_url
    return redirect_parameters(redirect_url), state, verifier


def post_token(server: OidcProviderServer, data: dict[str, str]) -> requests.Response:
    return requests.post(
        server.token_endpoint,
        data=data,
        auth=client_basic_auth(BASIC_CLIENT["client_id"], BASIC_CLIENT["client_secret"]),
        timeout=HTTP_TIMEOUT_SECONDS,
    )


def exchange_code(server: OidcProviderServer, code: str, verifier: str) -> requests.Response:
    return post_token(
        server,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )


def obtain_tokens(server: OidcProviderServer) -> dict[str, object]:
    params, _state, verifier = authorize(server)
    response = exchange_code(server, params["code"], verifier)
    assert response.status_code == 200, response.text
    return response.json()


def refresh(server: OidcProviderServer, refresh_token: str) -> requests.Response:
    return post_token(server, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def revoke(server: OidcProviderServer, token: str) -> None:
    response = requests.post(
        server.revocation_endpoint,
        data={"token": token},
        auth=client_basic_auth(BASIC_CLIENT["client_id"], BASIC_CLIENT["client_secret"]),
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert response.status_code == 200, response.text


def is_active(server: OidcProviderServer, token: str) -> bool:
    return introspect(server, BASIC_CLIENT["client_id"], BASIC_CLIENT["client_secret"], token)["active"]


def test_discovery_lists_endpoints(server: OidcProviderServer) -> None:
    assert server.issuer == f"http://127.0.0.1:{server.port}"
    for endpoint in (
        server.authorization_endpoint,
        server.token_endpoint,
        server.revocation_endpoint,
        server.introspection_endpoint,
    ):
        assert endpoint.startswith(server.issuer + "/")
    assert server.discovery["code_challenge_methods_supported"] == ["S256"]
    assert {"repo", "read", "write"} <= set(server.discovery["scopes_supported"])


def test_sign_in_returns_code_and_state(server: OidcProviderServer) -> None:
    params, state, _verifier = authorize(server)

    assert params["state"] == state
    assert params["code"]
    assert params["iss"] == server.issuer
    assert "error" not in params


def test_code_exchange_issues_tokens(server: OidcProviderServer) -> None:
    tokens = obtain_tokens(server)

    assert tokens["token_type"] == "Bearer"
    assert tokens["access_token"]
    assert tokens["refresh_token"]
    assert tokens["id_token"]
    assert tokens["expires_in"] == 3600
    assert set(tokens["scope"].split()) == set(SCOPE.split())

    details = introspect(server, "basic-client", "basic-secret", tokens["access_token"])
    assert details["active"] is True
    assert details["sub"] == "alice"
    assert details["client_id"] == "basic-client"
    assert "repo" in details["scope"].split()


def test_client_secret_post_exchange(server: OidcProviderServer) -> None:
    params, _state, verifier = authorize(server, client_id="post-client")

    response = requests.post(
        server.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": "post-client",
            "client_secret": "post-secret",
        },
        timeout=HTTP_TIMEOUT_SECONDS,
    )

    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"]


def test_authorization_without_pkce_rejected(server: OidcProviderServer) -> None:
    state = secrets.token_urlsafe(16)

    redirect_url = sign_in_and_consent(build_authorize_url(server, "basic-client", state, None))

    params = redirect_parameters(redirect_url)
    assert params["error"] == "invalid_request"
    assert params["state"] == state
    assert "code" not in params


def test_code_exchange_wrong_verifier_rejected(server: OidcProviderServer) -> None:
    params, _state, _verifier = authorize(server)
    wrong_verifier, _challenge = make_pkce_pair()

    response = exchange_code(server, params["code"], wrong_verifier)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_refresh_rotates_refresh_token(server: OidcProviderServer) -> None:
    tokens = obtain_tokens(server)

    response = refresh(server, tokens["refresh_token"])
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert rotated["access_token"]
    assert rotated["access_token"] != tokens["access_token"]
    assert rotated["refresh_token"]
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert is_active(server, rotated["refresh_token"])

    reuse = refresh(server, tokens["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"

    # oidc-provider treats reuse of a rotated refresh token as replay and
    # revokes the whole grant, including the tokens issued by the rotation.
    assert not is_active(server, rotated["refresh_token"])
    assert not is_active(server, rotated["access_token"])


def test_revoking_access_token_deactivates_grant(server: OidcProviderServer) -> None:
    tokens = obtain_tokens(server)
    assert is_active(server, tokens["access_token"])
    assert is_active(server, tokens["refresh_token"])

    revoke(server, tokens["access_token"])

    assert not is_active(server, tokens["access_token"])
    # oidc-provider 9.13.3 revokes every token of the grant when any access
    # or refresh token of it is revoked (lib/actions/revocation.js), which
    # RFC 7009 section 2.1 allows.
    assert not is_active(server, tokens["refresh_token"])


def test_revoking_refresh_token_deactivates_grant(server: OidcProviderServer) -> None:
    tokens = obtain_tokens(server)
    assert is_active(server, tokens["refresh_token"])

    revoke(server, tokens["refresh_token"])

    assert not is_active(server, tokens["refresh_token"])
    assert not is_active(server, tokens["access_token"])
    response = refresh(server, tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_revoking_unknown_token_succeeds(server: OidcProviderServer) -> None:
    # RFC 7009 section 2.2: an invalid token is not an error.
    revoke(server, "not-a-token")


def test_deny_consent_returns_access_denied(server: OidcProviderServer) -> None:
    _verifier, challenge = make_pkce_pair()
    state = secrets.token_urlsafe(16)

    redirect_url = deny_consent(build_authorize_url(server, "basic-client", state, challenge))

    assert redirect_url.startswith(REDIRECT_URI + "?"), redirect_url
    params = redirect_parameters(redirect_url)
    assert params["error"] == "access_denied"
    assert params["state"] == state
    assert params["iss"] == server.issuer
    assert "code" not in params


def test_custom_ttl_and_clean_stop() -> None:
    require_dependencies()
    server = OidcProviderServer(clients=[BASIC_CLIENT], access_token_ttl=120)

    with server:
        port = server.port
        tokens = obtain_tokens(server)
        assert tokens["expires_in"] == 120

    assert server.returncode == 0, server.output
    assert "SIGTERM received" in server.output
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_invalid_client_metadata_fails_start() -> None:
    require_dependencies()
    client = dict(BASIC_CLIENT, redirect_uris=["not a url"])
    server = OidcProviderServer(clients=[client])

    with pytest.raises(OidcProviderServerError, match="invalid metadata for client"):
        server.start()

    assert server.returncode == 2


def test_missing_node_modules_reported(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(oidc_support, "SERVER_DIR", tmp_path)

    with pytest.raises(OidcProviderDependencyError, match="node_modules missing: run npm ci"):
        check_dependencies()
