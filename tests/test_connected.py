"""The admin page "who is connected" of an integration, and revoking from it."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.connections import password_grant
from app.extensions import db
from app.models import ROLE_ADMIN, ROLE_USER, Credential, CredentialStatus, utcnow
from tests.conftest import PROVIDER_PASSWORD, PROVIDER_USERNAME


@pytest.fixture
def admin(make_user, auth):
    user = make_user("root-admin", roles=(ROLE_ADMIN, ROLE_USER))
    auth.login("root-admin")
    return user


@pytest.fixture
def alice_credential(user, password_integration):
    return password_grant(user, password_integration, PROVIDER_USERNAME, PROVIDER_PASSWORD)


@pytest.fixture
def bob_credential(make_user, password_integration):
    return password_grant(make_user("bob"), password_integration, PROVIDER_USERNAME, PROVIDER_PASSWORD)


def page_url(integration) -> str:
    return f"/admin/integrations/{integration.id}/connected"


def test_page_lists_connected_users(admin, client, password_integration, alice_credential, bob_credential):
    html = client.get(page_url(password_integration)).get_data(as_text=True)
    assert "alice (alice)" in html
    assert "bob (bob)" in html


def test_page_shows_no_token(admin, client, password_integration, alice_credential):
    access_token, refresh_token = alice_credential.access_token, alice_credential.refresh_token
    html = client.get(page_url(password_integration)).get_data(as_text=True)
    assert access_token not in html
    assert refresh_token not in html


@pytest.mark.parametrize(
    ("change", "state"),
    [
        ({}, "Active"),
        ({"status": CredentialStatus.REVOCATION_PENDING}, "Revocation pending"),
        ({"refresh_token_expires_at": timedelta(minutes=5)}, "Expiring soon"),
        (
            {"refresh_token_expires_at": -timedelta(minutes=5), "access_token_expires_at": -timedelta(minutes=5)},
            "Expired",
        ),
    ],
)
def test_page_shows_state(admin, client, password_integration, alice_credential, change, state):
    for name, value in change.items():
        setattr(alice_credential, name, utcnow() + value if isinstance(value, timedelta) else value)
    db.session.commit()
    html = client.get(page_url(password_integration)).get_data(as_text=True)
    assert f"<td>{state}" in html


def test_page_shows_revocation_error(admin, client, password_integration, alice_credential):
    alice_credential.status = CredentialStatus.REVOCATION_PENDING
    alice_credential.revocation_error = "ServiceNow Test did not confirm the revocation (HTTP 503)."
    db.session.commit()
    html = client.get(page_url(password_integration)).get_data(as_text=True)
    assert "did not confirm the revocation (HTTP 503)" in html


def test_page_flags_user_outside_groups(admin, client, password_integration, alice_credential):
    from app.groups import GroupInput, save_group, set_integration_groups

    set_integration_groups(password_integration, [save_group(GroupInput("sales"))])
    html = client.get(page_url(password_integration)).get_data(as_text=True)
    assert "not in the allowed groups" in html


def test_page_needs_admin(auth, client, user, password_integration):
    auth.login("alice")
    assert client.get(page_url(password_integration)).status_code == 403


def test_revoke_one_asks_first(admin, client, password_integration, alice_credential, password_server):
    url = f"{page_url(password_integration)}/{alice_credential.id}/revoke"
    html = client.get(url).get_data(as_text=True)
    assert "Revoke the credential of alice for Service Desk" in html
    assert password_server.is_active(alice_credential.access_token)


def test_revoke_one_revokes_at_provider(admin, auth, password_integration, alice_credential, password_server):
    access_token = alice_credential.access_token
    url = f"{page_url(password_integration)}/{alice_credential.id}/revoke"
    response = auth.post(url, token_from=url)
    assert "<td>Revoked</td>" in response.get_data(as_text=True)
    assert not password_server.is_active(access_token)


def test_revoke_one_keeps_others(admin, auth, password_integration, alice_credential, bob_credential):
    url = f"{page_url(password_integration)}/{alice_credential.id}/revoke"
    auth.post(url, token_from=url)
    db.session.expire_all()
    assert [credential.user.username for credential in db.session.scalars(select(Credential))] == ["bob"]


def test_revoke_one_of_other_integration_is_404(admin, auth, make_integration, password_integration, alice_credential):
    other = make_integration("Other", password_integration.provider)
    response = auth.post(f"{page_url(other)}/{alice_credential.id}/revoke", token_from=page_url(other))
    assert response.status_code == 404


def test_revoke_all_revokes_every_user(
    admin, auth, password_integration, alice_credential, bob_credential, password_server
):
    tokens = [alice_credential.access_token, bob_credential.access_token]
    url = f"{page_url(password_integration)}/revoke-all"
    html = auth.post(url, token_from=url).get_data(as_text=True)

    assert html.count("<td>Revoked</td>") == 2
    assert not any(password_server.is_active(token) for token in tokens)
    assert db.session.scalar(select(Credential)) is None


def test_revoke_all_shows_pending_per_user(
    admin, auth, password_integration, alice_credential, bob_credential, password_server
):
    password_server.revocation_status = 503
    url = f"{page_url(password_integration)}/revoke-all"
    html = auth.post(url, token_from=url).get_data(as_text=True)

    assert html.count("Revocation pending: ServiceNow Test did not confirm the revocation") == 2
    db.session.expire_all()
    statuses = set(db.session.scalars(select(Credential.status)))
    assert statuses == {CredentialStatus.REVOCATION_PENDING}


def test_revoke_all_asks_first(admin, client, password_integration, alice_credential, bob_credential):
    html = client.get(f"{page_url(password_integration)}/revoke-all").get_data(as_text=True)
    assert "Revoke 2 credentials for Service Desk" in html


def test_revoke_all_requires_csrf(admin, client, password_integration, alice_credential):
    response = client.post(f"{page_url(password_integration)}/revoke-all")
    assert response.status_code == 400
    assert db.session.scalar(select(Credential)) is not None


def pending(credential) -> None:
    credential.status = CredentialStatus.REVOCATION_PENDING
    credential.revocation_error = "ServiceNow Test did not confirm the revocation (HTTP 503)."
    db.session.commit()


def test_pending_row_offers_give_up(admin, client, password_integration, alice_credential):
    pending(alice_credential)
    html = client.get(page_url(password_integration)).get_data(as_text=True)
    assert "Give up<span" in html
    assert "Retry revocation<span" in html


def test_active_row_offers_no_give_up(admin, client, password_integration, alice_credential):
    html = client.get(page_url(password_integration)).get_data(as_text=True)
    assert "Give up<span" not in html


def test_give_up_deletes_pending_credential(admin, auth, password_integration, alice_credential):
    pending(alice_credential)
    url = f"{page_url(password_integration)}/{alice_credential.id}/give-up"
    response = auth.post(url, token_from=url)
    assert response.status_code == 303
    assert db.session.scalar(select(Credential)) is None


def test_give_up_active_credential_is_409(admin, auth, password_integration, alice_credential):
    url = f"{page_url(password_integration)}/{alice_credential.id}/give-up"
    response = auth.post(url, token_from=url)
    assert response.status_code == 409
    assert "is not waiting for revocation" in response.get_data(as_text=True)
    assert db.session.scalar(select(Credential)) is not None
