"""Configuration read from ``PERSONAL_AUTH_*`` environment variables."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.crypto import KeyConfigError, Keyring, generate_key, generate_key_id

ENV_PREFIX = "PERSONAL_AUTH_"

#: Settings and their defaults. Every key can be set as ``PERSONAL_AUTH_<KEY>``.
DEFAULTS: dict[str, Any] = {
    #: ``production`` (the default) refuses to start without a secret key and encryption
    #: keys. ``development`` generates both once and keeps them in the instance folder.
    "ENV": "production",
    #: SQLAlchemy database URL. Default: SQLite file ``instance/personal_auth.db``.
    "DATABASE_URL": None,
    #: Key that signs the session cookie and CSRF tokens.
    "SECRET_KEY": None,
    #: Encryption keys as ``ID:BASE64KEY`` entries separated by commas, newest first.
    #: Create one with ``flask keys generate``.
    "ENCRYPTION_KEYS": None,
    #: Public URL of the app, without a trailing slash. The OAuth redirect URI is
    #: ``<BASE_URL>/oauth/callback``.
    "BASE_URL": "http://127.0.0.1:5000",
    #: Seconds an authorization request (state and PKCE verifier) stays valid.
    "AUTHORIZATION_REQUEST_TTL": 600,
    #: Seconds a login session lasts from sign-in.
    "LOGIN_SESSION_TTL": 12 * 3600,
    #: Connect and read timeouts, in seconds, of every call to a provider.
    "HTTP_CONNECT_TIMEOUT": 5.0,
    "HTTP_READ_TIMEOUT": 15.0,
    #: Minutes before expiry from which a card shows "expiring soon".
    "EXPIRING_SOON_MINUTES": 60,
    #: Seconds before an access token expires from which it is refreshed, on demand
    #: and by ``flask tokens refresh-due``.
    "REFRESH_MARGIN": 300,
    #: Seconds after a refresh during which the token is not refreshed again, whatever
    #: its stated expiry, so that a provider that issues short-lived tokens causes no loop.
    "REFRESH_MIN_INTERVAL": 60,
    #: Attempts at the token endpoint within one refresh when the provider is unreachable
    #: or responds with HTTP 5xx; the pause between them starts at REFRESH_RETRY_DELAY seconds
    #: and doubles.
    "REFRESH_ATTEMPTS": 3,
    "REFRESH_RETRY_DELAY": 0.5,
    #: Seconds the background job waits before it retries a failed refresh or revocation
    #: of one credential; the wait doubles with every failure up to RETRY_BACKOFF_MAX.
    "RETRY_BACKOFF_BASE": 60,
    "RETRY_BACKOFF_MAX": 6 * 3600,
    #: Log level of the app's own loggers.
    "LOG_LEVEL": "INFO",
    #: Sign-in attempts allowed per client address and username, in the notation of the
    #: ``limits`` package, for example ``10/minute``.
    "LOGIN_RATE_LIMIT": "10/minute",
    #: Where sign-in attempts are counted: ``memory://`` (per process) or a shared store
    #: such as ``redis://127.0.0.1:6379`` when several processes serve the app.
    "RATE_LIMIT_STORAGE_URI": "memory://",
    #: Whether admins may enter plain ``http`` URLs for loopback hosts (127.0.0.1, ::1,
    #: localhost). Unset means true in development and testing, false in production.
    "ALLOW_HTTP_LOOPBACK": None,
    #: Whether provider and API URLs may point to private, loopback or other non-public
    #: addresses, such as an on-premises ServiceNow or Keycloak.
    "ALLOW_PRIVATE_NETWORKS": True,
    #: Issuer URL of the OpenID Connect identity provider for single sign-on, such as
    #: ``https://login.example.com/realms/staff``. Its discovery document is read from
    #: ``<SSO_ISSUER>/.well-known/openid-configuration``. Unset turns single sign-on off.
    "SSO_ISSUER": None,
    #: Client ID and client secret of the app at the identity provider. The redirect URI
    #: to register there is ``<BASE_URL>/auth/sso/callback``.
    "SSO_CLIENT_ID": None,
    "SSO_CLIENT_SECRET": None,
    #: Scopes requested at sign-in, separated by spaces; ``openid`` is required.
    "SSO_SCOPES": "openid profile email groups",
    #: ID token or userinfo claim that lists the user's groups.
    "SSO_GROUPS_CLAIM": "groups",
    #: Roles granted by identity provider groups, as ``group=role`` pairs separated by
    #: commas, for example ``personal-auth-users=personal_auth_user,personal-auth-admins=admin``.
    #: The roles named here follow the claim at every sign-in. Empty means that roles are
    #: set by admins only, and a new single sign-on user starts with personal_auth_user.
    "SSO_ROLE_MAP": "",
    #: Whether the first single sign-on of an unknown user creates their account; when
    #: false, an admin must have created it before.
    "SSO_AUTO_CREATE_USERS": True,
    #: Name of the identity provider on the sign-in button: "Sign in with <SSO_NAME>".
    "SSO_NAME": "company account",
}

INTEGER_KEYS = {"AUTHORIZATION_REQUEST_TTL", "LOGIN_SESSION_TTL", "EXPIRING_SOON_MINUTES"}
INTEGER_KEYS |= {"REFRESH_MARGIN", "REFRESH_MIN_INTERVAL", "REFRESH_ATTEMPTS"}
INTEGER_KEYS |= {"RETRY_BACKOFF_BASE", "RETRY_BACKOFF_MAX"}
FLOAT_KEYS = {"HTTP_CONNECT_TIMEOUT", "HTTP_READ_TIMEOUT", "REFRESH_RETRY_DELAY"}
BOOLEAN_KEYS = {"ALLOW_HTTP_LOOPBACK", "ALLOW_PRIVATE_NETWORKS"}
BOOLEAN_KEYS |= {"SSO_AUTO_CREATE_USERS"}
BOOLEAN_VALUES = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class ConfigError(RuntimeError):
    """The configuration cannot run the app; the message names the variable to set."""


def load_settings(environ: dict[str, str] | os._Environ, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Merge defaults, ``PERSONAL_AUTH_*`` variables and explicit overrides."""
    settings = dict(DEFAULTS)
    for key in DEFAULTS:
        value = environ.get(ENV_PREFIX + key)
        if value is None or value == "":
            continue
        settings[key] = _convert(key, value)
    if overrides:
        settings.update(overrides)
    if settings["ALLOW_HTTP_LOOPBACK"] is None:
        settings["ALLOW_HTTP_LOOPBACK"] = settings["ENV"] in ("development", "testing")
    return settings


