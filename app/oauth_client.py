"""Authlib OAuth 2.0 client sessions for registered providers, and token response parsing.

Every call to a provider goes through ``provider_session`` so that each one has connect
and read timeouts and the same client authentication.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, quote_plus

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app

from app.models import ClientAuthMethod, Provider, utcnow

log = logging.getLogger(__name__)

MAX_MESSAGE_LENGTH = 300


class ProviderError(Exception):
    """A provider call failed. ``error`` is the OAuth error code or a local one
    (``network_error``, ``invalid_response``); ``description`` is safe to show."""

    def __init__(self, error: str, description: str = "", status: int | None = None):
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status

    @property
    def message(self) -> str:
        text = self.error
        if self.description:
            text = f"{self.error}: {self.description}"
        return text


def encode_client_secret_basic(client, method, uri, headers, body):
    """Add HTTP Basic client authentication, form-encoding id and secret first.

    RFC 6749 section 2.3.1 requires the application/x-www-form-urlencoded encoding of
    both values before Base64, so a secret with ``+``, ``/``, ``:`` or non-ASCII
    characters reaches the provider intact. Authlib 1.9 encodes them as Latin-1 without it.
    """
    credentials = f"{quote_plus(client.client_id)}:{quote_plus(client.client_secret or '')}"
    headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode("ascii")).decode()
    return uri, headers, body


def _normalize_token_response(response: requests.Response) -> requests.Response:
    """Rewrite a token response into the JSON that Authlib expects.

    Some providers respond with a form-encoded or plain-text body, and some send
    ``expires_in`` as a string or as text that is not a number. Authlib 1.9 computes
    ``expires_at`` with ``int(expires_in)`` and fails on such text, so a non-numeric
    value is dropped here and the expiry counts as not stated.
    """
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    text = response.text.strip()
    if content_type in ("application/x-www-form-urlencoded", "text/plain") and text and not text.startswith("{"):
        body: object = dict(parse_qsl(text, keep_blank_values=True))
    else:
        try:
            body = response.json()
        except ValueError:
            return response
    if not isinstance(body, dict):
        return response

    # Slack's oauth.v2.access returns the user's token under authed_user, beside the bot
    # token of the workspace installation, if any. A personal integration acts as the user.
    authed_user = body.get("authed_user")
    if isinstance(authed_user, dict) and isinstance(authed_user.get("access_token"), str):
        body = {**body, **authed_user, "token_type": "Bearer"}
        body.pop("authed_user", None)

    if "expires_in" in body:
        seconds = _seconds(body["expires_in"])
        if seconds is None:
            del body["expires_in"]
        else:
            body["expires_in"] = seconds
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    return response


def provider_session(provider: Provider, **kwargs) -> OAuth2Session:
    config = current_app.config
    session = OAuth2Session(
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        token_endpoint_auth_method=provider.client_auth_method.value,
        revocation_endpoint_auth_method=provider.client_auth_method.value,
        default_timeout=(config["HTTP_CONNECT_TIMEOUT"], config["HTTP_READ_TIMEOUT"]),
        **kwargs,
    )
    # A redirect would send the client secret and the grant to a URL the outbound URL
    # policy never checked, so token and revocation calls follow none.
    session.max_redirects = 0
    session.register_client_auth_method((ClientAuthMethod.CLIENT_SECRET_BASIC.value, encode_client_secret_basic))
    session.register_compliance_hook("access_token_response", _normalize_token_response)
    session.register_compliance_hook("refresh_token_response", _normalize_token_response)
    return session


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    token_type: str
    refresh_token: str | None
    access_token_expires_at: datetime | None
    refresh_token_expires_at: datetime | None
    scope: str | None


def _seconds(value: object) -> int | None:
    """Read a lifetime in seconds given as a number or a numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
        return int(float(value))
    return None


def normalize_scope(scope: object) -> str | None:
    """Return granted scopes as one space-separated string, whatever separator was used."""
    if scope is None:
        return None
    if isinstance(scope, list | tuple):
        items = [str(item) for item in scope]
    else:
        items = re.split(r"[\s,]+", str(scope))
    return " ".join(item for item in items if item)


