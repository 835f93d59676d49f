"""Refreshing tokens with the refresh token grant at a real Authlib server that rotates them."""

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.audit import AuditEvent
from app.connections import password_grant
from app.extensions import db
from app.models import Credential, CredentialStatus, utcnow
from app.refresh import RefreshError, ensure_fresh_token
from tests.conftest import PROVIDER_PASSWORD, PROVIDER_USERNAME, free_port


@pytest.fixture(autouse=True)
def no_retry_pause(app):
    app.config["REFRESH_RETRY_DELAY"] = 0


@pytest.fixture
def credential(user, password_integration, password_server) -> Credential:
    """A connected credential whose access token has expired."""
    password_grant(user, password_integration, PROVIDER_USERNAME, PROVIDER_PASSWORD)
    credential = db.session.scalar(select(Credential))
    credential.access_token_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    password_server.clear_requests()
    return credential


def grants(server, grant_type="refresh_token") -> list[dict]:
    return [entry for entry in server.requests if entry["grant_type"] == grant_type]


def refresh_events() -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "credential.refresh")))


def reload(credential: Credential) -> Credential:
    db.session.expire_all()
    return db.session.get(Credential, credential.id)


def test_refresh_replaces_expired_token(credential, password_server):
    old_access, old_refresh = credential.access_token, credential.refresh_token
    refreshed = ensure_fresh_token(credential)

    stored = reload(refreshed)
    assert stored.access_token != old_access
    assert password_server.is_active(stored.access_token)
    assert stored.refresh_token != old_refresh
    assert password_server.is_active(stored.refresh_token)
    assert stored.access_token_expires_at > utcnow() + timedelta(minutes=50)
    assert stored.refreshed_at is not None


def test_refresh_sends_one_refresh_grant(credential, password_server):
    old_refresh = credential.refresh_token
    ensure_fresh_token(credential)
    assert [entry["token"] for entry in grants(password_server)] == [old_refresh]


def test_refresh_is_audited(credential):
    ensure_fresh_token(credential)
    [event] = refresh_events()
    assert event.outcome == "success"
    assert event.subject_user_id == credential.user_id
    assert event.data["refresh_token_rotated"] is True


def test_fresh_token_not_refreshed(credential, password_server):
    credential.access_token_expires_at = utcnow() + timedelta(hours=1)
    db.session.commit()
    ensure_fresh_token(credential)
    assert grants(password_server) == []


def test_token_within_margin_refreshed(app, credential, password_server):
    credential.access_token_expires_at = utcnow() + timedelta(seconds=app.config["REFRESH_MARGIN"] - 10)
    db.session.commit()
    ensure_fresh_token(credential)
    assert len(grants(password_server)) == 1


def test_recent_refresh_not_repeated(credential, password_server):
    credential.refreshed_at = utcnow() - timedelta(seconds=10)
    db.session.commit()
    ensure_fresh_token(credential)
    assert grants(password_server) == []


def test_invalid_grant_needs_reconnect(credential, password_server):
    credential.refresh_token = "refresh-token-the-server-never-issued"
    db.session.commit()
    with pytest.raises(RefreshError) as raised:
        ensure_fresh_token(credential)

    assert raised.value.permanent
    assert "Reconnect" in raised.value.message
    assert reload(credential).status == CredentialStatus.NEEDS_RECONNECT


def test_invalid_grant_neither_retried_nor_revoked(credential, password_server):
    credential.refresh_token = "refresh-token-the-server-never-issued"
    db.session.commit()
    with pytest.raises(RefreshError):
        ensure_fresh_token(credential)
    assert [entry["path"] for entry in password_server.requests] == [password_server.token_path]


def test_invalid_grant_is_audited(credential, password_server):
    credential.refresh_token = "refresh-token-the-server-never-issued"
    db.session.commit()
    with pytest.raises(RefreshError):
        ensure_fresh_token(credential)

    [event] = refresh_events()
    assert event.outcome == "failure"
    assert event.data["error"] == "invalid_grant"
    assert event.data["permanent"] is True


def test_needs_reconnect_not_refreshed_again(credential, password_server):
    credential.status = CredentialStatus.NEEDS_RECONNECT
    db.session.commit()
    with pytest.raises(RefreshError) as raised:
        ensure_fresh_token(credential)
    assert raised.value.permanent
    assert password_server.requests == []


def test_reconnect_makes_credential_active(user, password_integration, credential):
    credential.status = CredentialStatus.NEEDS_RECONNECT
    credential.refresh_error = "invalid_grant"
    db.session.commit()
    password_grant(user, password_integration, PROVIDER_USERNAME, PROVIDER_PASSWORD)

    stored = reload(credential)
    assert stored.status == CredentialStatus.ACTIVE
    assert stored.refresh_error is None


def test_server_error_retried_then_kept(app, credential, password_server):
    old_access = credential.access_token
    password_server.token_status = 503
    with pytest.raises(RefreshError) as raised:
        ensure_fresh_token(credential)

    assert not raised.value.permanent
    assert len(grants(password_server)) == app.config["REFRESH_ATTEMPTS"]
    stored = reload(credential)
    assert stored.status == CredentialStatus.ACTIVE
    assert stored.access_token == old_access


def test_server_error_schedules_next_attempt(credential, password_server):
    password_server.token_status = 500
    with pytest.raises(RefreshError):
        ensure_fresh_token(credential)

    stored = reload(credential)
    assert stored.refresh_attempts == 1
    assert stored.next_refresh_attempt_at > utcnow()
    assert "HTTP 500" in stored.refresh_error


def test_transient_failure_is_audited(credential, password_server):
    password_server.token_status = 502
    with pytest.raises(RefreshError):
        ensure_fresh_token(credential)
    [event] = refresh_events()
    assert event.outcome == "failure"
    assert event.data["permanent"] is False


def test_retry_after_server_error_succeeds(credential, password_server):
    password_server.token_status = 503
    with pytest.raises(RefreshError):
        ensure_fresh_token(credential)
    password_server.token_status = None

    stored = ensure_fresh_token(reload(credential))
    assert password_server.is_active(stored.access_token)
    assert stored.refresh_attempts == 0


def test_unreachable_provider_is_transient(credential):
    credential.integration.provider.token_url = f"http://127.0.0.1:{free_port()}/oauth/token"
    db.session.commit()
    with pytest.raises(RefreshError) as raised:
        ensure_fresh_token(credential)
    assert not raised.value.permanent
    assert "could not be reached" in raised.value.message


def fail_next_commit(monkeypatch):
    """Make the session's next commit raise, as a lost database connection would."""
    session = db.session()
    original = session.commit
    calls = []

    def commit():
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("COMMIT", {}, Exception("connection lost"))
        return original()

    monkeypatch.setattr(session, "commit", commit)


def test_commit_failure_keeps_previous_tokens(credential, password_server, monkeypatch):
    old_access, old_refresh = credential.access_token, credential.refresh_token
    fail_next_commit(monkeypatch)
    with pytest.raises(RefreshError) as raised:
        ensure_fresh_token(credential)

    assert not raised.value.permanent
    assert len(grants(password_server)) == 1
    stored = reload(credential)
    assert stored.access_token == old_access
    assert stored.refresh_token == old_refresh


def test_commit_failure_is_logged_and_audited(credential, monkeypatch, caplog):
    fail_next_commit(monkeypatch)
    with pytest.raises(RefreshError):
        ensure_fresh_token(credential)

    [event] = refresh_events()
    assert event.outcome == "failure"
    assert event.data["error"] == "database_error"
    assert f"credential {credential.id}, user {credential.user_id}" in caplog.text
