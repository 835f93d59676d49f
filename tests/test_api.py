"""Token API at /api/v1: bearer API keys, typed errors, refresh, audit, OpenAPI conformance."""

import json
import logging
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from openapi_spec_validator import validate
from sqlalchemy import select

from app.api_keys import ApiKey, create_api_key, revoke_api_key
from app.audit import AuditEvent
from app.connections import store_tokens
from app.extensions import db
from app.models import Credential, CredentialStatus, Group, utcnow
from app.oauth_client import TokenSet
from tests.conftest import OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, TEST_BASE_URL, free_port
from tests.support.oidc_server import introspect, sign_in_and_consent
from tests.support.openapi import ApiClient, load_document, validate_response

ACCESS_TOKEN = "stored-access-token-1234"
REFRESH_TOKEN = "stored-refresh-token-5678"


@pytest.fixture
def api(client):
    return ApiClient(client)


@pytest.fixture
def integration(make_provider, make_integration):
    return make_integration("Code Hub", make_provider("Example"), api_base_url="https://api.codehub.invalid")


@pytest.fixture
def key(integration):
    _, raw_key = create_api_key("ticket-bot", [integration.name])
    return raw_key


def store(user, integration, expires_in: timedelta | None = timedelta(hours=1), refresh_token=REFRESH_TOKEN):
    token_set = TokenSet(
        access_token=ACCESS_TOKEN,
        token_type="Bearer",
        refresh_token=refresh_token,
        access_token_expires_at=utcnow() + expires_in if expires_in is not None else None,
        refresh_token_expires_at=None,
        scope="repo read:user",
    )
    return store_tokens(user, integration, token_set)


def fetch_events() -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "api.token_fetch")))


def test_openapi_document_is_valid():
    validate(load_document())


def test_openapi_document_served_without_key(api):
    response = api.get("/api/v1/openapi.json")

    assert response.status_code == 200
    assert response.get_json() == load_document()


# Success -------------------------------------------------------------------------------


def test_token_returned(api, key, user, integration):
    store(user, integration)

    response = api.token(key, "alice", integration.id)

    assert response.status_code == 200
    body = response.get_json()
    assert body["access_token"] == ACCESS_TOKEN
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "repo read:user"
    assert body["integration"] == {
        "id": integration.id,
        "name": "Code Hub",
        "provider": "Example",
        "api_base_url": "https://api.codehub.invalid",
    }
    assert body["user"]["username"] == "alice"


def test_token_never_contains_refresh_token(api, key, user, integration):
    store(user, integration)

    response = api.token(key, "alice", integration.id)

    assert REFRESH_TOKEN not in response.get_data(as_text=True)
    assert "refresh_token" not in response.get_json()


def test_token_expiry_is_rfc3339_utc(api, key, user, integration):
    credential = store(user, integration)

    body = api.token(key, "alice", integration.id).get_json()

    assert body["expires_at"] == credential.access_token_expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_token_without_lifetime_has_null_expiry(api, key, user, integration):
    store(user, integration, expires_in=None)

    assert api.token(key, "alice", integration.id).get_json()["expires_at"] is None


@pytest.mark.parametrize("reference", ["Code Hub", "code hub", "CODE%20HUB"])
def test_token_by_integration_name(api, key, user, integration, reference):
    store(user, integration)

    response = api.token(key, "alice", reference)

    assert response.status_code == 200
    assert response.get_json()["integration"]["id"] == integration.id


def test_token_response_not_cacheable(api, key, user, integration):
    store(user, integration)

    response = api.token(key, "alice", integration.id)

    assert response.headers["Cache-Control"] == "no-store"


# Authentication ------------------------------------------------------------------------


def test_missing_key_gets_401_json(api, integration):
    response = api.token(None, "alice", integration.id)

    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="personal-auth"'
    assert "Location" not in response.headers


def test_signed_in_session_is_not_enough(api, auth, admin_user, integration):
    auth.login(admin_user.username)

    response = api.token(None, "alice", integration.id)

    assert response.status_code == 401


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer pa_0123456789ab_not-the-secret",
        "Bearer not-a-key",
        "Bearer pa__secret",
        "Bearer pa_XYZ_secret",
    ],
)
def test_invalid_key_gets_401(client, key, integration, authorization):
    response = client.get(
        f"/api/v1/users/alice/integrations/{integration.id}/token", headers={"Authorization": authorization}
    )

    validate_response(response)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_api_key"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_basic_authorization_gets_401(client, integration):
    response = client.get(f"/api/v1/users/alice/integrations/{integration.id}/token", auth=("ticket-bot", "secret"))

    validate_response(response)
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"


