"""The password grant pop-up against a real Authlib authorization server."""

from sqlalchemy import select

from app.extensions import db
from app.models import Credential
from tests.conftest import PASSWORD_CLIENT_SECRET, PROVIDER_PASSWORD, PROVIDER_USERNAME


def credential_for(user, integration) -> Credential | None:
    db.session.expire_all()
    return db.session.scalar(
        select(Credential).where(Credential.user_id == user.id, Credential.integration_id == integration.id)
    )


def submit_password(auth, integration, password, display="popup"):
    path = f"/connect/{integration.id}/password"
    form_page = f"/connect/{integration.id}?display={display}"
    return auth.post(
        path, {"username": PROVIDER_USERNAME, "password": password, "display": display}, token_from=form_page
    )


def test_password_form_has_fields_and_button(auth, client, user, password_integration):
    auth.login("alice")
    html = client.get(f"/connect/{password_integration.id}?display=popup").get_data(as_text=True)
    assert 'name="username"' in html
    assert 'type="password"' in html
    assert "Get OAuth Token" in html


def test_password_grant_stores_tokens(auth, user, password_integration, password_server):
    auth.login("alice")
    response = submit_password(auth, password_integration, PROVIDER_PASSWORD)
    assert response.status_code == 200
    assert 'data-outcome="connected"' in response.get_data(as_text=True)

    credential = credential_for(user, password_integration)
    assert credential is not None
    assert password_server.is_active(credential.access_token)
    assert password_server.is_active(credential.refresh_token)
    assert credential.access_token_expires_at is not None
    assert credential.granted_scopes == "useraccount"


def test_password_grant_uses_rfc6749_basic_auth(auth, user, password_integration, password_server):
    auth.login("alice")
    submit_password(auth, password_integration, PROVIDER_PASSWORD)
    token_requests = [entry for entry in password_server.requests if entry["grant_type"] == "password"]
    assert [entry["auth"] for entry in token_requests] == ["basic"]


def test_password_grant_rejected_shows_error(auth, user, password_integration):
    auth.login("alice")
    response = submit_password(auth, password_integration, "wrong-password")
    html = response.get_data(as_text=True)

    assert response.status_code == 422
    assert "Invalid username or password" in html
    assert "wrong-password" not in html
    assert PROVIDER_USERNAME in html
    assert credential_for(user, password_integration) is None


def test_password_grant_retry_after_rejection(auth, user, password_integration):
    auth.login("alice")
    submit_password(auth, password_integration, "wrong-password")
    response = submit_password(auth, password_integration, PROVIDER_PASSWORD)
    assert response.status_code == 200
    assert credential_for(user, password_integration) is not None


def test_password_never_stored(auth, user, password_integration):
    auth.login("alice")
    submit_password(auth, password_integration, PROVIDER_PASSWORD)
    credential = credential_for(user, password_integration)
    columns = [getattr(credential, column.key) for column in Credential.__table__.columns]
    assert all(PROVIDER_PASSWORD not in str(value) for value in columns)


def test_tokens_encrypted_at_rest(auth, user, password_integration):
    auth.login("alice")
    submit_password(auth, password_integration, PROVIDER_PASSWORD)
    credential = credential_for(user, password_integration)
    raw = db.session.execute(select(Credential.access_token_ciphertext, Credential.refresh_token_ciphertext)).one()
    assert raw[0].startswith("pa1.test1.")
    assert credential.access_token not in raw[0]
    assert credential.refresh_token not in raw[1]


def test_client_secret_encrypted_at_rest(password_integration):
    from app.models import Provider

    ciphertext = db.session.execute(select(Provider.client_secret_ciphertext)).scalar_one()
    assert PASSWORD_CLIENT_SECRET not in ciphertext
    assert password_integration.provider.client_secret == PASSWORD_CLIENT_SECRET


def test_renew_replaces_tokens(auth, user, password_integration, password_server):
    auth.login("alice")
    submit_password(auth, password_integration, PROVIDER_PASSWORD)
    first = credential_for(user, password_integration)
    first_access, connected_at = first.access_token, first.connected_at

    submit_password(auth, password_integration, PROVIDER_PASSWORD)
    renewed = credential_for(user, password_integration)
    assert renewed.access_token != first_access
    assert renewed.renewed_at is not None
    assert renewed.connected_at == connected_at


def test_page_display_redirects_to_dashboard(auth, client, user, password_integration):
    auth.login("alice")
    response = submit_password(auth, password_integration, PROVIDER_PASSWORD, display="page")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/#integration-{password_integration.id}"
    assert "Service Desk is connected." in client.get("/").get_data(as_text=True)


def test_provider_unreachable_is_reported(auth, user, password_integration, password_server):
    password_server.stop()
    auth.login("alice")
    response = submit_password(auth, password_integration, PROVIDER_PASSWORD)
    assert response.status_code == 422
    assert "could not be reached" in response.get_data(as_text=True)
