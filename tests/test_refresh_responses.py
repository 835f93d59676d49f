"""Refresh token grant responses that a real server cannot be made to send, replayed with responses."""

from datetime import timedelta

import pytest
import requests
import responses
from sqlalchemy import select

from app.audit import AuditEvent
from app.extensions import db
from app.models import Credential, CredentialStatus, utcnow
from app.refresh import RefreshError, ensure_fresh_token

TOKEN_URL = "https://provider.invalid/oauth/token"
DEFAULT_LIFETIME = 1800


@pytest.fixture(autouse=True)
def no_retry_pause(app):
    app.config["REFRESH_RETRY_DELAY"] = 0


@pytest.fixture
def credential(user, make_provider, make_integration) -> Credential:
    """An expired access token with refresh token r0, granted scopes "read write"."""
    provider = make_provider("Quirky", token_url=TOKEN_URL, default_scopes="read write")
    integration = make_integration("Quirky Desk", provider)
    credential = Credential(user_id=user.id, integration_id=integration.id, connected_at=utcnow())
    db.session.add(credential)
    db.session.flush()
    credential.access_token = "a0"
    credential.refresh_token = "r0"
    credential.access_token_expires_at = utcnow() - timedelta(seconds=1)
    credential.refresh_token_expires_at = utcnow() + timedelta(days=30)
    credential.granted_scopes = "read write"
    db.session.commit()
    return credential


def set_default_lifetime(credential, seconds):
    credential.integration.provider.default_token_lifetime = seconds
    db.session.commit()


def refresh(credential) -> Credential:
    ensure_fresh_token(credential)
    db.session.expire_all()
    return db.session.get(Credential, credential.id)


def reload(credential) -> Credential:
    db.session.expire_all()
    return db.session.get(Credential, credential.id)


def expires_in_seconds(value) -> float:
    return (value - utcnow()).total_seconds()


@responses.activate
def test_refresh_sends_refresh_grant(credential):
    responses.post(TOKEN_URL, json={"access_token": "a1", "expires_in": 3600})
    refresh(credential)
    body = responses.calls[0].request.body
    assert "grant_type=refresh_token" in body
    assert "refresh_token=r0" in body


@responses.activate
def test_refresh_without_refresh_token_keeps_old(credential):
    old_expiry = credential.refresh_token_expires_at
    responses.post(TOKEN_URL, json={"access_token": "a1", "expires_in": 3600})
    stored = refresh(credential)
    assert stored.access_token == "a1"
    assert stored.refresh_token == "r0"
    assert stored.refresh_token_expires_at == old_expiry


@responses.activate
def test_rotated_refresh_token_stored(credential):
    responses.post(TOKEN_URL, json={"access_token": "a1", "refresh_token": "r1", "expires_in": 3600})
    assert refresh(credential).refresh_token == "r1"


@responses.activate
@pytest.mark.parametrize("status", [200, 400])
def test_error_member_stores_nothing(credential, status):
    responses.post(TOKEN_URL, status=status, json={"error": "invalid_grant", "error_description": "Token revoked"})
    with pytest.raises(RefreshError, match="Token revoked"):
        ensure_fresh_token(credential)
    stored = reload(credential)
    assert stored.access_token == "a0"
    assert stored.refresh_token == "r0"


@responses.activate
def test_missing_access_token_stores_nothing(credential):
    responses.post(TOKEN_URL, json={"token_type": "Bearer", "expires_in": 3600})
    with pytest.raises(RefreshError, match="no access_token"):
        ensure_fresh_token(credential)
    assert reload(credential).access_token == "a0"


@responses.activate
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_form_encoded_body_accepted(credential, content_type):
    responses.post(
        TOKEN_URL,
        body="access_token=a1&refresh_token=r1&expires_in=3600&scope=read,write",
        content_type=content_type,
    )
    stored = refresh(credential)
    assert stored.access_token == "a1"
    assert stored.refresh_token == "r1"
    assert stored.granted_scopes == "read write"


@responses.activate
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_form_encoded_error_needs_reconnect(credential, content_type):
    responses.post(TOKEN_URL, body="error=invalid_grant", content_type=content_type)
    with pytest.raises(RefreshError):
        ensure_fresh_token(credential)
    assert reload(credential).status == CredentialStatus.NEEDS_RECONNECT


