"""Reading an authorization server's metadata to fill in a provider.

Two documents describe a server: OpenID Connect discovery at
``<issuer>/.well-known/openid-configuration`` and OAuth 2.0 authorization server
metadata (RFC 8414) at ``/.well-known/oauth-authorization-server`` with the issuer's
path appended after it. Either must name exactly the issuer that was entered, so a
document cannot send the app to another server's endpoints.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import requests
from flask import current_app

from app import url_policy
from app.models import ClientAuthMethod, GrantType
from app.registry import ProviderInput

log = logging.getLogger(__name__)

#: Largest metadata document read, in bytes.
MAX_DOCUMENT_BYTES = 256 * 1024


class DiscoveryError(Exception):
    """Discovery failed; the message names the URL, what was wrong and what to do."""


@dataclass(frozen=True)
class ServerMetadata:
    """The parts of a metadata document that a provider uses."""

    issuer: str
    source_url: str
    authorization_endpoint: str | None
    token_endpoint: str | None
    revocation_endpoint: str | None
    code_challenge_methods: list[str] = field(default_factory=list)
    #: None when the document does not list them; RFC 8414 then means client_secret_basic.
    token_endpoint_auth_methods: list[str] | None = None
    grant_types: list[str] | None = None
    issuer_parameter_supported: bool = False

    @property
    def supports_pkce(self) -> bool:
        return "S256" in self.code_challenge_methods

    def client_auth_method(self) -> ClientAuthMethod:
        """Choose client_secret_basic when the server takes it, else client_secret_post."""
        methods = self.token_endpoint_auth_methods
        if methods is None or ClientAuthMethod.CLIENT_SECRET_BASIC.value in methods:
            return ClientAuthMethod.CLIENT_SECRET_BASIC
        if ClientAuthMethod.CLIENT_SECRET_POST.value in methods:
            return ClientAuthMethod.CLIENT_SECRET_POST
        raise DiscoveryError(
            f"The server at {self.issuer} accepts none of the client authentication methods this app "
            f"supports (client_secret_basic, client_secret_post); it lists {', '.join(methods) or 'none'}."
        )

    def grant_type(self) -> GrantType:
        grants = self.grant_types or ["authorization_code"]
        if self.authorization_endpoint and GrantType.AUTHORIZATION_CODE.value in grants:
            return GrantType.AUTHORIZATION_CODE
        if GrantType.PASSWORD.value in grants:
            return GrantType.PASSWORD
        raise DiscoveryError(
            f"The metadata of {self.issuer} offers neither the authorization_code grant with an "
            "authorization endpoint nor the password grant."
        )


def metadata_urls(issuer: str) -> list[str]:
    """Return the metadata URLs to try for ``issuer``, OpenID Connect discovery first.

    OpenID Connect appends ``/.well-known/openid-configuration`` to the issuer. RFC 8414
    section 3.1 inserts ``/.well-known/oauth-authorization-server`` between the host and
    the issuer's path, so ``https://a.example/tenant`` gives
    ``https://a.example/.well-known/oauth-authorization-server/tenant``.
    """
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return [
        urlunsplit((parts.scheme, parts.netloc, f"{path}/.well-known/openid-configuration", "", "")),
        urlunsplit((parts.scheme, parts.netloc, f"/.well-known/oauth-authorization-server{path}", "", "")),
    ]


def _string_list(document: dict, name: str) -> list[str] | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DiscoveryError(f"The metadata field {name} is not a list of strings.")
    return value


def _optional_url(document: dict, name: str) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DiscoveryError(f"The metadata field {name} is not a string.")
    return value


def parse_metadata(document: object, source_url: str, expected_issuer: str) -> ServerMetadata:
    """Check a metadata document against the issuer that was entered and read its fields."""
    if not isinstance(document, dict):
        raise DiscoveryError(f"The document at {source_url} is not a JSON object.")
    issuer = document.get("issuer")
    if issuer != expected_issuer:
        raise DiscoveryError(
            f"The metadata at {source_url} names the issuer {issuer!r}, but you entered {expected_issuer!r}. "
            "They must be identical. Enter the issuer exactly as the document states it if you trust that server."
        )
    supported = document.get("authorization_response_iss_parameter_supported", False)
    return ServerMetadata(
        issuer=issuer,
        source_url=source_url,
        authorization_endpoint=_optional_url(document, "authorization_endpoint"),
        token_endpoint=_optional_url(document, "token_endpoint"),
        revocation_endpoint=_optional_url(document, "revocation_endpoint"),
        code_challenge_methods=_string_list(document, "code_challenge_methods_supported") or [],
        token_endpoint_auth_methods=_string_list(document, "token_endpoint_auth_methods_supported"),
        grant_types=_string_list(document, "grant_types_supported"),
        issuer_parameter_supported=supported is True,
    )


def _get_document(url: str) -> object | None:
    """GET one metadata URL; return None on 404 so the next URL is tried."""
    try:
        url_policy.check_request_url(url)
    except url_policy.URLPolicyError as error:
        raise DiscoveryError(f"The metadata URL {url} {error}.") from None
    config = current_app.config
    try:
        # Redirects are not followed, so every URL fetched has passed the URL policy.
        response = requests.get(
            url,
            headers={"Accept": "application/json"},
            timeout=(config["HTTP_CONNECT_TIMEOUT"], config["HTTP_READ_TIMEOUT"]),
            allow_redirects=False,
            stream=True,
        )
    except requests.Timeout:
        raise DiscoveryError(f"{url} did not respond in time. Check the issuer URL and try again.") from None
    except requests.RequestException as error:
        log.info("Metadata request failed: %s (%s)", url, type(error).__name__)
        raise DiscoveryError(f"{url} could not be reached. Check the issuer URL and the network.") from None

    with response:
        if response.status_code == 404:
            return None
        if response.is_redirect:
            location = response.headers.get("Location", "")
            raise DiscoveryError(
                f"{url} redirects to {location}. Redirects are not followed: enter the issuer the "
                "server uses in its metadata."
            )
        if response.status_code != 200:
            raise DiscoveryError(f"{url} responded with HTTP {response.status_code}.")
        body = response.raw.read(MAX_DOCUMENT_BYTES + 1, decode_content=True)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise DiscoveryError(f"The document at {url} is larger than {MAX_DOCUMENT_BYTES // 1024} KiB.")
    try:
        return json.loads(body)
    except ValueError:
        raise DiscoveryError(f"The document at {url} is not valid JSON.") from None


def fetch_metadata(issuer: str) -> ServerMetadata:
    """Fetch and check the metadata of ``issuer``, or raise DiscoveryError saying why not."""
    issuer = issuer.strip()
    parts = urlsplit(issuer)
    if not parts.hostname or parts.query or parts.fragment:
        raise DiscoveryError(f"The issuer {issuer!r} must be an https URL without query or fragment.")
    try:
        url_policy.check_url(issuer)
    except url_policy.URLPolicyError as error:
        raise DiscoveryError(f"The issuer {error}.") from None

    for url in metadata_urls(issuer):
        document = _get_document(url)
        if document is not None:
            metadata = parse_metadata(document, url, issuer)
            log.info("Metadata read: issuer %s from %s", issuer, url)
            return metadata
    tried = " and ".join(metadata_urls(issuer))
    raise DiscoveryError(f"No metadata found at {tried} (HTTP 404). Check the issuer URL.")


def provider_input(
    metadata: ServerMetadata, name: str, client_id: str, client_secret: str | None, default_scopes: str = ""
) -> ProviderInput:
    """Build the provider values that the metadata sets, for registry.save_provider."""
    revocation_url = metadata.revocation_endpoint
    return ProviderInput(
        name=name,
        client_id=client_id,
        client_secret=client_secret,
        grant_type=metadata.grant_type().value,
        authorization_url=metadata.authorization_endpoint,
        token_url=metadata.token_endpoint or "",
        revocation_url=revocation_url,
        revocation_method="rfc7009" if revocation_url else "none",
        use_pkce=metadata.supports_pkce,
        client_auth_method=metadata.client_auth_method().value,
        default_scopes=default_scopes,
        issuer=metadata.issuer,
        issuer_parameter_required=metadata.issuer_parameter_supported,
    )
