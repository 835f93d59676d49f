"""Connecting, renewing and listing a user's personal integrations.

Nothing here reads the request: views pass in the user, the login session and the
values they parsed, so the CLI and tests can call the same functions.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from authlib.common.errors import AuthlibBaseError
from flask import current_app
from requests import RequestException
from sqlalchemy import and_, delete, or_, select

from app import audit, groups
from app.extensions import db
from app.models import (
    AuthorizationRequest,
    Credential,
    CredentialStatus,
    GrantType,
    Integration,
    IntegrationType,
    LoginSession,
    User,
    hash_token,
    utcnow,
)
from app.oauth_client import (
    ProviderError,
    TokenSet,
    clean_error_code,
    clean_provider_text,
    parse_token_response,
    provider_error_from,
    provider_session,
)

log = logging.getLogger(__name__)


class ConnectError(Exception):
    """Connecting failed; ``message`` is safe to show and tells the user what to do next."""

    def __init__(self, message: str, integration: Integration | None = None):
        super().__init__(message)
        self.message = message
        self.integration = integration


@dataclass
class Card:
    integration: Integration
    credential: Credential | None
    #: False when the user still holds tokens for an integration that an admin has since
    #: disabled, made a system integration or limited to other groups. The card then only
    #: offers Revoke, so the user can always withdraw what they granted.
    available: bool = True

    @property
    def is_mine(self) -> bool:
        if self.credential is None:
            return False
        return not self.available or self.credential.belongs_in_my_integrations()


def redirect_uri() -> str:
    return current_app.config["BASE_URL"] + "/oauth/callback"


def personal_integrations_query():
    return select(Integration).where(
        Integration.integration_type == IntegrationType.PERSONAL, Integration.is_enabled.is_(True)
    )


def dashboard_cards(user: User) -> tuple[list[Card], list[Card]]:
    """Return the cards of *My Integrations* and *Integrations I can use*, in one query."""
    available = and_(
        Integration.integration_type == IntegrationType.PERSONAL,
        Integration.is_enabled.is_(True),
        groups.visible_to(user),
    )
    rows = db.session.execute(
        select(Integration, Credential, available.label("available"))
        .outerjoin(
            Credential,
            and_(Credential.integration_id == Integration.id, Credential.user_id == user.id),
        )
        .where(or_(available, Credential.id.is_not(None)))
        .order_by(Integration.name)
    ).all()
    cards = [Card(integration, credential, bool(is_available)) for integration, credential, is_available in rows]
    return [card for card in cards if card.is_mine], [card for card in cards if not card.is_mine]


def own_credential(user: User, integration_id: int) -> Credential | None:
    """Return the user's credential for an integration, whether or not it is still available."""
    return db.session.scalar(
        select(Credential).where(Credential.user_id == user.id, Credential.integration_id == integration_id)
    )


def card_for(user: User, integration_id: int) -> Card | None:
    # A user outside the integration's groups gets None, as for an unknown id, so every
    # connect and revoke route returns 404 without revealing that the integration exists.
    integration = db.session.scalar(
        personal_integrations_query().where(Integration.id == integration_id, groups.visible_to(user))
    )
    if integration is None:
        return None
    return Card(integration, find_credential(user, integration))


def find_credential(user: User, integration: Integration) -> Credential | None:
    return db.session.scalar(
        select(Credential).where(Credential.user_id == user.id, Credential.integration_id == integration.id)
    )


def start_authorization(user: User, login_session: LoginSession, integration: Integration, display: str) -> str:
    """Store a new state and PKCE verifier and return the provider's authorization URL."""
    provider = integration.provider
    if provider.grant_type != GrantType.AUTHORIZATION_CODE or not provider.authorization_url:
        raise ConnectError(f"{integration.name} does not use the authorization code grant.", integration)
    _check_not_pending(user, integration)

    state = secrets.token_urlsafe(32)
    request = AuthorizationRequest(
        state_hash=hash_token(state),
        login_session_id=login_session.id,
        user_id=user.id,
        integration_id=integration.id,
        display=display,
        expires_at=utcnow() + timedelta(seconds=current_app.config["AUTHORIZATION_REQUEST_TTL"]),
    )
    code_verifier = secrets.token_urlsafe(64) if provider.use_pkce else None
    if code_verifier:
        request.set_code_verifier(code_verifier)
    db.session.add(request)
    # Expired requests are never used again; removing them here keeps the table small.
    db.session.execute(delete(AuthorizationRequest).where(AuthorizationRequest.expires_at <= utcnow()))
    db.session.commit()

    session = provider_session(
        provider,
        scope=provider.scope_separator.join(integration.requested_scopes.split()) or None,
        redirect_uri=redirect_uri(),
        code_challenge_method="S256" if code_verifier else None,
    )
    url, _ = session.create_authorization_url(
        provider.authorization_url,
        state=state,
        code_verifier=code_verifier,
        **(provider.extra_authorization_params or {}),
    )
    log.info(
        "Authorization started: user %s, integration %s, provider %s",
        user.id,
        integration.id,
        provider.name,
    )
    return url


