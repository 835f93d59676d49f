"""API keys: storage, the `flask api-keys` commands and the admin pages."""

import html
import re

import pytest
from sqlalchemy import select

from app.api_keys import ApiKey, ApiKeyError, authenticate, create_api_key, hash_secret, parse_key
from app.audit import AuditEvent
from app.extensions import db


@pytest.fixture
def integration(make_provider, make_integration):
    return make_integration("Code Hub", make_provider("Example"))


@pytest.fixture
def admin(admin_user, auth):
    auth.login(admin_user.username)
    return admin_user


def only_key() -> ApiKey:
    db.session.expire_all()
    return db.session.scalar(select(ApiKey))


def events(action: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# Storage -------------------------------------------------------------------------------


def test_key_has_prefix_and_long_secret(integration):
    api_key, raw_key = create_api_key("ticket-bot", ["Code Hub"])

    scheme, prefix, secret = raw_key.split("_", 2)
    assert scheme == "pa"
    assert prefix == api_key.prefix
    assert len(secret) >= 43


def test_key_stored_as_hash_only(integration):
    api_key, raw_key = create_api_key("ticket-bot", ["Code Hub"])
    secret = raw_key.split("_", 2)[2]

    assert api_key.secret_hash == hash_secret(secret)
    assert secret not in repr(db.session.execute(select(ApiKey.__table__)).all())


def test_authenticate_accepts_own_key(integration):
    api_key, raw_key = create_api_key("ticket-bot", ["Code Hub"])

    assert authenticate(raw_key) is api_key


def test_keys_differ(integration):
    first = create_api_key("ticket-bot", ["Code Hub"])[1]
    second = create_api_key("ticket-bot", ["Code Hub"])[1]

    assert first != second


@pytest.mark.parametrize(
    "raw_key",
    ["", "pa", "pa_", "pa_0123456789ab", "pa_0123456789ab_", "xx_0123456789ab_secret", "pa_0123456789AB_secret"],
)
def test_parse_rejects_malformed_keys(raw_key):
    assert parse_key(raw_key) is None


def test_parse_keeps_underscores_in_secret():
    assert parse_key("pa_0123456789ab_se_cr_et") == ("0123456789ab", "se_cr_et")


@pytest.mark.parametrize(
    ("service", "integrations", "field"),
    [
        ("", ["Code Hub"], "service"),
        ("x" * 101, ["Code Hub"], "service"),
        ("ticket-bot", [], "integrations"),
        ("ticket-bot", ["No Such Integration"], "integrations"),
    ],
)
def test_create_rejects_invalid_input(integration, service, integrations, field):
    with pytest.raises(ApiKeyError) as raised:
        create_api_key(service, integrations)

    assert raised.value.field == field
    assert only_key() is None


def test_create_accepts_integration_id(integration):
    api_key, _ = create_api_key("ticket-bot", [str(integration.id)])

    assert [allowed.name for allowed in api_key.integrations] == ["Code Hub"]


# CLI -----------------------------------------------------------------------------------


def test_cli_create_prints_key_once(runner, integration):
    result = runner.invoke(args=["api-keys", "create", "--service", "ticket-bot", "--integration", "Code Hub"])

    assert result.exit_code == 0, result.output
    raw_key = result.stdout.strip()
    assert authenticate(raw_key) is not None
    assert result.output.count(raw_key) == 1


def test_cli_create_with_two_integrations(runner, integration, make_integration):
    make_integration("Mail", integration.provider)

    result = runner.invoke(
        args=["api-keys", "create", "--service", "ticket-bot", "--integration", "Code Hub", "--integration", "Mail"]
    )

    assert result.exit_code == 0, result.output
    assert sorted(allowed.name for allowed in only_key().integrations) == ["Code Hub", "Mail"]


def test_cli_create_unknown_integration_fails(runner, integration):
    result = runner.invoke(args=["api-keys", "create", "--service", "ticket-bot", "--integration", "Nope"])

    assert result.exit_code == 1
    assert "no integration named 'Nope'" in result.output


def test_cli_create_is_audited_as_system(runner, integration):
    runner.invoke(args=["api-keys", "create", "--service", "ticket-bot", "--integration", "Code Hub"])

    [event] = events("api_key.create")
    assert event.actor_user_id is None


def test_cli_list_hides_secret(runner, integration):
    _, raw_key = create_api_key("ticket-bot", ["Code Hub"])

    result = runner.invoke(args=["api-keys", "list"])

    assert result.exit_code == 0
    assert "ticket-bot" in result.output
    assert f"pa_{only_key().prefix}_" in result.output
    assert raw_key.split("_", 2)[2] not in result.output


def test_cli_list_without_keys(runner):
    result = runner.invoke(args=["api-keys", "list"])

    assert "No API keys yet" in result.output


@pytest.mark.parametrize("reference", ["id", "prefix", "display"])
def test_cli_revoke(runner, integration, reference):
    api_key, raw_key = create_api_key("ticket-bot", ["Code Hub"])
    value = {"id": str(api_key.id), "prefix": api_key.prefix, "display": api_key.display_prefix}[reference]

    result = runner.invoke(args=["api-keys", "revoke", value])

    assert result.exit_code == 0, result.output
    assert only_key().revoked_at is not None
    assert authenticate(raw_key) is None


@pytest.mark.parametrize("reference", ["abcdefabcdef", "99999999999999999999999"])
def test_cli_revoke_unknown_key_fails(runner, reference):
    result = runner.invoke(args=["api-keys", "revoke", reference])

    assert result.exit_code == 1
    assert "no API key" in result.output


# Admin pages ---------------------------------------------------------------------------


def test_admin_pages_need_admin_role(client, auth, user):
    auth.login("alice")

    assert client.get("/admin/api-keys").status_code == 403


def test_admin_create_shows_key_once(client, auth, admin, integration):
    response = auth.post(
        "/admin/api-keys/new",
        {"service": "ticket-bot", "integrations": ["Code Hub"]},
        token_from="/admin/api-keys/new",
    )

    assert response.status_code == 201
    page = response.get_data(as_text=True)
    raw_key = html.unescape(re.search(r'id="api-key"[^>]*value="([^"]+)"', page).group(1))
    assert authenticate(raw_key) is not None
    assert response.headers["Cache-Control"] == "no-store"
    assert raw_key not in client.get("/admin/api-keys").get_data(as_text=True)


def test_admin_create_field_is_read_only(auth, admin, integration):
    response = auth.post(
        "/admin/api-keys/new", {"service": "ticket-bot", "integrations": ["Code Hub"]}, token_from="/admin/api-keys/new"
    )

    tag = re.search(r'<input[^>]*id="api-key"[^>]*>', response.get_data(as_text=True)).group(0)
    assert "readonly" in tag


def test_admin_create_records_creator(auth, admin, integration):
    auth.post(
        "/admin/api-keys/new", {"service": "ticket-bot", "integrations": ["Code Hub"]}, token_from="/admin/api-keys/new"
    )

    assert only_key().created_by_user_id == admin.id
    [event] = events("api_key.create")
    assert event.actor_user_id == admin.id


def test_admin_create_without_integration_is_422(auth, admin, integration):
    response = auth.post("/admin/api-keys/new", {"service": "ticket-bot"}, token_from="/admin/api-keys/new")

    assert response.status_code == 422
    assert "Choose at least one integration" in response.get_data(as_text=True)
    assert only_key() is None


def test_admin_list_shows_prefix_and_scope(client, admin, integration):
    create_api_key("ticket-bot", ["Code Hub"])

    page = client.get("/admin/api-keys").get_data(as_text=True)

    assert f"pa_{only_key().prefix}_" in page
    assert "Code Hub" in page


def test_admin_revoke_asks_first(client, admin, integration):
    api_key, _ = create_api_key("ticket-bot", ["Code Hub"])

    response = client.get(f"/admin/api-keys/{api_key.id}/revoke")

    assert response.status_code == 200
    assert only_key().revoked_at is None


def test_admin_revoke_post(auth, admin, integration):
    api_key, raw_key = create_api_key("ticket-bot", ["Code Hub"])

    response = auth.post(f"/admin/api-keys/{api_key.id}/revoke", token_from=f"/admin/api-keys/{api_key.id}/revoke")

    assert response.status_code == 303
    db.session.expire_all()
    assert authenticate(raw_key) is None
    [event] = events("api_key.revoke")
    assert event.actor_user_id == admin.id


def test_admin_revoke_needs_csrf(client, admin, integration):
    api_key, _ = create_api_key("ticket-bot", ["Code Hub"])

    response = client.post(f"/admin/api-keys/{api_key.id}/revoke")

    assert response.status_code == 400
    assert only_key().revoked_at is None


def test_admin_nav_links_api_keys_and_audit(client, admin):
    page = client.get("/admin/").get_data(as_text=True)

    assert 'href="/admin/api-keys"' in page
    assert 'href="/admin/audit"' in page
