"""Registering OAuth providers and the integrations that use them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import func, select

from app import audit, url_policy
from app.extensions import db
from app.models import ClientAuthMethod, Credential, GrantType, Integration, IntegrationType, Provider

log = logging.getLogger(__name__)

#: Length of the URL and scope columns of providers and integrations.
MAX_URL_LENGTH = 2000
MAX_SCOPES_LENGTH = 2000
MAX_CLIENT_ID_LENGTH = 500


class ValidationError(ValueError):
    """Invalid input. ``errors`` maps each field name to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items()))
        self.errors = errors


def validate_url(value: str | None, required: bool, resolve: bool = True) -> str | None:
    """Return the URL stripped, or raise ValueError saying what is wrong with it.

    The URL must also pass the outbound URL policy (app.url_policy); with ``resolve``,
    its host name must resolve.
    """
    value = (value or "").strip()
    if not value:
        if required:
            raise ValueError("is required")
        return None
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"is too long: use at most {MAX_URL_LENGTH} characters")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    if parts.username or parts.password:
        raise ValueError("must not contain a username or password")
    if parts.fragment:
        raise ValueError("must not contain a #fragment")
    url_policy.check_url(value, resolve=resolve)
    return value


@dataclass
class ProviderInput:
    name: str
    client_id: str
    token_url: str
    grant_type: str = GrantType.AUTHORIZATION_CODE.value
    authorization_url: str | None = None
    revocation_url: str | None = None
    default_scopes: str = ""
    use_pkce: bool = True
    client_auth_method: str = ClientAuthMethod.CLIENT_SECRET_BASIC.value
    #: None keeps the stored secret when editing; a new provider needs one.
    client_secret: str | None = None
    issuer: str | None = None
    extra_authorization_params: dict[str, str] = field(default_factory=dict)
    scope_separator: str = " "
    default_token_lifetime: int | None = None
    refresh_token_rotates: bool | None = None
    revocation_method: str = "rfc7009"
    issuer_parameter_required: bool = False
    #: Key of the catalog template; None keeps the stored key when editing.
    catalog_key: str | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)


def _validate_provider(data: ProviderInput, existing: Provider | None) -> dict:
    data.errors = {}
    values: dict = {}
    name = data.name.strip()
    if not name:
        data.error("name", "Name is required.")
    elif len(name) > 100:
        data.error("name", "Name is too long: use at most 100 characters.")
    else:
        duplicate = db.session.scalar(select(Provider).where(func.lower(Provider.name) == name.lower()))
        if duplicate is not None and duplicate is not existing:
            data.error("name", f"A provider named {name!r} already exists.")
    values["name"] = name

    client_id = data.client_id.strip()
    if not client_id:
        data.error("client_id", "Client ID is required.")
    elif len(client_id) > MAX_CLIENT_ID_LENGTH:
        data.error("client_id", f"Client ID is too long: use at most {MAX_CLIENT_ID_LENGTH} characters.")
    values["client_id"] = client_id

    try:
        values["grant_type"] = GrantType(data.grant_type)
    except ValueError:
        data.error(
            "grant_type", f"Grant type {data.grant_type!r} is not supported: use authorization_code or password."
        )
    try:
        values["client_auth_method"] = ClientAuthMethod(data.client_auth_method)
    except ValueError:
        data.error(
            "client_auth_method",
            f"Client authentication {data.client_auth_method!r} is not supported: "
            "use client_secret_basic or client_secret_post.",
        )

    needs_authorization_url = values.get("grant_type") == GrantType.AUTHORIZATION_CODE
    for name_, label, required in (
        ("authorization_url", "Authorization URL", needs_authorization_url),
        ("token_url", "Token URL", True),
        ("revocation_url", "Revocation URL", False),
    ):
        try:
            values[name_] = validate_url(getattr(data, name_), required)
        except ValueError as error:
            if str(error) == "is required" and name_ == "authorization_url":
                data.error(name_, "Authorization URL is required for the authorization_code grant.")
            else:
                data.error(name_, f"{label} {error}.")

    values["default_scopes"] = " ".join(data.default_scopes.split())
    if len(values["default_scopes"]) > MAX_SCOPES_LENGTH:
        data.error("default_scopes", f"Default scopes are too long: use at most {MAX_SCOPES_LENGTH} characters.")
    values["use_pkce"] = bool(data.use_pkce)
    _validate_provider_behaviour(data, values)

    secret = data.client_secret
    if existing is None and not secret:
        data.error("client_secret", "Client secret is required.")
    if data.errors:
        raise ValidationError(data.errors)
    return values