def test_wrong_secret_with_known_prefix_gets_401(api, key, user, integration):
    store(user, integration)
    prefix = key.split("_")[1]

    response = api.token(f"pa_{prefix}_{'x' * 43}", "alice", integration.id)

    assert response.status_code == 401


def test_revoked_key_gets_401(api, key, user, integration):
    store(user, integration)
    revoke_api_key(db.session.scalar(select(ApiKey)))

    response = api.token(key, "alice", integration.id)

    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_api_key"


def test_revoked_key_use_is_audited(api, key, integration):
    api_key = db.session.scalar(select(ApiKey))
    revoke_api_key(api_key)

    api.token(key, "alice", integration.id)

    db.session.expire_all()
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "api_key.use"))
    assert event.outcome == "failure"
    assert event.data["api_key_id"] == api_key.id


def test_key_outside_scope_gets_403(api, user, integration, make_integration):
    other = make_integration("Mail", integration.provider)
    _, other_key = create_api_key("mail-bot", [other.name])
    store(user, integration)

    response = api.token(other_key, "alice", integration.id)

    assert response.status_code == 403
    assert response.get_json()["error"] == "integration_not_allowed"


# Typed errors --------------------------------------------------------------------------


def test_not_connected_gets_404_with_dashboard_url(api, key, user, integration):
    response = api.token(key, "alice", integration.id)

    assert response.status_code == 404
    body = response.get_json()
    assert body["error"] == "not_connected"
    assert body["dashboard_url"] == f"{TEST_BASE_URL}/#integration-{integration.id}"


@pytest.mark.parametrize(
    ("username", "reference", "error"),
    [
        ("nobody", None, "user_not_found"),
        ("alice", "999999", "integration_not_found"),
        ("alice", "No Such Integration", "integration_not_found"),
        ("alice", "99999999999999999999999", "integration_not_found"),
    ],
)
def test_unknown_user_or_integration_gets_404(api, key, user, integration, username, reference, error):
    response = api.token(key, username, reference or integration.id)

    assert response.status_code == 404
    assert response.get_json()["error"] == error
    assert "dashboard_url" not in response.get_json()


def test_revocation_pending_gets_409(api, key, user, integration):
    credential = store(user, integration)
    credential.status = CredentialStatus.REVOCATION_PENDING
    db.session.commit()

    response = api.token(key, "alice", integration.id)

    assert response.status_code == 409
    assert response.get_json()["error"] == "revocation_pending"
    assert ACCESS_TOKEN not in response.get_data(as_text=True)


def test_needs_reconnect_status_gets_409(api, key, user, integration):
    status = getattr(CredentialStatus, "NEEDS_RECONNECT", None)
    if status is None:
        pytest.skip("CredentialStatus has no NEEDS_RECONNECT yet")
    credential = store(user, integration)
    credential.status = status
    db.session.commit()

    response = api.token(key, "alice", integration.id)

    assert response.status_code == 409
    assert response.get_json()["error"] == "needs_reconnect"


def test_expired_without_refresh_token_needs_reconnect(api, key, user, integration):
    store(user, integration, expires_in=timedelta(minutes=-5), refresh_token=None)

    response = api.token(key, "alice", integration.id)

    assert response.status_code == 409
    assert response.get_json()["error"] == "needs_reconnect"
    assert response.get_json()["dashboard_url"].endswith(f"/#integration-{integration.id}")


def test_disabled_integration_gets_409(api, key, user, integration):
    store(user, integration)
    integration.is_enabled = False
    db.session.commit()

    response = api.token(key, "alice", integration.id)

    assert response.status_code == 409
    assert response.get_json()["error"] == "integration_disabled"


def test_disabled_user_gets_409(api, key, user, integration):
    store(user, integration)
    user.is_enabled = False
    db.session.commit()

    response = api.token(key, "alice", integration.id)

    assert response.status_code == 409
    assert response.get_json()["error"] == "user_disabled"


def test_user_outside_allowed_groups_gets_403(api, key, user, integration):
    store(user, integration)
    integration.allowed_groups = [Group(name="platform")]
    db.session.commit()

    response = api.token(key, "alice", integration.id)

    assert response.status_code == 403
    assert response.get_json()["error"] == "user_not_in_group"


def test_user_in_allowed_group_gets_token(api, key, user, integration):
    store(user, integration)
    group = Group(name="platform")
    db.session.add(group)
    group.members = [user]
    integration.allowed_groups = [group]
    db.session.commit()

    response = api.token(key, "alice", integration.id)

    assert response.status_code == 200


