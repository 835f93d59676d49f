"""The outbound URL policy for admin-entered URLs, and its use when saving providers."""

import ipaddress

import pytest

from app import url_policy
from app.config import ConfigError, load_settings
from app.registry import ProviderInput, ValidationError, save_provider, validate_url
from app.url_policy import URLPolicy, URLPolicyError, check_url

DEVELOPMENT = URLPolicy(allow_http_loopback=True, allow_private_networks=True)
PRODUCTION = URLPolicy(allow_http_loopback=False, allow_private_networks=True)
PUBLIC_ONLY = URLPolicy(allow_http_loopback=False, allow_private_networks=False)


@pytest.fixture
def resolver(monkeypatch):
    """Answer host name lookups from a table; unknown names fail as DNS would."""
    table: dict[str, list[str]] = {
        # 11.0.0.1 is a public address; no test connects to it.
        "api.example.test": ["11.0.0.1"],
        "intranet.example.test": ["10.20.30.40"],
        "rebind.example.test": ["203.0.113.8", "169.254.169.254"],
        "v6meta.example.test": ["fd00:ec2::254"],
    }
    lookups: list[str] = []

    def resolve(hostname: str):
        lookups.append(hostname)
        if hostname not in table:
            raise OSError(f"no address for {hostname}")
        return [ipaddress.ip_address(address) for address in table[hostname]]

    monkeypatch.setattr(url_policy, "resolve_host", resolve)
    return lookups


@pytest.mark.parametrize(
    ("url", "policy"),
    [
        ("https://api.example.test/token", PRODUCTION),
        ("https://203.0.113.7/token", PRODUCTION),
        ("https://intranet.example.test/oauth_token.do", PRODUCTION),
        ("https://10.1.2.3/token", PRODUCTION),
        ("https://127.0.0.1:8443/token", PRODUCTION),
        ("http://127.0.0.1:9000/token", DEVELOPMENT),
        ("http://[::1]:9000/token", DEVELOPMENT),
        ("http://localhost:9000/token", DEVELOPMENT),
        ("https://api.example.test/token", PUBLIC_ONLY),
    ],
)
def test_allowed_urls(resolver, url, policy):
    check_url(url, policy)


@pytest.mark.parametrize(
    ("url", "policy", "message"),
    [
        ("http://api.example.test/token", DEVELOPMENT, "must use https"),
        ("http://10.1.2.3/token", DEVELOPMENT, "must use https"),
        ("http://127.0.0.1:9000/token", PRODUCTION, "PERSONAL_AUTH_ALLOW_HTTP_LOOPBACK=true"),
        ("ftp://api.example.test/token", DEVELOPMENT, "must use https, not ftp"),
        ("https://169.254.169.254/latest/meta-data", DEVELOPMENT, "cloud metadata"),
        ("https://169.254.10.1/token", DEVELOPMENT, "link-local"),
        ("https://[fe80::1]/token", DEVELOPMENT, "link-local"),
        ("https://[fd00:ec2::254]/token", DEVELOPMENT, "cloud metadata"),
        ("https://[::ffff:169.254.169.254]/token", DEVELOPMENT, "cloud metadata"),
        ("https://metadata.google.internal/computeMetadata/v1", DEVELOPMENT, "cloud metadata"),
        ("https://0.0.0.0/token", DEVELOPMENT, "single host"),
        ("https://2852039166/token", DEVELOPMENT, "cloud metadata"),
        ("https://0xA9FEA9FE/token", DEVELOPMENT, "cloud metadata"),
        ("https://0251.0376.0251.0376/token", DEVELOPMENT, "cloud metadata"),
        ("https://169.254.43518/token", DEVELOPMENT, "cloud metadata"),
        ("http://2130706433/token", PRODUCTION, "PERSONAL_AUTH_ALLOW_HTTP_LOOPBACK=true"),
        ("https://rebind.example.test/token", DEVELOPMENT, "cloud metadata"),
        ("https://v6meta.example.test/token", DEVELOPMENT, "cloud metadata"),
        ("https://10.1.2.3/token", PUBLIC_ONLY, "PERSONAL_AUTH_ALLOW_PRIVATE_NETWORKS is false"),
        ("https://intranet.example.test/token", PUBLIC_ONLY, "private or loopback"),
        ("https://127.0.0.1/token", PUBLIC_ONLY, "private or loopback"),
        ("https://unknown.example.invalid/token", DEVELOPMENT, "does not resolve"),
    ],
)
def test_rejected_urls(resolver, url, policy, message):
    with pytest.raises(URLPolicyError) as error:
        check_url(url, policy)
    assert message in str(error.value)


