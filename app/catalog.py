"""The provider catalog: templates in app/catalog/providers.toml that fill in a provider.

An admin picks a template, enters its parameters (a tenant, an instance host), pastes
the client ID and secret, and gets a provider whose every field stays editable.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app import url_policy
from app.models import ClientAuthMethod, GrantType
from app.registry import ProviderInput, ValidationError
from app.revocation_adapters import REVOCATION_METHODS

CATALOG_PATH = Path(__file__).resolve().parent / "catalog" / "providers.toml"

TOKEN_RESPONSE_FORMATS = ("json", "slack_oauth_v2")
SCOPE_SEPARATORS = (" ", ",")
URL_FIELDS = ("authorization_url", "token_url", "revocation_url", "issuer")

#: Parameter kinds and the values they accept. A ``url`` is checked further by the
#: outbound URL policy when the provider is saved.
PARAMETER_PATTERNS = {
    # A host name such as acme.service-now.com: DNS labels separated by dots.
    "host": re.compile(
        r"(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    ),
    # One path or host segment such as a tenant ID, contoso.onmicrosoft.com or a subdomain.
    "segment": re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?"),
    "url": re.compile(r"https?://[^\s{}]+"),
}
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
#: Placeholders that revocation adapters fill in at request time, not the admin.
ADAPTER_PLACEHOLDERS = {"client_id", "token"}


class CatalogError(ValueError):
    """The catalog file is invalid; the message names the entry and the field."""


class ParameterError(ValueError):
    """Parameter values for a template are invalid. ``errors`` maps each parameter to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Parameter:
    name: str
    label: str
    kind: str
    hint: str = ""
    default: str | None = None
    example: str | None = None

    def clean(self, value: str | None) -> str:
        """Return the value stripped, or raise ValueError saying what the parameter accepts."""
        value = (value or "").strip()
        if self.kind == "url":
            value = value.rstrip("/")
        elif self.kind == "host":
            value = value.lower().removeprefix("https://").rstrip("/")
        if not value:
            raise ValueError(f"{self.label} is required.")
        if not PARAMETER_PATTERNS[self.kind].fullmatch(value):
            raise ValueError(f"{self.label} {value!r} is not valid. {self.hint}".strip())
        if self.kind == "url":
            parts = urlsplit(value)
            if parts.query or parts.fragment or not parts.hostname:
                raise ValueError(f"{self.label} {value!r} must be a base URL without query or fragment.")
        return value


@dataclass(frozen=True)
class Template:
    key: str
    name: str
    description: str
    docs: str
    grant_type: GrantType
    token_url: str
    client_auth_method: ClientAuthMethod
    revocation_method: str
    use_pkce: bool
    default_scopes: str
    refresh_token_scopes: tuple[str, ...]
    scope_separator: str
    token_response: str
    authorization_url: str | None = None
    revocation_url: str | None = None
    issuer: str | None = None
    extra_authorization_params: dict[str, str] = field(default_factory=dict)
    refresh_token_rotates: bool | None = None
    default_token_lifetime: int | None = None
    notes: str = ""
    parameters: tuple[Parameter, ...] = ()

    def render(self, values: dict[str, str]) -> dict[str, Any]:
        """Return provider field values with the parameters filled in.

        Raises ParameterError naming every parameter that is missing or invalid.
        """
        cleaned: dict[str, str] = {}
        errors: dict[str, str] = {}
        for parameter in self.parameters:
            try:
                cleaned[parameter.name] = parameter.clean(values.get(parameter.name))
            except ValueError as error:
                errors[parameter.name] = str(error)
        if errors:
            raise ParameterError(errors)

        fields: dict[str, Any] = {
            "grant_type": self.grant_type.value,
            "client_auth_method": self.client_auth_method.value,
            "revocation_method": self.revocation_method,
            "use_pkce": self.use_pkce,
            "default_scopes": self.default_scopes,
            "scope_separator": self.scope_separator,
            "extra_authorization_params": dict(self.extra_authorization_params),
            "refresh_token_rotates": self.refresh_token_rotates,
            "default_token_lifetime": self.default_token_lifetime,
            "catalog_key": self.key,
        }
        for name in URL_FIELDS:
            template = getattr(self, name)
            fields[name] = _fill(template, cleaned) if template else None
        return fields


