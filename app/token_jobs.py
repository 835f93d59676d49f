"""The background job: refresh tokens before they expire and retry pending revocations.

Several copies may run at once, on one host or several. Each credential is claimed
under its row lock (``app.locking``) and checked again after the lock is granted, so
a credential that another copy refreshed or is refreshing is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError

from app import audit
from app.extensions import db
from app.locking import lock_rows
from app.models import Credential, CredentialStatus, utcnow
from app.refresh import RefreshError, claim_and_refresh, retry_delay
from app.revocation import revoke_credential

log = logging.getLogger(__name__)


class GiveUpError(Exception):
    """The revocation cannot be given up, for the reason in the message."""


@dataclass
class JobSummary:
    refreshed: int = 0
    refresh_failed: int = 0
    #: Credentials another copy of the job refreshed or held while this one ran.
    skipped: int = 0
    revoked: int = 0
    revocation_failed: int = 0

    def __str__(self) -> str:
        return (
            f"{self.refreshed} refreshed, {self.refresh_failed} refresh failed, {self.skipped} skipped, "
            f"{self.revoked} revoked, {self.revocation_failed} revocation still pending"
        )


def due_for_refresh(now: datetime | None = None) -> list[int]:
    """Return the ids of active credentials whose access token expires within ``REFRESH_MARGIN``.

    Left out: credentials refreshed less than ``REFRESH_MIN_INTERVAL`` seconds ago and
    those whose next attempt after a failure is still in the future.
    """
    now = now or utcnow()
    config = current_app.config
    statement = (
        select(Credential.id)
        .where(
            Credential.status == CredentialStatus.ACTIVE,
            Credential.refresh_token_ciphertext.is_not(None),
            or_(
                Credential.access_token_ciphertext.is_(None),
                Credential.access_token_expires_at <= now + timedelta(seconds=config["REFRESH_MARGIN"]),
            ),
            or_(Credential.next_refresh_attempt_at.is_(None), Credential.next_refresh_attempt_at <= now),
            or_(
                Credential.refreshed_at.is_(None),
                Credential.refreshed_at <= now - timedelta(seconds=config["REFRESH_MIN_INTERVAL"]),
            ),
        )
        .order_by(Credential.access_token_expires_at, Credential.id)
    )
    return list(db.session.scalars(statement))


def revocation_is_due(credential: Credential, now: datetime | None = None) -> bool:
    """Whether a pending revocation waited long enough since its last attempt (exponential backoff)."""
    if credential.status != CredentialStatus.REVOCATION_PENDING:
        return False
    if credential.revocation_attempted_at is None:
        return True
    return credential.revocation_attempted_at + retry_delay(credential.revocation_attempts) <= (now or utcnow())


def due_for_revocation(now: datetime | None = None) -> list[int]:
    """Return the ids of credentials in *revocation pending* whose backoff has passed."""
    now = now or utcnow()
    pending = db.session.scalars(
        select(Credential).where(Credential.status == CredentialStatus.REVOCATION_PENDING).order_by(Credential.id)
    ).all()
    return [credential.id for credential in pending if revocation_is_due(credential, now)]


def run_once(should_stop: Callable[[], bool] = lambda: False) -> JobSummary:
    """Refresh every due credential, then retry every due revocation; one pass of the job."""
    summary = JobSummary()
    for credential_id in due_for_refresh():
        if should_stop():
            return summary
        _refresh_one(credential_id, summary)
    for credential_id in due_for_revocation():
        if should_stop():
            return summary
        _retry_revocation(credential_id, summary)
    return summary


def _refresh_one(credential_id: int, summary: JobSummary) -> None:
    try:
        refreshed = claim_and_refresh(credential_id, source="job", skip_locked=True, respect_backoff=True)
    except RefreshError as error:
        # refresh.py logged and audited the failure with the ids.
        log.debug("Job refresh of credential %s failed: %s", credential_id, error.message)
        summary.refresh_failed += 1
        return
    if refreshed:
        summary.refreshed += 1
    else:
        summary.skipped += 1


def _retry_revocation(credential_id: int, summary: JobSummary) -> None:
    """Claim a pending revocation under the row lock, then retry it.

    ``revoke_credential`` commits before it calls the provider, which ends the lock, so
    the claim is the new ``revocation_attempted_at``: another copy of the job sees the
    revocation as not due for ``retry_delay`` and leaves it alone.
    """
    # NOTE: a claim lasts RETRY_BACKOFF_BASE seconds at least; a revocation call that
    # takes longer (two tokens, each up to the connect and read timeouts) could be
    # retried by a second host at the same time, which providers treat like a repeat.
    rows = lock_rows(select(Credential).where(Credential.id == credential_id), skip_locked=True)
    if not rows or not revocation_is_due(rows[0]):
        db.session.commit()
        summary.skipped += 1
        return
    credential = rows[0]
    credential.revocation_attempted_at = utcnow()
    db.session.commit()

    log.info(
        "Revocation retry started: credential %s, user %s, integration %s, attempt %s",
        credential.id,
        credential.user_id,
        credential.integration_id,
        credential.revocation_attempts + 1,
    )
    outcome = revoke_credential(credential, actor_user_id=None)
    if outcome.completed:
        summary.revoked += 1
    else:
        summary.revocation_failed += 1


def give_up_revocation(credential: Credential, actor_user_id: int | None = None) -> None:
    """Delete a credential in *revocation pending* without the provider's confirmation.

    The audit event says that the tokens may still be live at the provider, because
    nobody revoked them there.
    """
    if credential.status != CredentialStatus.REVOCATION_PENDING:
        raise GiveUpError(
            f"the credential of user {credential.user_id} for {credential.integration.name} is not waiting "
            "for revocation; revoke it first"
        )
    integration = credential.integration
    provider = integration.provider
    audit.record(
        "credential.revocation_given_up",
        actor_user_id=actor_user_id,
        subject_user_id=credential.user_id,
        integration_id=integration.id,
        provider_id=provider.id,
        detail=(
            f"deleted after {credential.revocation_attempts} failed revocation attempts; the tokens may still "
            f"be live at {provider.name} until they expire or are revoked there"
        )[:1000],
        attempts=credential.revocation_attempts,
        commit=False,
    )
    db.session.delete(credential)
    db.session.commit()
    log.warning(
        "Revocation given up, tokens may still be live: user %s, integration %s, provider %s, actor %s",
        credential.user_id,
        integration.id,
        provider.name,
        actor_user_id,
    )


def run_safely(should_stop: Callable[[], bool]) -> JobSummary | None:
    """Run one pass and log, rather than raise, a database error, so that a loop keeps going."""
    try:
        summary = run_once(should_stop)
    except SQLAlchemyError as error:
        db.session.rollback()
        log.error("Token job pass failed, retrying at the next interval: %s", error)
        return None
    log.info("Token job pass finished: %s", summary)
    return summary