def test_only_given_host_is_resolved(resolver):
    check_url("https://api.example.test:8443/path?next=other.example.test", PRODUCTION)
    assert resolver == ["api.example.test"]


def test_literal_address_is_not_resolved(resolver):
    check_url("https://203.0.113.7/token", PRODUCTION)
    assert resolver == []


def test_request_check_ignores_unresolved_host(resolver):
    url_policy.check_request_url("https://gone.example.invalid/token", PRODUCTION)
    assert resolver == ["gone.example.invalid"]


def test_request_check_rejects_metadata_address(resolver):
    with pytest.raises(URLPolicyError):
        url_policy.check_request_url("https://rebind.example.test/token", PRODUCTION)


@pytest.mark.parametrize(
    ("env", "expected"),
    [("production", False), ("development", True), ("testing", True)],
)
def test_http_loopback_default_follows_env(env, expected):
    assert load_settings({"PERSONAL_AUTH_ENV": env}, None)["ALLOW_HTTP_LOOPBACK"] is expected


def test_http_loopback_setting_overrides_env():
    settings = load_settings({"PERSONAL_AUTH_ENV": "development", "PERSONAL_AUTH_ALLOW_HTTP_LOOPBACK": "false"}, None)
    assert settings["ALLOW_HTTP_LOOPBACK"] is False


def test_invalid_boolean_setting_rejected():
    with pytest.raises(ConfigError) as error:
        load_settings({"PERSONAL_AUTH_ALLOW_PRIVATE_NETWORKS": "maybe"}, None)
    assert "PERSONAL_AUTH_ALLOW_PRIVATE_NETWORKS='maybe' is invalid" in str(error.value)


def test_validate_url_names_field_rule(app, resolver):
    with pytest.raises(ValueError) as error:
        validate_url("http://api.example.test/token", required=True)
    assert str(error.value).startswith("must use https")


def test_save_provider_reports_rule(app, resolver):
    data = ProviderInput(
        name="Metadata",
        client_id="c",
        client_secret="s",
        token_url="https://169.254.169.254/token",
        authorization_url="https://api.example.test/authorize",
    )
    with pytest.raises(ValidationError) as error:
        save_provider(data)
    assert error.value.errors["token_url"] == ["Token URL must not point to a cloud metadata address: 169.254.169.254."]


def test_save_provider_reports_unresolved_host(app, resolver):
    data = ProviderInput(
        name="Typo",
        client_id="c",
        client_secret="s",
        token_url="https://typo.example.invalid/token",
        authorization_url="https://api.example.test/authorize",
    )
    with pytest.raises(ValidationError) as error:
        save_provider(data)
    assert "does not resolve: typo.example.invalid" in error.value.errors["token_url"][0]


def test_private_network_setting_applies_on_save(app, resolver):
    app.config["ALLOW_PRIVATE_NETWORKS"] = False
    data = ProviderInput(
        name="Intranet",
        client_id="c",
        client_secret="s",
        token_url="https://intranet.example.test/token",
        authorization_url="https://api.example.test/authorize",
    )
    with pytest.raises(ValidationError) as error:
        save_provider(data)
    assert "PERSONAL_AUTH_ALLOW_PRIVATE_NETWORKS is false" in error.value.errors["token_url"][0]


def test_integration_api_base_url_checked(app, resolver, make_provider):
    from app.registry import IntegrationInput, save_integration

    provider = make_provider(
        "Example", token_url="https://api.example.test/token", authorization_url="https://api.example.test/authorize"
    )
    with pytest.raises(ValidationError) as error:
        save_integration(
            IntegrationInput(name="Meta", provider_id=provider.id, api_base_url="http://api.example.test/v1")
        )
    assert error.value.errors["api_base_url"][0].startswith("API base URL must use https")
