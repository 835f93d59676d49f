"""Revocation adapters against recorded provider responses.

These providers revoke tokens in ways a local RFC 7009 server cannot reproduce, so each
test replays the response the provider documents and checks the request sent.
"""

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from sqlalchemy import select

from app.extensions import db
from app.models import Credential, CredentialStatus
from app.oauth_client import ProviderError
from app.revocation import revoke_credential
from app.revocation_adapters import revoke

ACCESS = "access-token-value"
REFRESH = "refresh-token-value"


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def form(call) -> dict[str, list[str]]:
    return parse_qs(call.request.body)


@pytest.fixture
def adapter_provider(make_provider):
    def make(method: str, revocation_url: str, token_url: str = "https://provider.invalid/token"):
        return make_provider(
            method.title(),
            client_id="client-1",
            client_secret="secret+1",
            token_url=token_url,
            revocation_url=revocation_url,
            revocation_method=method,
        )

    return make


@responses.activate
def test_github_deletes_grant(adapter_provider):
    provider = adapter_provider("github", "https://api.github.invalid/applications/{client_id}/grant")
    responses.delete("https://api.github.invalid/applications/client-1/grant", status=204)

    revoke(provider, ACCESS, "access_token")

    call = responses.calls[0]
    assert call.request.method == "DELETE"
    assert call.request.headers["Authorization"] == basic("client-1", "secret%2B1")
    assert json.loads(call.request.body) == {"access_token": ACCESS}


@responses.activate
def test_github_skips_refresh_token(adapter_provider):
    provider = adapter_provider("github", "https://api.github.invalid/applications/{client_id}/grant")
    revoke(provider, REFRESH, "refresh_token")
    assert len(responses.calls) == 0


@responses.activate
def test_github_unknown_token_counts_as_revoked(adapter_provider):
    provider = adapter_provider("github", "https://api.github.invalid/applications/{client_id}/grant")
    responses.delete(
        "https://api.github.invalid/applications/client-1/grant", status=404, json={"message": "Not Found"}
    )
    revoke(provider, ACCESS, "access_token")


@responses.activate
def test_github_validation_failure_raises(adapter_provider):
    provider = adapter_provider("github", "https://api.github.invalid/applications/{client_id}/grant")
    responses.delete("https://api.github.invalid/applications/client-1/grant", status=422, json={"message": "x"})
    with pytest.raises(ProviderError) as error:
        revoke(provider, ACCESS, "access_token")
    assert error.value.status == 422


@responses.activate
def test_google_posts_token_form(adapter_provider):
    provider = adapter_provider("google", "https://oauth2.googleapis.invalid/revoke")
    responses.post("https://oauth2.googleapis.invalid/revoke", status=200, body="")

    revoke(provider, REFRESH, "refresh_token")

    call = responses.calls[0]
    assert call.request.method == "POST"
    assert form(call) == {"token": [REFRESH]}
    assert "Authorization" not in call.request.headers


@responses.activate
def test_google_invalid_token_counts_as_revoked(adapter_provider):
    provider = adapter_provider("google", "https://oauth2.googleapis.invalid/revoke")
    responses.post(
        "https://oauth2.googleapis.invalid/revoke",
        status=400,
        json={"error": "invalid_token", "error_description": "Token expired or revoked"},
    )
    revoke(provider, ACCESS, "access_token")


@responses.activate
def test_google_server_error_raises(adapter_provider):
    provider = adapter_provider("google", "https://oauth2.googleapis.invalid/revoke")
    responses.post("https://oauth2.googleapis.invalid/revoke", status=503, body="unavailable")
    with pytest.raises(ProviderError):
        revoke(provider, ACCESS, "access_token")


@responses.activate
def test_dropbox_uses_bearer_without_body(adapter_provider):
    provider = adapter_provider("dropbox", "https://api.dropboxapi.invalid/2/auth/token/revoke")
    responses.post("https://api.dropboxapi.invalid/2/auth/token/revoke", status=200, body="null")

    revoke(provider, ACCESS, "access_token")

    call = responses.calls[0]
    assert call.request.method == "POST"
    assert call.request.headers["Authorization"] == f"Bearer {ACCESS}"
    assert not call.request.body