def _fill(template: str, values: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        return values.get(name, match.group(0))

    return PLACEHOLDER.sub(replace, template)


def _require(entry: dict, key: str, name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in entry:
        raise CatalogError(f"catalog entry {key!r} has no {name}")
    value = entry[name]
    if not isinstance(value, kind):
        raise CatalogError(f"catalog entry {key!r}: {name} has the wrong type {type(value).__name__}")
    return value


def _parse_parameter(key: str, raw: dict) -> Parameter:
    name = _require(raw, key, "name", str)
    kind = _require(raw, key, "kind", str)
    if kind not in PARAMETER_PATTERNS:
        raise CatalogError(f"catalog entry {key!r}: parameter {name!r} has unknown kind {kind!r}")
    return Parameter(
        name=name,
        label=_require(raw, key, "label", str),
        kind=kind,
        hint=raw.get("hint", ""),
        default=raw.get("default"),
        example=raw.get("example"),
    )


def parse_template(key: str, entry: dict) -> Template:
    """Build a Template from one catalog table, or raise CatalogError saying what is wrong."""
    try:
        grant_type = GrantType(_require(entry, key, "grant_type", str))
        client_auth_method = ClientAuthMethod(_require(entry, key, "client_auth_method", str))
    except ValueError as error:
        raise CatalogError(f"catalog entry {key!r}: {error}") from None
    revocation_method = _require(entry, key, "revocation_method", str)
    if revocation_method not in REVOCATION_METHODS:
        raise CatalogError(f"catalog entry {key!r}: unknown revocation_method {revocation_method!r}")
    scope_separator = _require(entry, key, "scope_separator", str)
    if scope_separator not in SCOPE_SEPARATORS:
        raise CatalogError(f"catalog entry {key!r}: scope_separator must be a space or a comma")
    token_response = _require(entry, key, "token_response", str)
    if token_response not in TOKEN_RESPONSE_FORMATS:
        raise CatalogError(f"catalog entry {key!r}: unknown token_response {token_response!r}")

    parameters = tuple(_parse_parameter(key, raw) for raw in entry.get("parameters", []))
    extra = entry.get("extra_authorization_params", {})
    if not all(isinstance(value, str) for value in extra.values()):
        raise CatalogError(f"catalog entry {key!r}: extra_authorization_params values must be strings")
    lifetime = entry.get("default_token_lifetime")
    if lifetime is not None and (not isinstance(lifetime, int) or lifetime <= 0):
        raise CatalogError(f"catalog entry {key!r}: default_token_lifetime must be a positive number of seconds")

    template = Template(
        key=key,
        name=_require(entry, key, "name", str),
        description=_require(entry, key, "description", str),
        docs=_require(entry, key, "docs", str),
        grant_type=grant_type,
        authorization_url=entry.get("authorization_url"),
        token_url=_require(entry, key, "token_url", str),
        revocation_url=entry.get("revocation_url"),
        issuer=entry.get("issuer"),
        client_auth_method=client_auth_method,
        revocation_method=revocation_method,
        use_pkce=_require(entry, key, "use_pkce", bool),
        default_scopes=_require(entry, key, "default_scopes", str),
        refresh_token_scopes=tuple(_require(entry, key, "refresh_token_scopes", list)),
        scope_separator=scope_separator,
        token_response=token_response,
        extra_authorization_params=dict(extra),
        refresh_token_rotates=entry.get("refresh_token_rotates"),
        default_token_lifetime=lifetime,
        notes=entry.get("notes", ""),
        parameters=parameters,
    )
    _check_consistency(template)
    return template


def _check_consistency(template: Template) -> None:
    key = template.key
    if template.grant_type == GrantType.AUTHORIZATION_CODE and not template.authorization_url:
        raise CatalogError(f"catalog entry {key!r}: the authorization_code grant needs an authorization_url")
    if (template.revocation_method == "none") != (template.revocation_url is None):
        raise CatalogError(f"catalog entry {key!r}: set a revocation_url exactly when revocation_method is not none")
    if not template.docs.startswith("https://"):
        raise CatalogError(f"catalog entry {key!r}: docs must be an https URL")
    names = {parameter.name for parameter in template.parameters}
    for name in URL_FIELDS:
        value = getattr(template, name)
        for placeholder in PLACEHOLDER.findall(value or ""):
            if placeholder not in names and placeholder not in ADAPTER_PLACEHOLDERS:
                raise CatalogError(f"catalog entry {key!r}: {name} uses {{{placeholder}}}, which is no parameter")
    requested = set(template.default_scopes.replace(",", " ").split())
    missing = [scope for scope in template.refresh_token_scopes if scope not in requested]
    if missing:
        raise CatalogError(f"catalog entry {key!r}: default_scopes lack the refresh token scopes {missing}")


def load_catalog(path: Path = CATALOG_PATH) -> dict[str, Template]:
    """Read and validate the catalog file; raise CatalogError on the first invalid entry."""
    with path.open("rb") as file:
        data = tomllib.load(file)
    providers = data.get("providers")
    if not isinstance(providers, dict) or not providers:
        raise CatalogError(f"{path} has no [providers.<key>] tables")
    return {key: parse_template(key, entry) for key, entry in providers.items()}


@functools.cache
def catalog() -> dict[str, Template]:
    """Return the catalog, loaded once per process."""
    return load_catalog()


def templates() -> list[Template]:
    return sorted(catalog().values(), key=lambda template: template.name.lower())


def find_template(key: str) -> Template | None:
    return catalog().get(key)


def provider_input(
    template: Template, name: str, client_id: str, client_secret: str | None, parameters: dict[str, str]
) -> ProviderInput:
    """Return the provider values of ``template`` with its parameters filled in.

    Raises registry.ValidationError with one entry per invalid parameter, named
    ``parameter_<name>`` as the catalog form names its fields.
    """
    try:
        fields = template.render(parameters)
    except ParameterError as error:
        raise ValidationError({f"parameter_{name}": [message] for name, message in error.errors.items()}) from None

    # A URL parameter breaks the outbound URL policy in every URL built from it, so the
    # error is shown once, at the parameter, rather than at fields the form does not show.
    errors = {}
    for parameter in template.parameters:
        if parameter.kind != "url":
            continue
        try:
            url_policy.check_url(parameter.clean(parameters.get(parameter.name)))
        except url_policy.URLPolicyError as error:
            errors[f"parameter_{parameter.name}"] = [f"{parameter.label} {error}."]
    if errors:
        raise ValidationError(errors)
    return ProviderInput(name=name, client_id=client_id, client_secret=client_secret, **fields)