@dataclass(frozen=True)
class PendingAuthorization:
    """The parts of a stored authorization request that the callback needs, read before deletion."""

    integration: Integration
    display: str
    code_verifier: str | None


def take_authorization_request(state: str | None, login_session: LoginSession) -> PendingAuthorization:
    """Find and delete the authorization request for ``state``; each state works once."""
    if not state:
        raise ConnectError("The provider's response has no state parameter. Start again from the dashboard.")
    request = db.session.scalar(
        select(AuthorizationRequest).where(AuthorizationRequest.state_hash == hash_token(state))
    )
    if request is None:
        raise ConnectError("This sign-in link was already used or is unknown. Start again from the dashboard.")

    pending = PendingAuthorization(request.integration, request.display, request.code_verifier)
    same_session = request.login_session_id == login_session.id
    expired = request.expires_at <= utcnow()
    db.session.delete(request)
    db.session.commit()

    if not same_session:
        log.warning("Callback state belongs to another login session: user %s", login_session.user_id)
        raise ConnectError("This sign-in was started in another session. Start again from the dashboard.")
    if expired:
        raise ConnectError(
            "This sign-in took too long and expired. Start again from the dashboard.", pending.integration
        )
    return pending


def complete_authorization(
    user: User,
    pending: PendingAuthorization,
    code: str | None,
    error: str | None,
    error_description: str | None,
    iss: str | None = None,
) -> Credential:
    """Check the issuer of a callback, exchange its authorization code and store the tokens."""
    integration = pending.integration
    provider = integration.provider
    _check_issuer(user, integration, iss)
    if error:
        text = clean_error_code(error)
        log.info("Authorization denied: user %s, integration %s, error %s", user.id, integration.id, text)
        _record_failure(user, integration, text)
        detail = clean_provider_text(error_description, [code])
        message = f"{provider.name} did not grant access ({text})."
        if detail:
            message = f"{provider.name} did not grant access ({text}: {detail})."
        raise ConnectError(message, integration)
    if not code:
        raise ConnectError(f"{provider.name} sent no authorization code. Try again.", integration)

    session = provider_session(provider, redirect_uri=redirect_uri())
    try:
        token = session.fetch_token(
            provider.token_url,
            grant_type="authorization_code",
            code=code,
            code_verifier=pending.code_verifier,
        )
        token_set = parse_token_response(token)
    except (AuthlibBaseError, RequestException, ValueError, ProviderError) as exception:
        failure = provider_error_from(exception, [code, provider.client_secret, pending.code_verifier])
        log.warning(
            "Code exchange failed: user %s, integration %s, provider %s, error %s",
            user.id,
            integration.id,
            provider.name,
            failure.error,
        )
        _record_failure(user, integration, failure.message)
        raise ConnectError(
            f"{provider.name} rejected the sign-in ({failure.message}). Try again.", integration
        ) from None

    return store_tokens(user, integration, token_set)


def _check_issuer(user: User, integration: Integration, iss: str | None) -> None:
    """Reject an authorization response whose ``iss`` differs from the provider's issuer (RFC 9207).

    This stops a mix-up attack, where a response from one authorization server is
    replayed to the callback of another. A provider without a stored issuer cannot be
    checked; one whose metadata promises the parameter must send it.
    """
    provider = integration.provider
    if not provider.issuer:
        return
    if iss is None:
        if not provider.issuer_parameter_required:
            return
        message = (
            f"The sign-in response has no iss parameter, but {provider.name} announces one in its metadata. "
            "Start again from the dashboard; if this repeats, ask an admin to check the provider."
        )
    elif iss != provider.issuer:
        message = (
            f"The sign-in response names the issuer {clean_provider_text(iss, [])!r}, but {provider.name} is "
            f"{provider.issuer!r}. Start again from the dashboard; if this repeats, ask an admin to check the provider."
        )
    else:
        return
    log.warning(
        "Authorization response issuer mismatch: user %s, integration %s, provider %s",
        user.id,
        integration.id,
        provider.name,
    )
    _record_failure(user, integration, "authorization response issuer mismatch")
    raise ConnectError(message, integration)