@responses.activate
def test_dropbox_refresh_token_exchanged_then_revoked(adapter_provider):
    provider = adapter_provider(
        "dropbox", "https://api.dropboxapi.invalid/2/auth/token/revoke", "https://api.dropboxapi.invalid/oauth2/token"
    )
    responses.post(
        "https://api.dropboxapi.invalid/oauth2/token",
        json={"access_token": "fresh-access", "token_type": "bearer", "expires_in": 14400},
    )
    responses.post("https://api.dropboxapi.invalid/2/auth/token/revoke", status=200, body="null")

    revoke(provider, REFRESH, "refresh_token")

    assert form(responses.calls[0])["refresh_token"] == [REFRESH]
    assert responses.calls[1].request.headers["Authorization"] == "Bearer fresh-access"


@responses.activate
def test_dropbox_expired_token_counts_as_revoked(adapter_provider):
    provider = adapter_provider("dropbox", "https://api.dropboxapi.invalid/2/auth/token/revoke")
    responses.post(
        "https://api.dropboxapi.invalid/2/auth/token/revoke",
        status=401,
        json={"error_summary": "expired_access_token/", "error": {".tag": "expired_access_token"}},
    )
    revoke(provider, ACCESS, "access_token")


@responses.activate
def test_salesforce_posts_token_form(adapter_provider):
    provider = adapter_provider("salesforce", "https://login.salesforce.invalid/services/oauth2/revoke")
    responses.post("https://login.salesforce.invalid/services/oauth2/revoke", status=200, body="")

    revoke(provider, REFRESH, "refresh_token")

    call = responses.calls[0]
    assert form(call) == {"token": [REFRESH]}
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"


@responses.activate
def test_salesforce_unsupported_token_raises(adapter_provider):
    provider = adapter_provider("salesforce", "https://login.salesforce.invalid/services/oauth2/revoke")
    responses.post(
        "https://login.salesforce.invalid/services/oauth2/revoke",
        status=400,
        json={"error": "unsupported_token_type", "error_description": "this token type is not supported"},
    )
    with pytest.raises(ProviderError) as error:
        revoke(provider, ACCESS, "access_token")
    assert error.value.error == "unsupported_token_type"


@responses.activate
def test_box_sends_client_credentials_in_body(adapter_provider):
    provider = adapter_provider("box", "https://api.box.invalid/oauth2/revoke")
    responses.post("https://api.box.invalid/oauth2/revoke", status=200, body="")

    revoke(provider, ACCESS, "access_token")

    call = responses.calls[0]
    assert form(call) == {"client_id": ["client-1"], "client_secret": ["secret+1"], "token": [ACCESS]}
    assert "Authorization" not in call.request.headers


@responses.activate
def test_box_invalid_client_raises(adapter_provider):
    provider = adapter_provider("box", "https://api.box.invalid/oauth2/revoke")
    responses.post(
        "https://api.box.invalid/oauth2/revoke",
        status=400,
        json={"error": "invalid_client", "error_description": "The client credentials are not valid"},
    )
    with pytest.raises(ProviderError) as error:
        revoke(provider, ACCESS, "access_token")
    assert error.value.error == "invalid_client"


@responses.activate
def test_slack_revokes_with_bearer(adapter_provider):
    provider = adapter_provider("slack", "https://slack.invalid/api/auth.revoke")
    responses.post("https://slack.invalid/api/auth.revoke", json={"ok": True, "revoked": True})

    revoke(provider, ACCESS, "access_token")

    call = responses.calls[0]
    assert call.request.headers["Authorization"] == f"Bearer {ACCESS}"


@responses.activate
def test_slack_error_in_ok_response_raises(adapter_provider):
    provider = adapter_provider("slack", "https://slack.invalid/api/auth.revoke")
    responses.post("https://slack.invalid/api/auth.revoke", json={"ok": False, "error": "ratelimited"})
    with pytest.raises(ProviderError) as error:
        revoke(provider, ACCESS, "access_token")
    assert error.value.error == "ratelimited"


@responses.activate
def test_slack_revoked_token_counts_as_revoked(adapter_provider):
    provider = adapter_provider("slack", "https://slack.invalid/api/auth.revoke")
    responses.post("https://slack.invalid/api/auth.revoke", json={"ok": False, "error": "token_revoked"})
    revoke(provider, ACCESS, "access_token")