def test_unexpected_error_gets_500_json(api, key, user, integration, monkeypatch):
    store(user, integration, expires_in=timedelta(minutes=-1))

    def fail(credential):
        raise RuntimeError("database went away")

    monkeypatch.setattr("app.api.tokens.ensure_fresh_token", fail)
    response = api.token(key, "alice", integration.id)

    assert response.status_code == 500
    assert response.get_json()["error"] == "internal_error"


def test_unknown_path_gets_404_json(client, key):
    response = client.get("/api/v1/nothing/here", headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_wrong_method_gets_405_json(client, key, integration):
    response = client.post(
        f"/api/v1/users/alice/integrations/{integration.id}/token", headers={"Authorization": f"Bearer {key}"}
    )

    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


# Refresh against oidc-provider ---------------------------------------------------------


@pytest.fixture
def connected(client, auth, user, oidc_integration):
    """Connect alice to the oidc-provider integration through the real code flow."""
    auth.login("alice")
    authorize_url = client.get(f"/connect/{oidc_integration.id}").headers["Location"]
    callback = urlsplit(sign_in_and_consent(authorize_url))
    client.get(f"{callback.path}?{callback.query}")
    auth.logout()
    db.session.expire_all()
    credential = db.session.scalar(select(Credential).where(Credential.user_id == user.id))
    assert credential is not None, "the code flow stored no credential"
    return credential


@pytest.fixture
def oidc_key(oidc_integration):
    _, raw_key = create_api_key("ticket-bot", [oidc_integration.name])
    return raw_key


def expire_access_token(credential: Credential) -> None:
    credential.access_token_expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()


def test_expired_token_refreshed_first(api, oidc_key, connected, oidc_integration, oidc_server):
    old_token = connected.access_token
    expire_access_token(connected)

    response = api.token(oidc_key, "alice", oidc_integration.id)

    assert response.status_code == 200
    new_token = response.get_json()["access_token"]
    assert new_token != old_token
    assert introspect(oidc_server, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, new_token)["active"] is True


def test_rejected_refresh_token_needs_reconnect(api, oidc_key, connected, oidc_integration):
    connected.refresh_token = "refresh-token-the-provider-never-issued"
    expire_access_token(connected)

    response = api.token(oidc_key, "alice", oidc_integration.id)

    assert response.status_code == 409
    assert response.get_json()["error"] == "needs_reconnect"


def test_unreachable_provider_gets_503(api, oidc_key, connected, oidc_integration):
    oidc_integration.provider.token_url = f"http://127.0.0.1:{free_port()}/token"
    expire_access_token(connected)

    response = api.token(oidc_key, "alice", oidc_integration.id)

    assert response.status_code == 503
    assert response.get_json()["error"] == "refresh_failed"
    assert connected.refresh_token not in response.get_data(as_text=True)


# Records -------------------------------------------------------------------------------


def test_fetch_recorded_without_token(api, key, user, integration):
    store(user, integration)

    api.token(key, "alice", integration.id)

    [event] = fetch_events()
    api_key = db.session.scalar(select(ApiKey))
    assert event.outcome == "success"
    assert event.actor_service == "ticket-bot"
    assert event.subject_user_id == user.id
    assert event.integration_id == integration.id
    assert event.data["api_key_id"] == api_key.id
    assert ACCESS_TOKEN not in json.dumps(event.data) + event.detail


def test_failed_fetch_recorded_with_error(api, key, user, integration):
    api.token(key, "alice", integration.id)

    [event] = fetch_events()
    assert event.outcome == "failure"
    assert event.detail == "not_connected"


def test_fetch_of_unknown_user_records_username(api, key, integration):
    api.token(key, "nobody", integration.id)

    [event] = fetch_events()
    assert event.subject_user_id is None
    assert event.data["username"] == "nobody"


def test_fetch_stamps_key_last_used(api, key, user, integration):
    store(user, integration)

    api.token(key, "alice", integration.id)

    db.session.expire_all()
    assert db.session.scalar(select(ApiKey)).last_used_at is not None


def test_fetch_logs_one_line_without_token(caplog, api, key, user, integration):
    store(user, integration)
    caplog.set_level(logging.INFO, logger="app.api.tokens")

    api.token(key, "alice", integration.id)

    lines = [record.getMessage() for record in caplog.records if record.name == "app.api.tokens"]
    assert lines == [
        f"Token fetch: key 1, service ticket-bot, user {user.id}, integration {integration.id}, outcome success"
    ]
    assert ACCESS_TOKEN not in caplog.text
    assert key.split("_", 2)[2] not in caplog.text
