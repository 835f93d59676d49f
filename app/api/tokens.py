"""Handing a user's access token to an internal service that holds an API key.

Nothing here reads the request, so the rules can be tested and reused without HTTP.
Every fetch, answered or not, becomes one ``api.token_fetch`` audit event and one log
line. Neither contains a token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from app import audit
from app.api_keys import ApiKey, find_integration
from app.extensions import db
from app.models import Credential, CredentialStatus, Integration, User, utcnow
from app.refresh import RefreshError, ensure_fresh_token

log = logging.getLogger(__name__)


@dataclass(eq=False)
class TokenFetchError(Exception):
    """A fetch that cannot return a token. ``error`` is the stable code services match on."""

    status: int
    error: str
    message: str
    #: Where the user can fix the problem, or None when only an administrator can.
    dashboard_url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.dashboard_url is not None:
            body["dashboard_url"] = self.dashboard_url
        return body


def dashboard_url(integration: Integration) -> str:
    """Return the dashboard address that scrolls to the integration's card."""
    return f"{current_app.config['BASE_URL']}/#{integration.dom_id}"


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fetch_token(api_key: ApiKey, username: str, integration_reference: str) -> dict[str, Any]:
    """Return the token document for the user's credential, renewing the access token first if needed.

    Raise TokenFetchError when there is no token to hand out. The refresh token is never
    part of the document.
    """
    integration = find_integration(integration_reference)
    user = db.session.scalar(select(User).where(User.username == username))
    try:
        credential = _usable_credential(api_key, user, username, integration, integration_reference)
    except TokenFetchError as error:
        _record_fetch(api_key, user, integration, error.error, username=username, reference=integration_reference)
        raise

    _record_fetch(api_key, user, integration, None)
    return token_document(credential)


def token_document(credential: Credential) -> dict[str, Any]:
    integration = credential.integration
    user = credential.user
    return {
        "access_token": credential.access_token,
        "token_type": credential.token_type,
        "expires_at": rfc3339(credential.access_token_expires_at),
        "scope": credential.granted_scopes,
        "integration": {
            "id": integration.id,
            "name": integration.name,
            "provider": integration.provider.name,
            "api_base_url": integration.api_base_url,
        },
        "user": {
            "id": user.id,
            "username": user.username,
            "display_name": user.display_name,
            "email": user.email,
        },
    }


def _usable_credential(
    api_key: ApiKey, user: User | None, username: str, integration: Integration | None, reference: str
) -> Credential:
    if integration is None:
        raise TokenFetchError(
            404,
            "integration_not_found",
            f"There is no integration with id or name {reference!r}. Check the integration in the admin pages.",
        )
    if not api_key.may_read(integration):
        raise TokenFetchError(
            403,
            "integration_not_allowed",
            f"The API key of {api_key.service} may not read {integration.name}. "
            "Ask an administrator for a key that includes this integration.",
        )
    if not integration.is_enabled:
        raise TokenFetchError(
            409,
            "integration_disabled",
            f"{integration.name} is disabled, so its tokens are not handed out. Ask an administrator to enable it.",
        )
    if user is None:
        raise TokenFetchError(404, "user_not_found", f"There is no user named {username!r}.")
    if not user.is_enabled:
        raise TokenFetchError(
            409, "user_disabled", f"User {username} is deactivated, so their tokens are not handed out."
        )

    allowed_group_ids = {group.id for group in integration.allowed_groups}
    if allowed_group_ids and not allowed_group_ids & {group.id for group in user.groups}:
        names = ", ".join(group.name for group in integration.allowed_groups)
        raise TokenFetchError(
            403,
            "user_not_in_group",
            f"{integration.name} is limited to the groups {names}, and {username} is in none of them. "
            "Ask an administrator to add them to one of these groups.",
        )

    credential = db.session.scalar(
        select(Credential).where(Credential.user_id == user.id, Credential.integration_id == integration.id)
    )
    fix_url = dashboard_url(integration)
    if credential is None:
        raise TokenFetchError(
            404,
            "not_connected",
            f"{user.username} has not connected {integration.name}. Ask them to connect it on the dashboard.",
            fix_url,
        )
    if credential.status != CredentialStatus.ACTIVE:
        raise _status_error(credential, fix_url)
    if not credential.is_usable():
        raise _needs_reconnect(credential, "the access token and the refresh token have expired", fix_url)

    try:
        credential = ensure_fresh_token(credential)
    except RefreshError as error:
        if error.permanent:
            raise _needs_reconnect(credential, error.message, fix_url) from None
        raise TokenFetchError(
            503,
            "refresh_failed",
            f"Renewing the {integration.name} access token of {user.username} failed ({error.message}). "
            "Try again later.",
            fix_url,
        ) from None
    if not credential.has_valid_access_token():
        raise TokenFetchError(
            503,
            "refresh_failed",
            f"The renewed {integration.name} access token of {user.username} has already expired. Try again later.",
            fix_url,
        )
    return credential


def _needs_reconnect(credential: Credential, reason: str, fix_url: str) -> TokenFetchError:
    return TokenFetchError(
        409,
        "needs_reconnect",
        f"The {credential.integration.name} tokens of {credential.user.username} no longer work ({reason}). "
        "Ask them to connect it again on the dashboard.",
        fix_url,
    )


def _status_error(credential: Credential, fix_url: str) -> TokenFetchError:
    """Describe a credential that is not active. Statuses added later get a generic message."""
    status = str(credential.status)
    name, username = credential.integration.name, credential.user.username
    if status == CredentialStatus.REVOCATION_PENDING:
        message = (
            f"{username} revoked {name}, and the provider has not confirmed the revocation yet, "
            "so the tokens are not handed out. They can connect it again once the revocation is done."
        )
    elif status == "needs_reconnect":
        return _needs_reconnect(credential, "the provider rejected the refresh token", fix_url)
    elif status == "revoked":
        message = f"The {name} tokens of {username} were revoked. Ask them to connect it again on the dashboard."
    else:
        message = (
            f"The {name} credential of {username} is {status.replace('_', ' ')}, so its tokens are not "
            "handed out. Ask them to check it on the dashboard."
        )
    return TokenFetchError(409, status, message, fix_url)


def _record_fetch(
    api_key: ApiKey,
    user: User | None,
    integration: Integration | None,
    error: str | None,
    **data: str,
) -> None:
    """Write the fetch's audit event, stamp the key as used, and log one line."""
    api_key.last_used_at = utcnow()
    audit.record(
        "api.token_fetch",
        audit.Outcome.SUCCESS if error is None else audit.Outcome.FAILURE,
        actor_service=api_key.service,
        subject_user_id=user.id if user else None,
        integration_id=integration.id if integration else None,
        provider_id=integration.provider_id if integration else None,
        detail=error or "",
        api_key_id=api_key.id,
        **({key: value[:200] for key, value in data.items()} if user is None or integration is None else {}),
    )
    log.info(
        "Token fetch: key %s, service %s, user %s, integration %s, outcome %s",
        api_key.id,
        api_key.service,
        user.id if user else None,
        integration.id if integration else None,
        error or "success",
    )