@responses.activate
def test_hubspot_deletes_refresh_token(adapter_provider):
    provider = adapter_provider("hubspot", "https://api.hubapi.invalid/oauth/v1/refresh-tokens/{token}")
    responses.delete(f"https://api.hubapi.invalid/oauth/v1/refresh-tokens/{REFRESH}", status=204)

    revoke(provider, REFRESH, "refresh_token")

    assert responses.calls[0].request.method == "DELETE"


@responses.activate
def test_hubspot_skips_access_token(adapter_provider):
    provider = adapter_provider("hubspot", "https://api.hubapi.invalid/oauth/v1/refresh-tokens/{token}")
    revoke(provider, ACCESS, "access_token")
    assert len(responses.calls) == 0


@responses.activate
def test_zendesk_deletes_current_token(adapter_provider):
    provider = adapter_provider("zendesk", "https://acme.zendesk.invalid/api/v2/oauth/tokens/current.json")
    responses.delete("https://acme.zendesk.invalid/api/v2/oauth/tokens/current.json", status=204)

    revoke(provider, ACCESS, "access_token")

    call = responses.calls[0]
    assert call.request.method == "DELETE"
    assert call.request.headers["Authorization"] == f"Bearer {ACCESS}"


def stored_credential(user, integration) -> Credential:
    credential = Credential(user_id=user.id, integration_id=integration.id)
    db.session.add(credential)
    db.session.flush()
    credential.access_token = ACCESS
    credential.refresh_token = REFRESH
    db.session.commit()
    return credential


@responses.activate
def test_dispatch_revokes_refresh_then_access(user, adapter_provider, make_integration):
    provider = adapter_provider("salesforce", "https://login.salesforce.invalid/services/oauth2/revoke")
    credential = stored_credential(user, make_integration("CRM", provider))
    responses.post("https://login.salesforce.invalid/services/oauth2/revoke", status=200, body="")

    outcome = revoke_credential(credential, actor_user_id=user.id)

    assert outcome.completed is True
    assert [form(call)["token"] for call in responses.calls] == [[REFRESH], [ACCESS]]
    assert db.session.scalar(select(Credential)) is None


@responses.activate
def test_dispatch_failure_keeps_pending(user, adapter_provider, make_integration):
    provider = adapter_provider("box", "https://api.box.invalid/oauth2/revoke")
    credential = stored_credential(user, make_integration("Files", provider))
    responses.post("https://api.box.invalid/oauth2/revoke", status=503, body="down")

    outcome = revoke_credential(credential, actor_user_id=user.id)

    assert outcome.completed is False
    assert "refresh token: server_error" in outcome.error
    db.session.expire_all()
    stored = db.session.scalar(select(Credential))
    assert stored.status == CredentialStatus.REVOCATION_PENDING
    assert stored.refresh_token == REFRESH


def test_none_method_deletes_locally(user, make_provider, make_integration):
    provider = make_provider("Entra", revocation_method="none")
    credential = stored_credential(user, make_integration("Mail", provider))

    outcome = revoke_credential(credential, actor_user_id=user.id)

    assert outcome.completed is True
    assert db.session.scalar(select(Credential)) is None


@responses.activate
def test_servicenow_sends_token_in_query(adapter_provider):
    provider = adapter_provider("servicenow", "https://acme.service-now.invalid/oauth_revoke_token.do")
    responses.get("https://acme.service-now.invalid/oauth_revoke_token.do", status=200, body="")

    revoke(provider, REFRESH, "refresh_token")

    call = responses.calls[0]
    assert call.request.method == "GET"
    assert parse_qs(urlsplit(call.request.url).query) == {"token": [REFRESH]}
    assert "Authorization" not in call.request.headers


@responses.activate
def test_servicenow_error_raises(adapter_provider):
    provider = adapter_provider("servicenow", "https://acme.service-now.invalid/oauth_revoke_token.do")
    responses.get("https://acme.service-now.invalid/oauth_revoke_token.do", status=401, body="")
    with pytest.raises(ProviderError):
        revoke(provider, ACCESS, "access_token")


@responses.activate
def test_adapter_follows_no_redirect(adapter_provider):
    provider = adapter_provider("google", "https://oauth2.googleapis.invalid/revoke")
    responses.post(
        "https://oauth2.googleapis.invalid/revoke", status=307, headers={"Location": "https://elsewhere.invalid/revoke"}
    )
    with pytest.raises(ProviderError):
        revoke(provider, ACCESS, "access_token")
    assert len(responses.calls) == 1