def _convert(key: str, value: str) -> Any:
    try:
        if key in INTEGER_KEYS:
            return int(value)
        if key in FLOAT_KEYS:
            return float(value)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{key}={value!r} is not a number") from None
    if key in BOOLEAN_KEYS:
        if value.strip().lower() not in BOOLEAN_VALUES:
            raise ConfigError(f"{ENV_PREFIX}{key}={value!r} is invalid: use true or false")
        return BOOLEAN_VALUES[value.strip().lower()]
    return value


def resolve_secrets(settings: dict[str, Any], instance_path: Path) -> None:
    """Fill in the secret key and encryption keys, or raise ConfigError in production.

    In development the generated values are kept in ``instance/dev-secrets.json`` so that
    tokens stored by one run still decrypt in the next.
    """
    env = settings["ENV"]
    if env not in ("production", "development", "testing"):
        raise ConfigError(f"{ENV_PREFIX}ENV={env!r} is invalid: use production, development or testing")

    missing = [key for key in ("SECRET_KEY", "ENCRYPTION_KEYS") if not settings.get(key)]
    if missing and env == "production":
        names = " and ".join(ENV_PREFIX + key for key in missing)
        raise ConfigError(
            f"{names} must be set in production. Generate values with "
            "`flask keys generate`, or set PERSONAL_AUTH_ENV=development for a local trial."
        )
    if missing:
        generated = _development_secrets(instance_path)
        for key in missing:
            settings[key] = generated[key]

    if len(settings["SECRET_KEY"]) < 32 and env == "production":
        raise ConfigError(f"{ENV_PREFIX}SECRET_KEY is too short: use at least 32 random characters")
    try:
        settings["KEYRING"] = Keyring.parse(settings["ENCRYPTION_KEYS"])
    except KeyConfigError as error:
        raise ConfigError(f"{ENV_PREFIX}ENCRYPTION_KEYS is invalid: {error}") from None

    base_url = settings["BASE_URL"].rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        raise ConfigError(
            f"{ENV_PREFIX}BASE_URL={settings['BASE_URL']!r} is invalid: "
            "give scheme and host only, for example https://auth.example.com"
        )
    settings["BASE_URL"] = base_url


def _development_secrets(instance_path: Path) -> dict[str, str]:
    path = instance_path / "dev-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ENCRYPTION_KEYS": f"{generate_key_id()}:{generate_key()}",
    }
    instance_path.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(values, file)
    return values
