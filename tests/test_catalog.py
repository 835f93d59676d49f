"""The provider catalog file: every template is complete and renders to valid provider values."""

from urllib.parse import urlsplit

import pytest

from app.catalog import (
    ADAPTER_PLACEHOLDERS,
    PLACEHOLDER,
    CatalogError,
    ParameterError,
    load_catalog,
    parse_template,
)
from app.models import GrantType
from app.revocation_adapters import ADAPTERS

CATALOG = load_catalog()
REQUIRED_KEYS = {
    "github",
    "gitlab",
    "google",
    "microsoft",
    "slack",
    "atlassian",
    "salesforce",
    "servicenow",
    "servicenow_password",
    "dropbox",
    "box",
    "zoom",
    "hubspot",
    "okta",
    "keycloak",
    "zendesk",
}
#: Sample parameter values by kind; names ending in .test never resolve on the internet.
SAMPLES = {"host": "acme.example.test", "segment": "acme", "url": "https://sso.example.test/realms/staff"}


def sample_values(template) -> dict[str, str]:
    return {parameter.name: parameter.default or SAMPLES[parameter.kind] for parameter in template.parameters}


def test_catalog_has_required_providers():
    assert REQUIRED_KEYS <= set(CATALOG)


@pytest.mark.parametrize("key", sorted(CATALOG))
def test_template_renders_https_urls(key):
    template = CATALOG[key]
    fields = template.render(sample_values(template))
    for name in ("authorization_url", "token_url", "revocation_url", "issuer"):
        url = fields[name]
        if url is None:
            continue
        parts = urlsplit(url)
        assert parts.scheme == "https", f"{key}.{name} = {url}"
        assert parts.hostname, f"{key}.{name} = {url}"
        assert not parts.fragment, f"{key}.{name} = {url}"
        assert set(PLACEHOLDER.findall(url)) <= ADAPTER_PLACEHOLDERS, f"{key}.{name} = {url}"


@pytest.mark.parametrize("key", sorted(CATALOG))
def test_template_docs_url_is_https(key):
    assert urlsplit(CATALOG[key].docs).scheme == "https"


@pytest.mark.parametrize("key", sorted(CATALOG))
def test_template_revocation_method_known(key):
    template = CATALOG[key]
    assert template.revocation_method in ("rfc7009", "none", *ADAPTERS)


@pytest.mark.parametrize("key", sorted(CATALOG))
def test_template_refresh_scopes_requested(key):
    template = CATALOG[key]
    requested = template.default_scopes.replace(",", " ").split()
    assert set(template.refresh_token_scopes) <= set(requested)


@pytest.mark.parametrize("key", sorted(CATALOG))
def test_template_parameters_have_hints(key):
    for parameter in CATALOG[key].parameters:
        assert parameter.hint, f"{key}: parameter {parameter.name} has no hint"


@pytest.mark.parametrize(
    ("key", "name", "expected"),
    [
        ("google", "access_type", "offline"),
        ("google", "prompt", "consent"),
        ("atlassian", "audience", "api.atlassian.com"),
        ("atlassian", "prompt", "consent"),
        ("dropbox", "token_access_type", "offline"),
    ],
)
def test_extra_authorization_params(key, name, expected):
    assert CATALOG[key].extra_authorization_params[name] == expected


@pytest.mark.parametrize(
    ("key", "scope"), [("microsoft", "offline_access"), ("atlassian", "offline_access"), ("okta", "offline_access")]
)
def test_refresh_token_scope_listed(key, scope):
    assert scope in CATALOG[key].refresh_token_scopes


def test_slack_uses_comma_separator():
    assert CATALOG["slack"].scope_separator == ","


def test_servicenow_offers_both_grants():
    assert CATALOG["servicenow"].grant_type == GrantType.AUTHORIZATION_CODE
    assert CATALOG["servicenow_password"].grant_type == GrantType.PASSWORD


@pytest.mark.parametrize(
    ("key", "values", "field", "expected"),
    [
        (
            "gitlab",
            {"base_url": "https://git.corp.example.test/"},
            "token_url",
            "https://git.corp.example.test/oauth/token",
        ),
        (
            "microsoft",
            {"tenant": "contoso.onmicrosoft.com"},
            "authorization_url",
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize",
        ),
        (
            "servicenow",
            {"instance": "https://ACME.service-now.com/"},
            "token_url",
            "https://acme.service-now.com/oauth_token.do",
        ),
        ("zendesk", {"subdomain": "acme"}, "authorization_url", "https://acme.zendesk.com/oauth/authorizations/new"),
        (
            "keycloak",
            {"issuer": "https://sso.example.test/realms/staff"},
            "issuer",
            "https://sso.example.test/realms/staff",
        ),
    ],
)
def test_parameters_fill_urls(key, values, field, expected):
    assert CATALOG[key].render(values)[field] == expected


@pytest.mark.parametrize(
    ("key", "values"),
    [
        ("servicenow", {"instance": ""}),
        ("servicenow", {"instance": "acme.service-now.com/evil?x="}),
        ("microsoft", {"tenant": "../common"}),
        ("zendesk", {"subdomain": "acme.zendesk.com/x"}),
        ("gitlab", {"base_url": "https://gitlab.example.test/?next=1"}),
        ("okta", {"issuer": "not a url"}),
    ],
)
def test_invalid_parameters_rejected(key, values):
    with pytest.raises(ParameterError) as error:
        CATALOG[key].render(values)
    assert set(error.value.errors) == set(values)


def valid_entry(**changes) -> dict:
    entry = {
        "name": "Example",
        "description": "An example.",
        "docs": "https://docs.example.test/oauth",
        "grant_type": "authorization_code",
        "authorization_url": "https://{host}/authorize",
        "token_url": "https://{host}/token",
        "revocation_method": "none",
        "client_auth_method": "client_secret_basic",
        "use_pkce": True,
        "default_scopes": "read",
        "refresh_token_scopes": [],
        "scope_separator": " ",
        "token_response": "json",
        "parameters": [{"name": "host", "label": "Host", "kind": "host", "hint": "A host."}],
    }
    entry.update(changes)
    return {name: value for name, value in entry.items() if value is not None}


def test_valid_entry_parses():
    assert parse_template("example", valid_entry()).key == "example"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"token_url": None}, "has no token_url"),
        ({"grant_type": "implicit"}, "implicit"),
        ({"client_auth_method": "private_key_jwt"}, "private_key_jwt"),
        ({"revocation_method": "carrier_pigeon"}, "unknown revocation_method"),
        ({"revocation_method": "rfc7009"}, "revocation_url exactly when"),
        ({"scope_separator": ";"}, "space or a comma"),
        ({"token_response": "xml"}, "unknown token_response"),
        ({"authorization_url": None}, "needs an authorization_url"),
        ({"token_url": "https://{tenant}/token"}, "{tenant}, which is no parameter"),
        ({"docs": "http://docs.example.test"}, "docs must be an https URL"),
        ({"refresh_token_scopes": ["offline_access"]}, "lack the refresh token scopes"),
        ({"default_token_lifetime": -5}, "positive number of seconds"),
        ({"use_pkce": "yes"}, "use_pkce has the wrong type"),
    ],
)
def test_invalid_entry_rejected(changes, message):
    with pytest.raises(CatalogError) as error:
        parse_template("example", valid_entry(**changes))
    assert message in str(error.value)