#: Authorization request parameters that the app sets itself, so a provider's extra
#: parameters must not replace them.
RESERVED_AUTHORIZATION_PARAMS = frozenset(
    {"response_type", "client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method"}
)
#: Maximum default token lifetime accepted, in seconds: one year.
MAX_TOKEN_LIFETIME = 365 * 24 * 3600


def _validate_provider_behaviour(data: ProviderInput, values: dict) -> None:
    """Check the issuer, extra parameters, scope separator, token lifetime and revocation method."""
    from app.revocation_adapters import REVOCATION_METHODS

    try:
        values["issuer"] = validate_url(data.issuer, required=False)
    except ValueError as error:
        data.error("issuer", f"Issuer {error}.")
    values["issuer_parameter_required"] = bool(data.issuer_parameter_required)
    if values["issuer_parameter_required"] and not data.issuer:
        data.error("issuer", "Issuer is required when the authorization response must carry an iss parameter.")

    params = {}
    for name, value in (data.extra_authorization_params or {}).items():
        name = str(name).strip()
        if not name or not all(character.isalnum() or character in "_.-" for character in name):
            data.error("extra_authorization_params", f"Parameter name {name!r} is invalid: use letters, digits, _ . -")
        elif name in RESERVED_AUTHORIZATION_PARAMS:
            data.error("extra_authorization_params", f"Parameter {name} is set by the app and cannot be changed here.")
        else:
            params[name] = str(value).strip()
    values["extra_authorization_params"] = params

    if data.scope_separator not in (" ", ","):
        data.error(
            "scope_separator", f"Scope separator {data.scope_separator!r} is not supported: use a space or a comma."
        )
    values["scope_separator"] = data.scope_separator

    lifetime = data.default_token_lifetime
    if lifetime is not None and not 0 < lifetime <= MAX_TOKEN_LIFETIME:
        data.error(
            "default_token_lifetime",
            f"Default token lifetime must be from 1 to {MAX_TOKEN_LIFETIME} seconds, or empty if tokens do not expire.",
        )
    values["default_token_lifetime"] = lifetime
    values["refresh_token_rotates"] = data.refresh_token_rotates

    method = data.revocation_method
    if method not in REVOCATION_METHODS:
        known = ", ".join(REVOCATION_METHODS)
        data.error("revocation_method", f"Revocation method {method!r} is unknown: use one of {known}.")
    elif method not in ("none", "rfc7009") and not data.revocation_url:
        data.error("revocation_url", f"Revocation URL is required for the revocation method {method}.")
    values["revocation_method"] = method
    if data.catalog_key is not None:
        values["catalog_key"] = data.catalog_key or None


def save_provider(
    data: ProviderInput, existing: Provider | None = None, *, actor_user_id: int | None = None
) -> Provider:
    """Create or update a provider; an empty client secret keeps the stored one.

    ``actor_user_id`` is the admin who made the change, for the audit trail; None means the system.
    """
    values = _validate_provider(data, existing)
    provider = existing or Provider()
    changed = sorted(name for name, value in values.items() if existing is None or getattr(provider, name) != value)
    for name, value in values.items():
        setattr(provider, name, value)
    if existing is None:
        db.session.add(provider)
    db.session.flush()
    if data.client_secret:
        provider.set_client_secret(data.client_secret)
        changed.append("client_secret")
    audit.record(
        "provider.update" if existing else "provider.create",
        actor_user_id=actor_user_id,
        provider_id=provider.id,
        detail=provider.name,
        changed=changed,
        commit=False,
    )
    db.session.commit()
    log.info("Provider %s: provider %s (%s)", "updated" if existing else "created", provider.id, provider.name)
    return provider


@dataclass
class IntegrationInput:
    name: str
    provider_id: int | None
    description: str = ""
    scopes: str | None = None
    integration_type: str = IntegrationType.PERSONAL.value
    api_base_url: str | None = None
    is_enabled: bool = True
    errors: dict[str, list[str]] = field(default_factory=dict)

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)


