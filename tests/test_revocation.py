"""Revoke on the dashboard, with RFC 7009 revocation at a real Authlib server."""

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Credential, CredentialStatus
from tests.conftest import PROVIDER_PASSWORD, PROVIDER_USERNAME


@pytest.fixture
def connected(auth, user, password_integration, password_server):
    auth.login("alice")
    auth.post(
        f"/connect/{password_integration.id}/password",
        {"username": PROVIDER_USERNAME, "password": PROVIDER_PASSWORD, "display": "popup"},
        token_from=f"/connect/{password_integration.id}?display=popup",
    )
    credential = current_credential()
    tokens = {"access": credential.access_token, "refresh": credential.refresh_token}
    password_server.clear_requests()
    return tokens


def current_credential() -> Credential | None:
    db.session.expire_all()
    return db.session.scalar(select(Credential))


def revoke(auth, integration, htmx=True):
    return auth.post(f"/integrations/{integration.id}/revoke", htmx=htmx)


def test_revoke_deletes_credential(auth, password_integration, connected):
    response = revoke(auth, password_integration)
    assert response.status_code == 200
    assert current_credential() is None


def test_revoke_moves_card_down(auth, password_integration, connected):
    html = revoke(auth, password_integration).get_data(as_text=True)
    mine, _, available = html.partition('id="mine-heading"')[2].partition('id="available-heading"')
    assert "Service Desk" not in mine
    assert 'Authenticate<span class="visually-hidden"> Service Desk</span>' in available


def test_revoke_announces_result(auth, password_integration, connected):
    response = revoke(auth, password_integration)
    assert 'data-announce="Service Desk is revoked' in response.get_data(as_text=True)


def test_revoke_calls_provider_refresh_first(auth, password_integration, password_server, connected):
    revoke(auth, password_integration)
    calls = [(entry["token"], entry["token_type_hint"], entry["auth"]) for entry in password_server.requests]
    assert calls == [
        (connected["refresh"], "refresh_token", "basic"),
        (connected["access"], "access_token", "basic"),
    ]


def test_revoke_deactivates_tokens_at_provider(auth, password_integration, password_server, connected):
    revoke(auth, password_integration)
    assert not password_server.is_active(connected["refresh"])
    assert not password_server.is_active(connected["access"])


def test_revoke_without_htmx_redirects(auth, client, password_integration, connected):
    response = revoke(auth, password_integration, htmx=False)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_revoke_requires_csrf(client, password_integration, connected):
    response = client.post(f"/integrations/{password_integration.id}/revoke")
    assert response.status_code == 400
    assert current_credential() is not None


def test_revoke_other_users_credential_is_404(app, auth, make_user, password_integration, connected):
    make_user("mallory")
    auth.logout()
    auth.login("mallory")
    response = revoke(auth, password_integration)
    assert response.status_code == 404
    assert current_credential() is not None


def test_provider_error_leaves_revocation_pending(auth, password_integration, password_server, connected):
    password_server.revocation_status = 503
    response = revoke(auth, password_integration)

    credential = current_credential()
    assert credential.status == CredentialStatus.REVOCATION_PENDING
    assert credential.refresh_token == connected["refresh"]
    assert credential.revocation_attempts == 1
    html = response.get_data(as_text=True)
    assert "Revocation pending" in html
    assert "Retry revocation" in html
    assert "HTTP 503" in html
    assert not credential.is_usable()


def test_failed_refresh_revocation_still_revokes_access(auth, password_integration, password_server, connected):
    password_server.revocation_status = 503
    revoke(auth, password_integration)
    hints = [entry["token_type_hint"] for entry in password_server.requests]
    assert hints == ["refresh_token", "access_token"]


def test_retry_revocation_completes(auth, password_integration, password_server, connected):
    password_server.revocation_status = 503
    revoke(auth, password_integration)
    password_server.revocation_status = None

    revoke(auth, password_integration)
    assert current_credential() is None
    assert not password_server.is_active(connected["refresh"])


def test_unreachable_provider_leaves_revocation_pending(auth, password_integration, password_server, connected):
    password_server.stop()
    html = revoke(auth, password_integration).get_data(as_text=True)
    assert "could not be reached" in html
    assert current_credential().status == CredentialStatus.REVOCATION_PENDING


def test_pending_blocks_new_connection(auth, password_integration, password_server, connected):
    password_server.revocation_status = 503
    revoke(auth, password_integration)
    response = auth.post(
        f"/connect/{password_integration.id}/password",
        {"username": PROVIDER_USERNAME, "password": PROVIDER_PASSWORD, "display": "popup"},
        token_from=f"/connect/{password_integration.id}?display=popup",
    )
    assert response.status_code == 422
    assert "still waiting to be revoked" in response.get_data(as_text=True)


def test_no_revocation_url_deletes_locally(auth, password_integration, password_server, connected):
    password_integration.provider.revocation_url = None
    db.session.commit()
    revoke(auth, password_integration)
    assert current_credential() is None
    assert password_server.requests == []


def test_revocation_attempts_are_audited(auth, user, password_integration, password_server, connected):
    from app.audit import AuditEvent

    password_server.revocation_status = 503
    revoke(auth, password_integration)
    password_server.revocation_status = None
    revoke(auth, password_integration)

    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action.like("credential.%")).order_by(AuditEvent.id)
    ).all()
    trail = [(event.action, event.outcome, event.data.get("token_type_hint")) for event in events]
    assert trail == [
        ("credential.connect", "success", None),
        ("credential.revoke_at_provider", "failure", "refresh_token"),
        ("credential.revoke_at_provider", "failure", "access_token"),
        ("credential.revoke", "failure", None),
        ("credential.revoke_at_provider", "success", "refresh_token"),
        ("credential.revoke_at_provider", "success", "access_token"),
        ("credential.revoke", "success", None),
    ]
    assert {event.actor_user_id for event in events} == {user.id}
    assert all(connected["access"] not in event.detail for event in events)