def parse_token_response(token: dict, now: datetime | None = None, default_lifetime: int | None = None) -> TokenSet:
    """Validate a token endpoint response and compute absolute expiry times.

    ``expires_in`` may be a number or a string. A missing, zero or negative value means
    the provider stated no lifetime. The access token then lives ``default_lifetime`` seconds
    (the provider's ``default_token_lifetime``), or has no known expiry when that is
    None, rather than counting as already expired.
    """
    now = now or utcnow()
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise ProviderError("invalid_response", "the token response has no access_token")

    expires_in = _seconds(token.get("expires_in"))
    if (expires_in is None or expires_in <= 0) and default_lifetime:
        expires_in = default_lifetime
    refresh_expires_in = _seconds(token.get("refresh_token_expires_in", token.get("refresh_expires_in")))
    refresh_token = token.get("refresh_token")
    return TokenSet(
        access_token=access_token,
        token_type=str(token.get("token_type") or "Bearer"),
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        access_token_expires_at=now + timedelta(seconds=expires_in) if expires_in and expires_in > 0 else None,
        refresh_token_expires_at=(
            now + timedelta(seconds=refresh_expires_in) if refresh_expires_in and refresh_expires_in > 0 else None
        ),
        scope=normalize_scope(token.get("scope")),
    )


def clean_provider_text(text: object, secrets: list[str | None]) -> str:
    """Make provider-supplied text safe to show: drop known secrets, control characters
    and anything that looks like a token, and cut it to a readable length."""
    cleaned = str(text or "")
    for secret in secrets:
        if secret:
            cleaned = cleaned.replace(secret, "[redacted]")
    cleaned = re.sub(r"[\x00-\x1f\x7f]+", " ", cleaned)
    # Long unbroken runs of token characters are most likely a token or a code.
    cleaned = re.sub(r"[A-Za-z0-9._~+/=-]{32,}", "[redacted]", cleaned)
    cleaned = cleaned.strip()
    if len(cleaned) > MAX_MESSAGE_LENGTH:
        cleaned = cleaned[: MAX_MESSAGE_LENGTH - 1] + "…"
    return cleaned


ERROR_CODE_PATTERN = re.compile(r"[a-z][a-z_]{0,63}")


def clean_error_code(value: object) -> str:
    """Return an OAuth error code as sent if it looks like one (``invalid_grant``), else a placeholder.

    Only lowercase words joined by underscores pass, so a provider that puts a token or
    other text in ``error`` cannot get it shown or logged.
    """
    text = str(value or "")
    return text if ERROR_CODE_PATTERN.fullmatch(text) else "unrecognized_error"


def provider_error_from(exception: Exception, secrets: list[str | None]) -> ProviderError:
    """Translate an Authlib or requests exception into a ProviderError that is safe to show."""
    if isinstance(exception, ProviderError):
        return exception
    if isinstance(exception, requests.Timeout):
        return ProviderError("network_error", "the provider did not respond in time")
    if isinstance(exception, requests.ConnectionError):
        return ProviderError("network_error", "the provider could not be reached")
    if isinstance(exception, requests.TooManyRedirects):
        return ProviderError("invalid_response", "the provider redirected the request; check the endpoint URL")
    if isinstance(exception, requests.HTTPError):
        status = exception.response.status_code if exception.response is not None else None
        return ProviderError("server_error", f"the provider responded with HTTP {status}", status)
    if isinstance(exception, AuthlibBaseError):
        return ProviderError(
            clean_error_code(exception.error),
            clean_provider_text(exception.description, secrets),
        )
    if isinstance(exception, ValueError):
        return ProviderError("invalid_response", "the provider's token response is not valid JSON")
    if isinstance(exception, requests.RequestException):
        return ProviderError("network_error", f"the request to the provider failed ({type(exception).__name__})")
    raise exception
