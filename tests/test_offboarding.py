"""Deactivating a user revokes all of their tokens, at the providers too."""

import pytest
from sqlalchemy import select

from app.accounts import set_enabled
from app.connections import password_grant
from app.extensions import db
from app.models import ROLE_ADMIN, ROLE_USER, Credential, CredentialStatus, User
from tests.conftest import PROVIDER_PASSWORD, PROVIDER_USERNAME


def connect(user, integration):
    credential = password_grant(user, integration, PROVIDER_USERNAME, PROVIDER_PASSWORD)
    return credential.access_token, credential.refresh_token


@pytest.fixture
def second_integration(password_integration, make_integration):
    return make_integration("Knowledge Base", password_integration.provider)


@pytest.fixture
def tokens(user, password_integration, second_integration):
    return [connect(user, password_integration), connect(user, second_integration)]


def credentials_of(user) -> list[Credential]:
    db.session.expire_all()
    return list(db.session.scalars(select(Credential).where(Credential.user_id == user.id)))


def deactivate_form(user) -> dict:
    return {"display_name": user.display_name, "email": "", "roles": [ROLE_USER]}


@pytest.fixture
def admin(make_user, auth):
    user = make_user("root-admin", roles=(ROLE_ADMIN, ROLE_USER))
    auth.login("root-admin")
    return user


def test_deactivate_revokes_at_provider(user, tokens, password_server):
    set_enabled(user, False)
    for access_token, refresh_token in tokens:
        assert not password_server.is_active(access_token)
        assert not password_server.is_active(refresh_token)


def test_deactivate_deletes_credentials(user, tokens):
    set_enabled(user, False)
    assert credentials_of(user) == []


def test_deactivate_reports_each_integration(user, tokens):
    revocations = []
    set_enabled(user, False, revocations=revocations)
    assert [revocation.summary for revocation in revocations] == ["Service Desk: revoked.", "Knowledge Base: revoked."]


def test_deactivate_keeps_other_users_tokens(make_user, user, tokens, password_integration, password_server):
    bob = make_user("bob")
    bob_access, _ = connect(bob, password_integration)
    set_enabled(user, False)
    assert password_server.is_active(bob_access)


def test_provider_failure_leaves_revocation_pending(user, tokens, password_server):
    password_server.revocation_status = 503
    revocations = []
    set_enabled(user, False, revocations=revocations)

    assert [credential.status for credential in credentials_of(user)] == [CredentialStatus.REVOCATION_PENDING] * 2
    assert "HTTP 503" in revocations[0].summary
    assert not db.session.get(User, user.id).is_enabled


def test_activate_keeps_credentials(user, tokens):
    set_enabled(user, True)
    assert len(credentials_of(user)) == 2


def test_admin_deactivation_shows_outcome(admin, auth, client, user, tokens):
    response = auth.post(f"/admin/users/{user.id}/edit", deactivate_form(user))
    assert response.status_code == 303
    html = client.get("/admin/users").get_data(as_text=True)
    assert "Service Desk: revoked." in html
    assert "Knowledge Base: revoked." in html


def test_admin_deactivation_shows_pending(admin, auth, client, user, tokens, password_server):
    password_server.revocation_status = 503
    auth.post(f"/admin/users/{user.id}/edit", deactivate_form(user))
    html = client.get("/admin/users").get_data(as_text=True)
    assert "Service Desk: revocation pending." in html
    assert "HTTP 503" in html


def test_admin_deactivation_audits_admin(admin, auth, user, tokens):
    from app.audit import AuditEvent

    auth.post(f"/admin/users/{user.id}/edit", deactivate_form(user))
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "credential.revoke")).all()
    assert {event.actor_user_id for event in events} == {admin.id}


def test_cli_deactivate_prints_outcome(runner, user, tokens):
    result = runner.invoke(args=["users", "deactivate", "alice"])
    assert result.exit_code == 0, result.output
    assert "Service Desk: revoked." in result.output
    assert "Knowledge Base: revoked." in result.output


def test_cli_deactivate_pending_exits_1(runner, user, tokens, password_server):
    password_server.revocation_status = 503
    result = runner.invoke(args=["users", "deactivate", "alice"])
    assert result.exit_code == 1
    assert "Service Desk: revocation pending." in result.output