@responses.activate
@pytest.mark.parametrize(
    ("expires_in", "expected_seconds"),
    [
        ("3600", 3600),
        (3600, 3600),
        ("7200.0", 7200),
        (None, DEFAULT_LIFETIME),
        (0, DEFAULT_LIFETIME),
        (-5, DEFAULT_LIFETIME),
        ("soon", DEFAULT_LIFETIME),
    ],
    ids=["string", "number", "decimal-string", "missing", "zero", "negative", "not-a-number"],
)
def test_expires_in_variants(credential, expires_in, expected_seconds):
    set_default_lifetime(credential, DEFAULT_LIFETIME)
    body = {"access_token": "a1"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    responses.post(TOKEN_URL, json=body)
    remaining = expires_in_seconds(refresh(credential).access_token_expires_at)
    assert expected_seconds - 30 < remaining <= expected_seconds


@responses.activate
def test_missing_expiry_without_default_is_unknown(credential):
    responses.post(TOKEN_URL, json={"access_token": "a1"})
    assert refresh(credential).access_token_expires_at is None


@responses.activate
@pytest.mark.parametrize("expires_in", [1, 10])
def test_instantly_expiring_token_not_refreshed_again(credential, expires_in):
    responses.post(TOKEN_URL, json={"access_token": "a1", "expires_in": expires_in})
    stored = refresh(credential)
    ensure_fresh_token(stored)
    ensure_fresh_token(stored)
    assert len(responses.calls) == 1


@responses.activate
@pytest.mark.parametrize(
    ("scope", "stored_scopes"),
    [
        ("write read", "write read"),
        ("read,write", "read write"),
        ("read", "read"),
        ("read write admin", "read write admin"),
        (["read", "admin"], "read admin"),
        (None, "read write"),
    ],
    ids=["other-order", "commas", "missing-one", "extra", "list", "not-sent"],
)
def test_granted_scope_stored_as_sent(credential, scope, stored_scopes):
    body = {"access_token": "a1", "expires_in": 3600}
    if scope is not None:
        body["scope"] = scope
    responses.post(TOKEN_URL, json=body)
    assert refresh(credential).granted_scopes == stored_scopes


@responses.activate
@pytest.mark.parametrize("error", ["invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type"])
def test_permanent_error_needs_reconnect(credential, error):
    responses.post(TOKEN_URL, status=400, json={"error": error})
    with pytest.raises(RefreshError) as raised:
        ensure_fresh_token(credential)

    assert raised.value.permanent
    assert len(responses.calls) == 1
    assert reload(credential).status == CredentialStatus.NEEDS_RECONNECT


@responses.activate
@pytest.mark.parametrize(
    "reply",
    [
        {"status": 502, "body": "<html>Bad Gateway</html>", "content_type": "text/html"},
        {"status": 503, "json": {"error": "temporarily_unavailable"}},
        {"status": 429, "body": "slow down", "content_type": "text/plain"},
        {"body": requests.ConnectTimeout("connect timed out")},
        {"body": requests.ReadTimeout("read timed out")},
        {"body": requests.ConnectionError("connection refused")},
    ],
    ids=["502-html", "503-json", "429", "connect-timeout", "read-timeout", "refused"],
)
def test_transient_error_retried_and_kept(app, credential, reply):
    responses.post(TOKEN_URL, **reply)
    with pytest.raises(RefreshError) as raised:
        ensure_fresh_token(credential)

    assert not raised.value.permanent
    assert len(responses.calls) == app.config["REFRESH_ATTEMPTS"]
    stored = reload(credential)
    assert stored.status == CredentialStatus.ACTIVE
    assert stored.access_token == "a0"


@responses.activate
def test_transient_error_then_success_within_one_call(credential):
    responses.post(TOKEN_URL, status=503, json={"error": "temporarily_unavailable"})
    responses.post(TOKEN_URL, json={"access_token": "a1", "expires_in": 3600})
    assert refresh(credential).access_token == "a1"


@responses.activate
def test_other_oauth_error_not_retried_and_kept(credential):
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_request"})
    with pytest.raises(RefreshError) as raised:
        ensure_fresh_token(credential)
    assert not raised.value.permanent
    assert len(responses.calls) == 1
    assert reload(credential).status == CredentialStatus.ACTIVE


@responses.activate
def test_html_body_is_failure(credential):
    responses.post(TOKEN_URL, body="<html>Sign in</html>", content_type="text/html")
    with pytest.raises(RefreshError, match="not valid JSON"):
        ensure_fresh_token(credential)
    assert reload(credential).access_token == "a0"


@responses.activate
def test_error_description_secret_is_cleaned(credential):
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_grant", "error_description": "token r0 is revoked"})
    with pytest.raises(RefreshError) as raised:
        ensure_fresh_token(credential)
    assert "r0" not in raised.value.message
    assert "r0" not in reload(credential).refresh_error


@responses.activate
def test_every_outcome_is_audited(credential):
    responses.post(TOKEN_URL, status=503, json={"error": "temporarily_unavailable"})
    with pytest.raises(RefreshError):
        ensure_fresh_token(credential)
    responses.replace(responses.POST, TOKEN_URL, json={"access_token": "a1", "expires_in": 3600})
    refresh(reload(credential))

    outcomes = db.session.scalars(
        select(AuditEvent.outcome).where(AuditEvent.action == "credential.refresh").order_by(AuditEvent.id)
    ).all()
    assert outcomes == ["failure", "success"]