def save_integration(
    data: IntegrationInput, existing: Integration | None = None, *, actor_user_id: int | None = None
) -> Integration:
    """Create or update an integration after validating every field.

    ``actor_user_id`` is the admin who made the change, for the audit trail; None means the system.
    """
    data.errors = {}
    name = data.name.strip()
    if not name:
        data.error("name", "Name is required.")
    elif len(name) > 100:
        data.error("name", "Name is too long: use at most 100 characters.")
    elif name.isdecimal():
        # The token API and API key scopes accept an integration's id or its name.
        data.error("name", f"Name {name!r} is only digits and would read as an id: add a letter.")
    else:
        duplicate = db.session.scalar(select(Integration).where(func.lower(Integration.name) == name.lower()))
        if duplicate is not None and duplicate is not existing:
            data.error("name", f"An integration named {name!r} already exists.")

    provider = db.session.get(Provider, data.provider_id) if data.provider_id else None
    if provider is None:
        data.error("provider_id", "Choose a provider.")
    try:
        integration_type = IntegrationType(data.integration_type)
    except ValueError:
        data.error("integration_type", f"Type {data.integration_type!r} is not supported: use personal or system.")
    try:
        api_base_url = validate_url(data.api_base_url, required=False)
    except ValueError as error:
        data.error("api_base_url", f"API base URL {error}.")
    scopes = " ".join((data.scopes or "").split())
    if len(scopes) > MAX_SCOPES_LENGTH:
        data.error("scopes", f"Scopes are too long: use at most {MAX_SCOPES_LENGTH} characters.")
    if data.errors:
        raise ValidationError(data.errors)

    integration = existing or Integration()
    integration.name = name
    integration.description = data.description.strip()
    integration.provider = provider
    integration.scopes = scopes or None
    integration.integration_type = integration_type
    integration.api_base_url = api_base_url
    integration.is_enabled = data.is_enabled
    if existing is None:
        db.session.add(integration)
    db.session.flush()
    audit.record(
        "integration.update" if existing else "integration.create",
        actor_user_id=actor_user_id,
        integration_id=integration.id,
        provider_id=integration.provider_id,
        detail=integration.name,
        enabled=integration.is_enabled,
        commit=False,
    )
    db.session.commit()
    log.info(
        "Integration %s: integration %s (%s), provider %s",
        "updated" if existing else "created",
        integration.id,
        integration.name,
        provider.id,
    )
    return integration


class InUseError(ValueError):
    """A provider or integration cannot be deleted while other rows still use it."""


def list_providers() -> list[Provider]:
    return list(db.session.scalars(select(Provider).order_by(func.lower(Provider.name))))


def list_integrations() -> list[Integration]:
    return list(db.session.scalars(select(Integration).order_by(func.lower(Integration.name))))


def find_provider_by_name(name: str) -> Provider | None:
    """Return the provider named ``name``, ignoring case as the uniqueness check does."""
    return db.session.scalar(select(Provider).where(func.lower(Provider.name) == name.strip().lower()))


def provider_delete_blocker(provider: Provider) -> str | None:
    """Return why ``provider`` cannot be deleted, or None when nothing uses it."""
    names = sorted(integration.name for integration in provider.integrations)
    if not names:
        return None
    return (
        f"Provider {provider.name!r} is used by the integrations {', '.join(names)}. "
        "Delete those integrations or move them to another provider first."
    )


def delete_provider(provider: Provider, *, actor_user_id: int | None = None) -> None:
    """Delete ``provider``, or raise InUseError while an integration uses it."""
    blocker = provider_delete_blocker(provider)
    if blocker:
        raise InUseError(blocker)

    provider_id, name = provider.id, provider.name
    db.session.delete(provider)
    audit.record("provider.delete", actor_user_id=actor_user_id, provider_id=provider_id, detail=name, commit=False)
    db.session.commit()
    log.info("Provider deleted: provider %s (%s)", provider_id, name)


def integration_delete_blocker(integration: Integration) -> str | None:
    """Return why ``integration`` cannot be deleted, or None when no user has tokens for it.

    Deleting the row would drop the stored tokens without revoking them, so they would
    stay valid at the provider until they expire.
    """
    count = db.session.scalar(
        select(func.count()).select_from(Credential).where(Credential.integration_id == integration.id)
    )
    if not count:
        return None
    users = "1 user" if count == 1 else f"{count} users"
    return (
        f"Integration {integration.name!r} still stores tokens of {users}. Deleting it would leave those "
        f"tokens valid at {integration.provider.name}. Ask the users to revoke it on their dashboard first, "
        "and keep it enabled until they have, because a disabled integration is hidden from the dashboard."
    )


def delete_integration(integration: Integration, *, actor_user_id: int | None = None) -> None:
    """Delete ``integration``, or raise InUseError while a user has tokens for it."""
    blocker = integration_delete_blocker(integration)
    if blocker:
        raise InUseError(blocker)

    integration_id, name = integration.id, integration.name
    provider_id = integration.provider_id
    db.session.delete(integration)
    audit.record(
        "integration.delete",
        actor_user_id=actor_user_id,
        integration_id=integration_id,
        provider_id=provider_id,
        detail=name,
        commit=False,
    )
    db.session.commit()
    log.info("Integration deleted: integration %s (%s)", integration_id, name)