def password_grant(user: User, integration: Integration, username: str, password: str) -> Credential:
    """Request tokens with the resource owner password credentials grant.

    The password is sent to the provider once and is neither stored nor logged.
    """
    provider = integration.provider
    if provider.grant_type != GrantType.PASSWORD:
        raise ConnectError(f"{integration.name} does not use the password grant.", integration)
    _check_not_pending(user, integration)

    session = provider_session(provider, scope=integration.requested_scopes or None)
    try:
        token = session.fetch_token(provider.token_url, grant_type="password", username=username, password=password)
        token_set = parse_token_response(token)
    except (AuthlibBaseError, RequestException, ValueError, ProviderError) as exception:
        failure = provider_error_from(exception, [password, provider.client_secret])
        log.info(
            "Password grant failed: user %s, integration %s, provider %s, error %s",
            user.id,
            integration.id,
            provider.name,
            failure.error,
        )
        _record_failure(user, integration, failure.message)
        raise ConnectError(_password_failure_message(provider.name, failure), integration) from None

    return store_tokens(user, integration, token_set)


def _password_failure_message(provider_name: str, failure: ProviderError) -> str:
    if failure.error == "invalid_grant":
        reason = failure.description or "the username or password is incorrect"
        return f"{provider_name} rejected the sign-in: {reason}. Check the username and password and try again."
    if failure.error == "network_error":
        return f"{provider_name} could not be reached ({failure.description}). Try again later."
    return f"{provider_name} rejected the request ({failure.message})."


def _record_failure(user: User, integration: Integration, detail: str) -> None:
    audit.record(
        "credential.connect",
        audit.Outcome.FAILURE,
        actor_user_id=user.id,
        subject_user_id=user.id,
        integration_id=integration.id,
        provider_id=integration.provider_id,
        detail=detail,
    )


def _check_not_pending(user: User, integration: Integration) -> None:
    credential = find_credential(user, integration)
    if credential is not None and credential.status == CredentialStatus.REVOCATION_PENDING:
        raise ConnectError(
            f"The earlier {integration.name} tokens are still waiting to be revoked. "
            "Retry the revocation on the dashboard first.",
            integration,
        )


def store_tokens(user: User, integration: Integration, token_set: TokenSet) -> Credential:
    """Create or replace the user's credential in one transaction.

    A response without a refresh token keeps the refresh token stored before.
    """
    now = utcnow()
    credential = find_credential(user, integration)
    renewing = credential is not None
    if credential is None:
        credential = Credential(user_id=user.id, integration_id=integration.id, connected_at=now)
        db.session.add(credential)
    else:
        credential.renewed_at = now

    credential.status = CredentialStatus.ACTIVE
    credential.access_token = token_set.access_token
    credential.token_type = token_set.token_type
    credential.access_token_expires_at = token_set.access_token_expires_at
    lifetime = integration.provider.default_token_lifetime
    if token_set.access_token_expires_at is None and lifetime:
        credential.access_token_expires_at = now + timedelta(seconds=lifetime)
    if token_set.refresh_token is not None:
        credential.refresh_token = token_set.refresh_token
        credential.refresh_token_expires_at = token_set.refresh_token_expires_at
    credential.granted_scopes = token_set.scope if token_set.scope is not None else integration.requested_scopes
    credential.revocation_error = None
    credential.revocation_attempts = 0
    credential.revocation_attempted_at = None
    credential.refresh_attempts = 0
    credential.next_refresh_attempt_at = None
    credential.refresh_error = None
    audit.record(
        "credential.renew" if renewing else "credential.connect",
        actor_user_id=user.id,
        subject_user_id=user.id,
        integration_id=integration.id,
        provider_id=integration.provider_id,
        detail=f"granted scopes: {credential.granted_scopes}"[:200],
        commit=False,
    )
    db.session.commit()

    log.info(
        "Tokens stored: user %s, integration %s, provider %s, %s",
        user.id,
        integration.id,
        integration.provider.name,
        "renewed" if renewing else "connected",
    )
    return credential
