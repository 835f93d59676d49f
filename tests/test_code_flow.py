"""Authorization code + PKCE against oidc-provider, a real authorization server process."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuthorizationRequest, Credential, utcnow
from tests.conftest import OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, PASSWORD
from tests.support.oidc_server import deny_consent, introspect, sign_in_and_consent


def credential_for(user, integration) -> Credential | None:
    db.session.expire_all()
    return db.session.scalar(
        select(Credential).where(Credential.user_id == user.id, Credential.integration_id == integration.id)
    )


def start(client, integration, display="popup") -> str:
    response = client.get(f"/connect/{integration.id}?display={display}")
    assert response.status_code == 302
    return response.headers["Location"]


def local_path(redirect_url: str) -> str:
    parts = urlsplit(redirect_url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture
def signed_in(auth, user):
    auth.login("alice")
    return user


def test_start_redirects_with_state_and_pkce(client, signed_in, oidc_integration, oidc_server):
    url = start(client, oidc_integration)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(oidc_server.authorization_endpoint)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 32
    assert query["redirect_uri"] == ["http://127.0.0.1:8765/oauth/callback"]
    assert query["scope"] == ["openid profile"]
    assert query["response_type"] == ["code"]


def test_state_and_verifier_not_stored_plain(client, signed_in, oidc_integration):
    url = start(client, oidc_integration)
    state = parse_qs(urlsplit(url).query)["state"][0]
    row = db.session.scalar(select(AuthorizationRequest))
    assert row.state_hash != state
    assert row.code_verifier_ciphertext.startswith("pa1.")


def test_callback_stores_tokens(client, signed_in, oidc_integration, oidc_server):
    callback = sign_in_and_consent(start(client, oidc_integration))
    response = client.get(local_path(callback))

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'data-outcome="connected"' in html
    credential = credential_for(signed_in, oidc_integration)
    assert introspect(oidc_server, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, credential.access_token)["active"] is True
    assert credential.refresh_token is not None
    assert credential.access_token not in html
    assert parse_qs(urlsplit(callback).query)["code"][0] not in html


def test_callback_with_page_display_returns_to_dashboard(client, signed_in, oidc_integration):
    callback = sign_in_and_consent(start(client, oidc_integration, display="page"))
    response = client.get(local_path(callback))
    assert response.status_code == 303
    assert response.headers["Location"] == f"/#integration-{oidc_integration.id}"
    dashboard = client.get("/").get_data(as_text=True)
    mine = dashboard.partition('id="available-heading"')[0]
    assert "Code Hub" in mine


def test_access_denied_stores_nothing(client, signed_in, oidc_integration):
    callback = deny_consent(start(client, oidc_integration))
    response = client.get(local_path(callback))
    assert response.status_code == 400
    assert "did not grant access (access_denied" in response.get_data(as_text=True)
    assert credential_for(signed_in, oidc_integration) is None


def test_replayed_state_rejected(client, signed_in, oidc_integration):
    callback = sign_in_and_consent(start(client, oidc_integration))
    client.get(local_path(callback))
    replay = client.get(local_path(callback))
    assert replay.status_code == 400
    assert "already used or is unknown" in replay.get_data(as_text=True)


def test_wrong_state_stores_nothing(client, signed_in, oidc_integration):
    callback = sign_in_and_consent(start(client, oidc_integration))
    response = client.get(local_path(callback).replace("state=", "state=x"))
    assert response.status_code == 400
    assert credential_for(signed_in, oidc_integration) is None


def test_missing_state_rejected(client, signed_in, oidc_integration):
    response = client.get("/oauth/callback?code=abc")
    assert response.status_code == 400
    assert "has no state parameter" in response.get_data(as_text=True)


def test_state_from_other_session_rejected(app, client, auth, signed_in, make_user, oidc_integration):
    callback = sign_in_and_consent(start(client, oidc_integration))
    make_user("bob")
    other = app.test_client()
    from tests.conftest import AuthActions

    AuthActions(other).login("bob", PASSWORD)
    response = other.get(local_path(callback))
    assert response.status_code == 400
    assert "another session" in response.get_data(as_text=True)
    assert db.session.scalar(select(Credential)) is None


def test_expired_state_rejected(client, signed_in, oidc_integration):
    callback = sign_in_and_consent(start(client, oidc_integration))
    request = db.session.scalar(select(AuthorizationRequest))
    request.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    response = client.get(local_path(callback))
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)
    assert credential_for(signed_in, oidc_integration) is None


def test_failed_code_exchange_stores_nothing(client, signed_in, oidc_integration):
    callback = sign_in_and_consent(start(client, oidc_integration))
    query = parse_qs(urlsplit(callback).query)
    response = client.get(f"/oauth/callback?state={query['state'][0]}&code=not-a-real-code")
    assert response.status_code == 400
    assert "rejected the sign-in (invalid_grant" in response.get_data(as_text=True)
    assert credential_for(signed_in, oidc_integration) is None


def test_renew_replaces_tokens(client, signed_in, oidc_integration, oidc_server):
    client.get(local_path(sign_in_and_consent(start(client, oidc_integration))))
    first = credential_for(signed_in, oidc_integration)
    first_access, first_refresh = first.access_token, first.refresh_token

    client.get(local_path(sign_in_and_consent(start(client, oidc_integration))))
    renewed = credential_for(signed_in, oidc_integration)
    assert renewed.access_token != first_access
    assert renewed.refresh_token != first_refresh
    assert renewed.renewed_at is not None


def test_revoke_deactivates_at_provider(auth, client, signed_in, oidc_integration, oidc_server):
    client.get(local_path(sign_in_and_consent(start(client, oidc_integration))))
    credential = credential_for(signed_in, oidc_integration)
    access, refresh = credential.access_token, credential.refresh_token

    response = auth.post(f"/integrations/{oidc_integration.id}/revoke", htmx=True)
    assert response.status_code == 200
    assert credential_for(signed_in, oidc_integration) is None
    assert introspect(oidc_server, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, refresh)["active"] is False
    assert introspect(oidc_server, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, access)["active"] is False
