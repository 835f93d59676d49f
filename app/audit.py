"""Audit events: who did what, when, to which ids, and the outcome. Never a secret."""

from __future__ import annotations

import enum
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models import UTCDateTime, utcnow

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


class AuditEvent(db.Model):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    #: Dotted event name, for example ``credential.revoke`` or ``provider.update``.
    action: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    #: The signed-in user who acted; None for the system (background jobs) or an API key.
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    #: The internal service whose API key was used, when an API call acted.
    actor_service: Mapped[str | None] = mapped_column(String(100))
    #: The user whose credential the event concerns.
    subject_user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    integration_id: Mapped[int | None] = mapped_column(Integer, index=True)
    provider_id: Mapped[int | None] = mapped_column(Integer)
    #: Short reason or error code, already cleaned of secrets.
    detail: Mapped[str] = mapped_column(String(1000), default="")
    #: Further non-secret ids and values, such as a token type hint or an attempt number.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def record(
    action: str,
    outcome: Outcome | str = Outcome.SUCCESS,
    *,
    actor_user_id: int | None = None,
    actor_service: str | None = None,
    subject_user_id: int | None = None,
    integration_id: int | None = None,
    provider_id: int | None = None,
    detail: str = "",
    commit: bool = True,
    **data: Any,
) -> AuditEvent:
    """Add an audit event and, unless ``commit`` is false, commit it.

    Callers pass ids and cleaned messages only; no token, code, secret or password.
    """
    event = AuditEvent(
        action=action,
        outcome=str(outcome),
        actor_user_id=actor_user_id,
        actor_service=actor_service,
        subject_user_id=subject_user_id,
        integration_id=integration_id,
        provider_id=provider_id,
        detail=detail[:1000],
        data=data,
    )
    db.session.add(event)
    if commit:
        db.session.commit()
    return event
