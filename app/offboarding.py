"""Revoking every credential of a user, for example when their account is deactivated."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from app.extensions import db
from app.models import Credential, User
from app.revocation import RevocationOutcome, revoke_credential

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CredentialRevocation:
    """The outcome of revoking one credential, with the names needed to report it."""

    user_label: str
    integration_id: int
    integration_name: str
    provider_name: str
    outcome: RevocationOutcome

    @property
    def summary(self) -> str:
        """One sentence for a flash message or a CLI line."""
        if self.outcome.completed:
            return f"{self.integration_name}: revoked."
        return f"{self.integration_name}: revocation pending. {self.outcome.error}"


def revoke_credentials(credentials: list[Credential], actor_user_id: int | None = None) -> list[CredentialRevocation]:
    """Revoke each credential at its provider and return the outcome of each, in order.

    A failure leaves that credential in *revocation pending* and does not stop the others.
    """
    results = []
    for credential in credentials:
        integration = credential.integration
        names = (credential.user.label, integration.id, integration.name, integration.provider.name)
        outcome = revoke_credential(credential, actor_user_id=actor_user_id)
        results.append(CredentialRevocation(*names, outcome))
    return results


def revoke_all_for_user(user: User, actor_user_id: int | None = None) -> list[CredentialRevocation]:
    """Revoke every credential of ``user``, including ones already waiting for revocation."""
    statement = select(Credential).where(Credential.user_id == user.id).order_by(Credential.id)
    credentials = list(db.session.scalars(statement))
    results = revoke_credentials(credentials, actor_user_id)
    pending = sum(1 for result in results if not result.outcome.completed)
    log.info("User credentials revoked: user %s, %s revoked, %s pending", user.id, len(results) - pending, pending)
    return results
