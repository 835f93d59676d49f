"""Keeping access tokens fresh with the refresh token grant (RFC 6749 section 6).

A refresh runs once per credential however many workers request it at the same time,
on one host or several. The worker that gets the row lock (``app.locking``) calls the
provider and commits the new tokens before it releases the lock. Every worker that
waited then reads the row again and uses those tokens, so no in-process lock is needed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from authlib.common.errors import AuthlibBaseError
from flask import current_app
from requests import RequestException, Response
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app import audit
from app.extensions import db
from app.locking import lock_rows
from app.models import Credential, CredentialStatus, Provider, utcnow
from app.oauth_client import ProviderError, TokenSet, parse_token_response, provider_error_from, provider_session

log = logging.getLogger(__name__)

#: OAuth error codes after which the same refresh token can never work again.
PERMANENT_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type"})
#: Local and OAuth error codes worth another attempt within the same call.
RETRYABLE_ERRORS = frozenset({"network_error", "server_error", "temporarily_unavailable"})


class RefreshError(Exception):
    """A refresh failed. ``permanent`` is true when retrying cannot help (``invalid_grant``)."""

    def __init__(self, message: str, permanent: bool):
        super().__init__(message)
        self.message = message
        self.permanent = permanent


def needs_refresh(credential: Credential, now: datetime | None = None) -> bool:
    """Whether the access token is missing or expires within ``REFRESH_MARGIN`` seconds.

    A credential refreshed less than ``REFRESH_MIN_INTERVAL`` seconds ago is never due,
    so a provider that issues tokens that are already about to expire causes no loop.
    """
    if credential.status != CredentialStatus.ACTIVE or credential.refresh_token_ciphertext is None:
        return False
    now = now or utcnow()
    config = current_app.config
    expires_at = credential.access_token_expires_at
    if credential.access_token_ciphertext is not None:
        if expires_at is None or expires_at - now > timedelta(seconds=config["REFRESH_MARGIN"]):
            return False
    refreshed_at = credential.refreshed_at
    return refreshed_at is None or now - refreshed_at >= timedelta(seconds=config["REFRESH_MIN_INTERVAL"])


def retry_delay(attempts: int) -> timedelta:
    """Wait before the next background attempt after ``attempts`` failures in a row."""
    config = current_app.config
    seconds = config["RETRY_BACKOFF_BASE"] * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, config["RETRY_BACKOFF_MAX"]))


def ensure_fresh_token(credential: Credential) -> Credential:
    """Return the credential with an access token that is not about to expire.

    Refreshes it first when it is due. Raises RefreshError when the credential may not be
    used (revocation pending, needs reconnect) or the refresh fails; a transient failure
    keeps the stored tokens.
    """
    if credential.status == CredentialStatus.NEEDS_RECONNECT:
        raise RefreshError(_reconnect_message(credential), permanent=True)
    if credential.status != CredentialStatus.ACTIVE:
        raise RefreshError(f"the tokens of {credential.integration.name} are being revoked", permanent=True)
    if credential.refresh_token_ciphertext is None and not credential.has_valid_access_token():
        raise RefreshError(
            f"the access token of {credential.integration.name} expired and there is no refresh token: "
            "connect the integration again on the dashboard",
            permanent=True,
        )
    if not needs_refresh(credential):
        return credential

    refreshed = refresh_credential(credential.id, source="on_demand")
    if refreshed is None:
        raise RefreshError("the credential was deleted while it was being refreshed", permanent=True)
    return refreshed


def refresh_credential(credential_id: int, source: str, skip_locked: bool = False) -> Credential | None:
    """Lock the credential row, refresh its tokens if they are still due, and commit.

    ``source`` (``on_demand`` or ``job``) goes into the audit trail. Returns None when the
    row is gone, or when ``skip_locked`` is true and another worker holds it (PostgreSQL).
    The session's pending changes are committed, or rolled back on a database error,
    together with the refresh.
    """
    credential, _ = _claim(credential_id, source, skip_locked, respect_backoff=False)
    return credential


def claim_and_refresh(
    credential_id: int, source: str, skip_locked: bool = False, respect_backoff: bool = False
) -> bool:
    """Refresh like ``refresh_credential`` and return whether this call sent the refresh.

    With ``respect_backoff``, a credential whose next attempt after a failure is still
    in the future is left alone, as the background job requires.
    """
    _, refreshed = _claim(credential_id, source, skip_locked, respect_backoff)
    return refreshed


def _claim(credential_id: int, source: str, skip_locked: bool, respect_backoff: bool) -> tuple[Credential | None, bool]:
    try:
        rows = lock_rows(select(Credential).where(Credential.id == credential_id), skip_locked=skip_locked)
    except SQLAlchemyError as error:
        db.session.rollback()
        log.warning("Could not lock credential %s for a refresh: %s", credential_id, type(error).__name__)
        raise RefreshError("the credential is busy in another worker; try again in a few seconds", False) from None
    if not rows:
        db.session.commit()
        return None, False

    credential = rows[0]
    if credential.status == CredentialStatus.NEEDS_RECONNECT:
        db.session.commit()
        raise RefreshError(_reconnect_message(credential), permanent=True)
    now = utcnow()
    waiting = respect_backoff and credential.next_refresh_attempt_at is not None
    if not needs_refresh(credential, now) or (waiting and credential.next_refresh_attempt_at > now):
        # Another worker refreshed while this one waited for the lock, or nothing is due.
        db.session.commit()
        return credential, False
    return _refresh_locked(credential, source), True


def _refresh_locked(credential: Credential, source: str) -> Credential:
    integration = credential.integration
    provider = integration.provider
    ids = _Ids(credential.id, credential.user_id, integration.id, provider.id, provider.name, integration.name)
    old_refresh_token = credential.refresh_token
    log.info("Refresh started: credential %s, user %s, integration %s, provider %s", *ids.log_args)

    try:
        token_set = _request_tokens(provider, old_refresh_token, ids)
    except ProviderError as failure:
        raise _record_failure(credential, ids, failure, source) from None

    try:
        _store(credential, token_set, old_refresh_token, source, ids)
        db.session.commit()
    except SQLAlchemyError as error:
        db.session.rollback()
        raise _report_store_failure(ids, error, source) from None
    log.info("Refresh stored: credential %s, user %s, integration %s, provider %s", *ids.log_args)
    return credential


@dataclass(frozen=True)
class _Ids:
    """Ids of a credential, read before a rollback can expire the loaded objects."""

    credential_id: int
    user_id: int
    integration_id: int
    provider_id: int
    provider_name: str
    integration_name: str

    @property
    def log_args(self) -> tuple:
        return (self.credential_id, self.user_id, self.integration_id, self.provider_name)

    def audit_fields(self, source: str) -> dict:
        return {
            "subject_user_id": self.user_id,
            "integration_id": self.integration_id,
            "provider_id": self.provider_id,
            "credential_id": self.credential_id,
            "source": source,
        }


def _request_tokens(provider: Provider, refresh_token: str | None, ids: _Ids) -> TokenSet:
    """Send the refresh token grant, retrying network errors and HTTP 5xx a bounded number of times."""
    config = current_app.config
    attempts = max(int(config["REFRESH_ATTEMPTS"]), 1)
    delay = float(config["REFRESH_RETRY_DELAY"])
    for attempt in range(1, attempts + 1):
        session = provider_session(provider)
        session.register_compliance_hook("refresh_token_response", _raise_for_status_without_error)
        try:
            token = session.refresh_token(provider.token_url, refresh_token=refresh_token)
            return parse_token_response(token, default_lifetime=provider.default_token_lifetime)
        except (AuthlibBaseError, RequestException, ValueError, ProviderError) as exception:
            failure = provider_error_from(exception, [refresh_token, provider.client_secret])
        if attempt == attempts or not _is_retryable(failure):
            raise failure
        log.warning(
            "Refresh attempt %s of %s failed, retrying in %.1f s: credential %s, user %s, integration %s, "
            "provider %s, error %s",
            attempt,
            attempts,
            delay,
            *ids.log_args,
            failure.error,
        )
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def _raise_for_status_without_error(response: Response) -> Response:
    """Raise HTTPError for an error status whose body has no OAuth ``error`` member.

    Authlib 1.9 raises only for HTTP 5xx or a body that is not a JSON object, so a
    gateway's HTTP 429 or 408 with a plain-text body would otherwise count as a token
    response without an access token instead of a reason to retry.
    """
    if response.ok:
        return response
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "error" not in body:
        response.raise_for_status()
    return response


def _is_retryable(failure: ProviderError) -> bool:
    if failure.error not in RETRYABLE_ERRORS:
        return False
    return failure.status is None or failure.status >= 500 or failure.status in (408, 429)


def _store(credential: Credential, token_set: TokenSet, old_refresh_token: str | None, source: str, ids: _Ids) -> None:
    """Put the new tokens on the row and add the audit event, in the caller's transaction.

    A response without a refresh token, or with the same one, keeps the stored refresh
    token and its expiry (Authlib 1.9 copies the old refresh token into a response
    that has none).
    """
    credential.access_token = token_set.access_token
    credential.token_type = token_set.token_type
    credential.access_token_expires_at = token_set.access_token_expires_at
    rotated = token_set.refresh_token is not None and token_set.refresh_token != old_refresh_token
    if rotated:
        credential.refresh_token = token_set.refresh_token
        credential.refresh_token_expires_at = token_set.refresh_token_expires_at
    elif token_set.refresh_token_expires_at is not None:
        credential.refresh_token_expires_at = token_set.refresh_token_expires_at
    if token_set.scope is not None:
        credential.granted_scopes = token_set.scope
    credential.refreshed_at = utcnow()
    credential.refresh_attempts = 0
    credential.next_refresh_attempt_at = None
    credential.refresh_error = None
    audit.record(
        "credential.refresh",
        detail=f"granted scopes: {credential.granted_scopes}"[:200],
        refresh_token_rotated=rotated,
        commit=False,
        **ids.audit_fields(source),
    )


def _report_store_failure(ids: _Ids, error: SQLAlchemyError, source: str) -> RefreshError:
    """Log and audit a refresh whose new tokens could not be committed; return the error to raise."""
    log.error(
        "Refreshed tokens could not be stored, the previous tokens are kept: credential %s, user %s, "
        "integration %s, provider %s, error %s",
        *ids.log_args,
        type(error).__name__,
    )
    try:
        audit.record(
            "credential.refresh",
            audit.Outcome.FAILURE,
            detail=f"the provider issued new tokens, but storing them failed ({type(error).__name__})",
            error="database_error",
            permanent=False,
            **ids.audit_fields(source),
        )
    except SQLAlchemyError as audit_error:
        db.session.rollback()
        log.error(
            "Audit event of the failed refresh not stored: credential %s, error %s",
            ids.credential_id,
            type(audit_error).__name__,
        )
    return RefreshError(
        f"{ids.provider_name} issued new tokens for {ids.integration_name}, but the database could not store "
        "them; the previous tokens are kept. If the provider rotates refresh tokens, reconnect the integration.",
        permanent=False,
    )


def _record_failure(credential: Credential, ids: _Ids, failure: ProviderError, source: str) -> RefreshError:
    """Store and audit a failed refresh, commit, and return the RefreshError to raise.

    A permanent error marks the credential *needs reconnect*: it is neither retried nor
    revoked, because the provider no longer accepts its refresh token. Any other error
    keeps the tokens and sets the time of the next background attempt.
    """
    permanent = failure.error in PERMANENT_ERRORS
    now = utcnow()
    credential.refresh_attempts += 1
    credential.refresh_error = failure.message[:1000]
    if permanent:
        credential.status = CredentialStatus.NEEDS_RECONNECT
        credential.next_refresh_attempt_at = None
    else:
        credential.next_refresh_attempt_at = now + retry_delay(credential.refresh_attempts)
    log.warning(
        "Refresh failed%s: credential %s, user %s, integration %s, provider %s, error %s, attempts %s",
        ", needs reconnect" if permanent else "",
        *ids.log_args,
        failure.error,
        credential.refresh_attempts,
    )
    audit.record(
        "credential.refresh",
        audit.Outcome.FAILURE,
        detail=failure.message,
        error=failure.error,
        permanent=permanent,
        attempt=credential.refresh_attempts,
        commit=False,
        **ids.audit_fields(source),
    )
    try:
        db.session.commit()
    except SQLAlchemyError as error:
        db.session.rollback()
        log.error("Refresh failure not stored: credential %s, error %s", ids.credential_id, type(error).__name__)

    if permanent:
        return RefreshError(
            f"{ids.provider_name} rejected the refresh token of {ids.integration_name} ({failure.message}). "
            "Reconnect the integration on the dashboard.",
            permanent=True,
        )
    return RefreshError(
        f"{ids.provider_name} could not refresh the token of {ids.integration_name} ({failure.message}). "
        "The stored tokens are kept; try again later.",
        permanent=False,
    )


def _reconnect_message(credential: Credential) -> str:
    reason = f" ({credential.refresh_error})" if credential.refresh_error else ""
    return (
        f"{credential.integration.provider.name} no longer accepts the refresh token of "
        f"{credential.integration.name}{reason}. The user must reconnect it on the dashboard."
    )
