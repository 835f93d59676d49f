"""``flask tokens refresh-due`` and ``give-up-revocation`` against a real Authlib server."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.audit import AuditEvent
from app.connections import password_grant
from app.extensions import db
from app.models import Credential, CredentialStatus, utcnow
from tests.conftest import ENCRYPTION_KEYS, PROVIDER_PASSWORD, PROVIDER_USERNAME

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_retry_pause(app):
    app.config["REFRESH_RETRY_DELAY"] = 0


@pytest.fixture
def credential(user, password_integration, password_server) -> Credential:
    """A connected credential whose access token expires within the refresh margin."""
    credential = password_grant(user, password_integration, PROVIDER_USERNAME, PROVIDER_PASSWORD)
    credential.access_token_expires_at = utcnow() + timedelta(seconds=30)
    db.session.commit()
    password_server.clear_requests()
    return credential


def stored() -> Credential | None:
    db.session.expire_all()
    return db.session.scalar(select(Credential))


def requests_of(server, grant_type=None, hint=None) -> list[dict]:
    return [
        entry
        for entry in server.requests
        if (grant_type is None or entry["grant_type"] == grant_type)
        and (hint is None or entry["token_type_hint"] == hint)
    ]


def test_job_refreshes_due_token(runner, credential, password_server):
    result = runner.invoke(args=["tokens", "refresh-due"])
    assert result.exit_code == 0, result.output
    assert "1 refreshed" in result.output
    assert password_server.is_active(stored().access_token)


def test_job_leaves_fresh_token(runner, credential, password_server):
    credential.access_token_expires_at = utcnow() + timedelta(hours=1)
    db.session.commit()
    runner.invoke(args=["tokens", "refresh-due"])
    assert requests_of(password_server, "refresh_token") == []


def test_job_waits_for_next_attempt(runner, credential, password_server):
    credential.next_refresh_attempt_at = utcnow() + timedelta(minutes=5)
    db.session.commit()
    runner.invoke(args=["tokens", "refresh-due"])
    assert requests_of(password_server, "refresh_token") == []


def test_job_retries_after_next_attempt(runner, credential, password_server):
    credential.refresh_attempts = 2
    credential.next_refresh_attempt_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    runner.invoke(args=["tokens", "refresh-due"])
    assert len(requests_of(password_server, "refresh_token")) == 1


def test_job_failure_backs_off_exponentially(app, runner, credential, password_server):
    password_server.token_status = 503
    runner.invoke(args=["tokens", "refresh-due"])
    first_wait = stored().next_refresh_attempt_at - utcnow()

    credential = stored()
    credential.next_refresh_attempt_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    runner.invoke(args=["tokens", "refresh-due"])
    second_wait = stored().next_refresh_attempt_at - utcnow()

    base = app.config["RETRY_BACKOFF_BASE"]
    assert timedelta(seconds=base - 5) < first_wait <= timedelta(seconds=base)
    assert timedelta(seconds=2 * base - 5) < second_wait <= timedelta(seconds=2 * base)


def test_job_skips_needs_reconnect(runner, credential, password_server):
    credential.status = CredentialStatus.NEEDS_RECONNECT
    db.session.commit()
    runner.invoke(args=["tokens", "refresh-due"])
    assert password_server.requests == []


def make_pending(credential, attempts=1, attempted_ago=timedelta(hours=1)):
    credential.status = CredentialStatus.REVOCATION_PENDING
    credential.revocation_attempts = attempts
    credential.revocation_attempted_at = utcnow() - attempted_ago
    db.session.commit()


def test_job_retries_pending_revocation(runner, credential, password_server):
    tokens = (credential.access_token, credential.refresh_token)
    make_pending(credential)
    result = runner.invoke(args=["tokens", "refresh-due"])

    assert "1 revoked" in result.output
    assert stored() is None
    assert not any(password_server.is_active(token) for token in tokens)


def test_job_waits_for_revocation_backoff(app, runner, credential, password_server):
    base = app.config["RETRY_BACKOFF_BASE"]
    make_pending(credential, attempts=2, attempted_ago=timedelta(seconds=base + 10))
    runner.invoke(args=["tokens", "refresh-due"])
    assert password_server.requests == []
    assert stored().status == CredentialStatus.REVOCATION_PENDING


def test_failed_revocation_retry_counts_attempt(runner, credential, password_server):
    make_pending(credential, attempts=1)
    password_server.revocation_status = 503
    result = runner.invoke(args=["tokens", "refresh-due"])

    assert "1 revocation still pending" in result.output
    assert stored().revocation_attempts == 2
    assert len(requests_of(password_server, hint="refresh_token")) == 1


def test_revocation_retry_is_audited(runner, credential, password_server):
    make_pending(credential)
    runner.invoke(args=["tokens", "refresh-due"])
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.actor_user_id.is_(None))).all()
    assert "credential.revoke" in actions
    assert "credential.revoke_at_provider" in actions


def test_give_up_revocation_deletes_row(runner, credential, password_integration):
    make_pending(credential)
    result = runner.invoke(
        args=["tokens", "give-up-revocation", "--user", "alice", "--integration", password_integration.name]
    )
    assert result.exit_code == 0, result.output
    assert "may still be live" in result.output
    assert stored() is None


def test_give_up_revocation_is_audited(runner, credential, password_integration):
    make_pending(credential, attempts=4)
    runner.invoke(args=["tokens", "give-up-revocation", "--user", "alice", "--integration", password_integration.name])
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "credential.revocation_given_up"))
    assert "may still be live" in event.detail
    assert event.data["attempts"] == 4


def test_give_up_requires_pending_revocation(runner, credential, password_integration):
    result = runner.invoke(
        args=["tokens", "give-up-revocation", "--user", "alice", "--integration", password_integration.name]
    )
    assert result.exit_code == 1
    assert "not waiting for revocation" in result.output
    assert stored() is not None


def test_give_up_unknown_user_fails(runner, credential, password_integration):
    result = runner.invoke(
        args=["tokens", "give-up-revocation", "--user", "nobody", "--integration", password_integration.name]
    )
    assert result.exit_code == 1
    assert "has no credential" in result.output


def test_loop_stops_on_sigterm(app, credential, password_server, tmp_path):
    environment = dict(
        os.environ,
        PERSONAL_AUTH_ENV="testing",
        PERSONAL_AUTH_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        PERSONAL_AUTH_SECRET_KEY="test-secret-key-" + "x" * 32,
        PERSONAL_AUTH_ENCRYPTION_KEYS=ENCRYPTION_KEYS,
        PERSONAL_AUTH_INSTANCE_PATH=str(tmp_path),
        PERSONAL_AUTH_REFRESH_RETRY_DELAY="0",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "tokens", "refresh-due", "--loop", "--interval", "1"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not requests_of(password_server, "refresh_token") and time.monotonic() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 0, output
    assert "Token job stopped." in output
    assert len(requests_of(password_server, "refresh_token")) == 1
