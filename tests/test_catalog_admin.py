"""Creating providers from catalog templates on the admin pages, and editing what they set."""

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import ClientAuthMethod, GrantType, Provider


@pytest.fixture
def admin(auth, admin_user):
    auth.login("root-admin")
    return admin_user


def create_from_catalog(auth, key: str, **fields):
    path = f"/admin/providers/catalog/{key}"
    return auth.post(path, {"client_id": "client-1", "client_secret": "secret-1", **fields}, token_from=path)


def provider_named(name: str) -> Provider | None:
    db.session.expire_all()
    return db.session.scalar(select(Provider).where(Provider.name == name))


def test_catalog_lists_templates(client, admin):
    html = client.get("/admin/providers/catalog").get_data(as_text=True)
    assert "Microsoft Entra ID" in html
    assert 'href="/admin/providers/catalog/servicenow_password"' in html


def test_template_form_asks_for_parameters(client, admin):
    html = client.get("/admin/providers/catalog/servicenow").get_data(as_text=True)
    assert 'name="parameter_instance"' in html
    assert "/oauth/callback" in html


def test_unknown_template_is_404(client, admin):
    assert client.get("/admin/providers/catalog/myspace").status_code == 404


def test_microsoft_tenant_fills_urls(auth, admin):
    response = create_from_catalog(auth, "microsoft", name="Microsoft 365", parameter_tenant="contoso.onmicrosoft.com")

    provider = provider_named("Microsoft 365")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/admin/providers/{provider.id}/edit"
    assert (
        provider.authorization_url == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
    )
    assert provider.default_scopes == "offline_access openid User.Read"
    assert provider.revocation_method == "none"
    assert provider.catalog_key == "microsoft"
    assert provider.client_secret == "secret-1"


def test_servicenow_password_template(auth, admin):
    create_from_catalog(auth, "servicenow_password", name="ServiceNow", parameter_instance="acme.service-now.com")

    provider = provider_named("ServiceNow")
    assert provider.grant_type == GrantType.PASSWORD
    assert provider.token_url == "https://acme.service-now.com/oauth_token.do"
    assert provider.client_auth_method == ClientAuthMethod.CLIENT_SECRET_POST


def test_invalid_parameter_shown_at_field(auth, admin):
    response = create_from_catalog(auth, "zendesk", name="Zendesk", parameter_subdomain="acme.zendesk.com/x")

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="parameter_subdomain-error"' in html
    assert provider_named("Zendesk") is None


def test_metadata_address_parameter_rejected(auth, admin):
    response = create_from_catalog(auth, "gitlab", name="GitLab", parameter_base_url="https://169.254.169.254")

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="parameter_base_url-error"' in html
    assert "GitLab URL must not point to a cloud metadata address" in html
    assert provider_named("GitLab") is None


def test_google_template_settings_stored(auth, admin):
    create_from_catalog(auth, "google", name="Google")

    provider = provider_named("Google")
    assert provider.extra_authorization_params["access_type"] == "offline"
    assert provider.extra_authorization_params["prompt"] == "consent"
    assert provider.revocation_method == "google"
    assert provider.issuer == "https://accounts.google.com"


def test_edit_form_keeps_template_settings(auth, admin):
    create_from_catalog(auth, "slack", name="Slack")
    provider = provider_named("Slack")
    edit = f"/admin/providers/{provider.id}/edit"

    html = auth.client.get(edit).get_data(as_text=True)
    assert "user_scope=users:read,chat:write" in html

    response = auth.post(
        edit,
        {
            "name": "Slack",
            "client_id": "client-1",
            "grant_type": "authorization_code",
            "client_auth_method": "client_secret_basic",
            "authorization_url": provider.authorization_url,
            "token_url": provider.token_url,
            "revocation_url": provider.revocation_url,
            "scope_separator": ",",
            "extra_authorization_params": "user_scope=channels:read\nteam=T123",
            "revocation_method": "slack",
            "default_token_lifetime": "43200",
            "refresh_token_rotates": "yes",
        },
        token_from=edit,
    )

    assert response.status_code == 303
    provider = provider_named("Slack")
    assert provider.extra_authorization_params == {"user_scope": "channels:read", "team": "T123"}
    assert provider.scope_separator == ","
    assert provider.default_token_lifetime == 43200
    assert provider.refresh_token_rotates is True
    assert provider.catalog_key == "slack"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("extra_authorization_params", "redirect_uri=https://evil.example.test", "set by the app"),
        ("extra_authorization_params", "no equals sign", "has no &#39;=&#39;"),
        ("revocation_method", "carrier_pigeon", "is unknown"),
        ("scope_separator", ";", "is not supported"),
        ("default_token_lifetime", "-1", "Default token lifetime must be"),
        ("issuer", "http://sso.example.test", "Issuer must use https"),
    ],
)
def test_edit_form_rejects_invalid_settings(auth, admin, make_provider, field, value, message):
    provider = make_provider("Example")
    edit = f"/admin/providers/{provider.id}/edit"
    data = {
        "name": "Example",
        "client_id": "client-1",
        "grant_type": "authorization_code",
        "client_auth_method": "client_secret_basic",
        "authorization_url": provider.authorization_url,
        "token_url": provider.token_url,
        "scope_separator": " ",
        "revocation_method": "rfc7009",
        field: value,
    }
    response = auth.post(edit, data, token_from=edit)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_start_sends_extra_params_and_separator(auth, client, user, make_provider, make_integration):
    provider = make_provider(
        "Slack",
        scope_separator=",",
        extra_authorization_params={"user_scope": "chat:write", "team": "T1"},
        default_scopes="users:read chat:write",
    )
    integration = make_integration("Chat", provider)
    auth.login("alice")

    response = client.get(f"/connect/{integration.id}?display=popup")

    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["scope"] == ["users:read,chat:write"]
    assert query["user_scope"] == ["chat:write"]
    assert query["team"] == ["T1"]
