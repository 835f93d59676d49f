"""Token endpoint responses that a real server cannot be made to send, replayed with responses."""

import pytest
import responses
from sqlalchemy import select

from app.connections import ConnectError, password_grant
from app.extensions import db
from app.models import Credential

TOKEN_URL = "https://provider.invalid/oauth/token"


@pytest.fixture
def integration(make_provider, make_integration):
    provider = make_provider(
        "Quirky", grant_type="password", authorization_url=None, token_url=TOKEN_URL, default_scopes="read write"
    )
    return make_integration("Quirky Desk", provider)


def grant(user, integration):
    password_grant(user, integration, "alice", "provider-password")
    db.session.expire_all()
    return db.session.scalar(select(Credential))


@responses.activate
def test_renew_without_refresh_token_keeps_old(user, integration):
    responses.post(TOKEN_URL, json={"access_token": "a1", "refresh_token": "r1", "expires_in": 3600})
    grant(user, integration)
    responses.replace(responses.POST, TOKEN_URL, json={"access_token": "a2", "expires_in": 3600})

    credential = grant(user, integration)
    assert credential.access_token == "a2"
    assert credential.refresh_token == "r1"


@responses.activate
def test_error_in_200_body_stores_nothing(user, integration):
    responses.post(TOKEN_URL, json={"error": "invalid_grant", "error_description": "Bad credentials"})
    with pytest.raises(ConnectError, match="Bad credentials"):
        grant(user, integration)
    assert db.session.scalar(select(Credential)) is None


@responses.activate
def test_missing_access_token_stores_nothing(user, integration):
    responses.post(TOKEN_URL, json={"token_type": "Bearer"})
    with pytest.raises(ConnectError, match="no access_token"):
        grant(user, integration)
    assert db.session.scalar(select(Credential)) is None


@responses.activate
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_form_encoded_body_accepted(user, integration, content_type):
    responses.post(
        TOKEN_URL,
        body="access_token=a1&refresh_token=r1&expires_in=3600&scope=read,write",
        content_type=content_type,
    )
    credential = grant(user, integration)
    assert credential.access_token == "a1"
    assert credential.granted_scopes == "read write"


@responses.activate
@pytest.mark.parametrize(
    ("expires_in", "has_expiry"),
    [("3600", True), (3600, True), (None, False), (0, False), (-5, False), ("soon", False)],
)
def test_expires_in_variants(user, integration, expires_in, has_expiry):
    body = {"access_token": "a1", "refresh_token": "r1"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    responses.post(TOKEN_URL, json=body)
    credential = grant(user, integration)
    assert (credential.access_token_expires_at is not None) is has_expiry


@responses.activate
@pytest.mark.parametrize(
    ("scope", "stored"),
    [("write read", "write read"), ("read,write", "read write"), ("read", "read"), (["read", "admin"], "read admin")],
)
def test_granted_scope_stored_as_sent(user, integration, scope, stored):
    responses.post(TOKEN_URL, json={"access_token": "a1", "scope": scope})
    assert grant(user, integration).granted_scopes == stored


@responses.activate
def test_server_error_is_reported(user, integration):
    responses.post(TOKEN_URL, status=502, body="<html>Bad Gateway</html>", content_type="text/html")
    with pytest.raises(ConnectError, match="HTTP 502"):
        grant(user, integration)


@responses.activate
def test_html_body_is_reported(user, integration):
    responses.post(TOKEN_URL, status=200, body="<html>Login</html>", content_type="text/html")
    with pytest.raises(ConnectError, match="not valid JSON"):
        grant(user, integration)


@responses.activate
def test_error_description_secret_is_cleaned(user, integration):
    responses.post(
        TOKEN_URL,
        status=400,
        json={"error": "invalid_grant", "error_description": "password provider-password is wrong"},
    )
    with pytest.raises(ConnectError) as raised:
        grant(user, integration)
    assert "provider-password" not in raised.value.message


@responses.activate
def test_slack_user_token_is_used(user, integration):
    responses.post(
        TOKEN_URL,
        json={
            "ok": True,
            "access_token": "xoxb-bot-token",
            "token_type": "bot",
            "scope": "commands",
            "authed_user": {
                "id": "U1",
                "scope": "chat:write,users:read",
                "access_token": "xoxp-user",
                "token_type": "user",
            },
        },
    )
    credential = grant(user, integration)
    assert credential.access_token == "xoxp-user"
    assert credential.token_type == "Bearer"
    assert credential.granted_scopes == "chat:write users:read"


@responses.activate
def test_slack_error_with_ok_false(user, integration):
    responses.post(TOKEN_URL, json={"ok": False, "error": "invalid_code"})
    with pytest.raises(ConnectError, match="invalid_code"):
        grant(user, integration)


@responses.activate
def test_token_redirect_not_followed(user, integration):
    responses.post(TOKEN_URL, status=307, headers={"Location": "https://elsewhere.invalid/token"})
    with pytest.raises(ConnectError, match="redirected the request"):
        grant(user, integration)
    assert len(responses.calls) == 1
