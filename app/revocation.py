"""Revoking a user's credential, at the provider too (RFC 7009 or a revocation adapter)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from authlib.common.errors import AuthlibBaseError
from requests import RequestException

from app import audit, revocation_adapters
from app.extensions import db
from app.models import Credential, CredentialStatus, utcnow
from app.oauth_client import ProviderError, clean_error_code, provider_error_from, provider_session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RevocationOutcome:
    #: True when the credential is gone; False when it waits in *revocation pending*.
    completed: bool
    #: What went wrong at the provider, safe to show; empty when nothing did.
    error: str = ""


def revoke_credential(credential: Credential, actor_user_id: int | None = None) -> RevocationOutcome:
    """Stop using the credential at once, then revoke its tokens at the provider.

    ``actor_user_id`` is the user who asked, for the audit trail; None means the system.
    The refresh token is revoked before the access token, each with its
    ``token_type_hint``, and a failure on one does not skip the other. A token the
    provider confirmed is dropped. If any revocation fails, the row stays in
    *revocation pending* with the remaining tokens, so it can be retried.
    """
    credential.status = CredentialStatus.REVOCATION_PENDING
    db.session.commit()

    integration = credential.integration
    provider = integration.provider
    ids = (credential.user_id, integration.id, provider.name)
    event = {
        "actor_user_id": actor_user_id,
        "subject_user_id": credential.user_id,
        "integration_id": integration.id,
        "provider_id": provider.id,
        "commit": False,
    }
    if not provider.revocation_url or provider.revocation_method == "none":
        log.info("Credential deleted, provider has no revocation URL: user %s, integration %s, provider %s", *ids)
        audit.record("credential.revoke", detail="provider has no revocation URL; deleted locally", **event)
        db.session.delete(credential)
        db.session.commit()
        return RevocationOutcome(completed=True)

    session = provider_session(provider)
    errors: list[str] = []
    for hint in ("refresh_token", "access_token"):
        token = getattr(credential, hint)
        if token is None:
            continue
        try:
            if provider.revocation_method == "rfc7009":
                response = session.revoke_token(provider.revocation_url, token=token, token_type_hint=hint)
                if response.status_code != 200:
                    status = response.status_code
                    raise ProviderError(
                        _error_code(response),
                        f"the provider responded with HTTP {status}",
                        status,
                    )
            else:
                revocation_adapters.revoke(provider, token, hint)
        except (AuthlibBaseError, RequestException, ProviderError) as exception:
            failure = provider_error_from(exception, [token, provider.client_secret])
            log.warning(
                "Revocation of %s failed: user %s, integration %s, provider %s, error %s", hint, *ids, failure.error
            )
            errors.append(f"{hint.replace('_', ' ')}: {failure.message}")
            audit.record(
                "credential.revoke_at_provider",
                audit.Outcome.FAILURE,
                detail=failure.message,
                token_type_hint=hint,
                attempt=credential.revocation_attempts + 1,
                **event,
            )
            continue
        setattr(credential, hint, None)
        audit.record(
            "credential.revoke_at_provider", token_type_hint=hint, attempt=credential.revocation_attempts + 1, **event
        )
        log.info("Revoked %s at provider: user %s, integration %s, provider %s", hint, *ids)

    credential.revocation_attempts += 1
    credential.revocation_attempted_at = utcnow()
    if not errors:
        audit.record("credential.revoke", **event)
        db.session.delete(credential)
        db.session.commit()
        return RevocationOutcome(completed=True)

    audit.record("credential.revoke", audit.Outcome.FAILURE, detail="revocation pending", **event)

    message = f"{provider.name} did not confirm the revocation ({'; '.join(errors)})."
    credential.revocation_error = message[:1000]
    db.session.commit()
    return RevocationOutcome(completed=False, error=message)


def _error_code(response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return clean_error_code(body["error"])
    return "server_error"
