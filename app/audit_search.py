"""Finding audit events by filter, a page at a time, and exporting them as CSV.

Nothing here reads the request: views pass the query arguments as a plain mapping.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select

from app.audit import AuditEvent, Outcome
from app.extensions import db
from app.models import Integration, User

PAGE_SIZE = 50
#: Rows fetched from the database at a time while a CSV export streams.
CSV_BATCH_SIZE = 500
#: Leading characters that make spreadsheet programs read a cell as a formula. A cell
#: that starts with one gets a leading apostrophe, so spreadsheets show it as text.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "id",
    "occurred_at",
    "action",
    "outcome",
    "actor_user_id",
    "actor_username",
    "actor_service",
    "subject_user_id",
    "subject_username",
    "integration_id",
    "integration_name",
    "provider_id",
    "detail",
    "data",
)


@dataclass
class AuditFilter:
    """Conditions on audit events. An empty value matches everything."""

    action: str = ""
    outcome: str = ""
    #: Matches events where this user acted or was the subject.
    username: str = ""
    integration_id: int | None = None
    #: First and last day, both included, in UTC.
    date_from: date | None = None
    date_to: date | None = None
    #: Messages for invalid arguments, by argument name.
    errors: dict[str, str] = field(default_factory=dict)

    def as_args(self) -> dict[str, str]:
        """Return the non-empty conditions as query arguments, for links that keep the filter."""
        values = {
            "action": self.action,
            "outcome": self.outcome,
            "user": self.username,
            "integration": str(self.integration_id or ""),
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
        }
        return {name: value for name, value in values.items() if value}


def parse_filter(args: Mapping[str, str]) -> AuditFilter:
    """Read a filter from query arguments, noting each invalid one in ``errors``."""
    audit_filter = AuditFilter(
        action=args.get("action", "").strip(),
        outcome=args.get("outcome", "").strip(),
        username=args.get("user", "").strip(),
    )
    if audit_filter.outcome and audit_filter.outcome not in {outcome.value for outcome in Outcome}:
        audit_filter.errors["outcome"] = f"Outcome {audit_filter.outcome!r} is invalid: use success or failure."
    integration = args.get("integration", "").strip()
    if integration:
        if integration.isdigit():
            audit_filter.integration_id = int(integration)
        else:
            audit_filter.errors["integration"] = f"Integration {integration!r} is invalid: choose one from the list."
    for name, attribute in (("from", "date_from"), ("to", "date_to")):
        value = args.get(name, "").strip()
        if not value:
            continue
        try:
            setattr(audit_filter, attribute, date.fromisoformat(value))
        except ValueError:
            audit_filter.errors[name] = f"Date {value!r} is invalid: write it as YYYY-MM-DD."
    if audit_filter.date_from and audit_filter.date_to and audit_filter.date_from > audit_filter.date_to:
        audit_filter.errors["to"] = "The last day is before the first day: swap them."
    return audit_filter


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def filtered_query(audit_filter: AuditFilter) -> Select:
    """Return the events that match, newest first."""
    query = select(AuditEvent).order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
    if audit_filter.action:
        query = query.where(AuditEvent.action == audit_filter.action)
    if audit_filter.outcome:
        query = query.where(AuditEvent.outcome == audit_filter.outcome)
    if audit_filter.username:
        user_id = db.session.scalar(select(User.id).where(User.username == audit_filter.username))
        # An unknown username matches nothing rather than everything.
        user_id = -1 if user_id is None else user_id
        query = query.where(or_(AuditEvent.actor_user_id == user_id, AuditEvent.subject_user_id == user_id))
    if audit_filter.integration_id is not None:
        query = query.where(AuditEvent.integration_id == audit_filter.integration_id)
    if audit_filter.date_from:
        query = query.where(AuditEvent.occurred_at >= _start_of(audit_filter.date_from))
    if audit_filter.date_to:
        query = query.where(AuditEvent.occurred_at < _start_of(audit_filter.date_to + timedelta(days=1)))
    return query


@dataclass
class AuditPage:
    events: list[AuditEvent]
    number: int
    page_count: int
    total: int
    #: Usernames and integration names of the ids on this page.
    usernames: dict[int, str]
    integration_names: dict[int, str]


def search(audit_filter: AuditFilter, page: int = 1, page_size: int = PAGE_SIZE) -> AuditPage:
    """Return one page of matching events. A page number past the end returns the last page."""
    query = filtered_query(audit_filter)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    page_count = max(1, math.ceil(total / page_size))
    page = min(max(page, 1), page_count)
    events = list(db.session.scalars(query.limit(page_size).offset((page - 1) * page_size)))
    usernames, integration_names = _names_for(events)
    return AuditPage(events, page, page_count, total, usernames, integration_names)


def _names_for(events: list[AuditEvent]) -> tuple[dict[int, str], dict[int, str]]:
    user_ids = {event.actor_user_id for event in events} | {event.subject_user_id for event in events}
    integration_ids = {event.integration_id for event in events}
    user_ids.discard(None)
    integration_ids.discard(None)
    usernames: dict[int, str] = {}
    integration_names: dict[int, str] = {}
    if user_ids:
        rows = db.session.execute(select(User.id, User.username).where(User.id.in_(user_ids)))
        usernames = {user_id: username for user_id, username in rows}
    if integration_ids:
        rows = db.session.execute(select(Integration.id, Integration.name).where(Integration.id.in_(integration_ids)))
        integration_names = {integration_id: name for integration_id, name in rows}
    return usernames, integration_names


def known_actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


def csv_cell(value: Any) -> Any:
    """Return ``value`` safe for a spreadsheet: text that could start a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_lines(audit_filter: AuditFilter) -> Iterator[str]:
    """Yield the matching events as CSV lines, header first, in batches from the database."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values) -> str:
        writer.writerow([csv_cell(value) for value in values])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(CSV_COLUMNS)
    last_seen: tuple[datetime, int] | None = None
    while True:
        query = filtered_query(audit_filter)
        if last_seen is not None:
            occurred_at, event_id = last_seen
            query = query.where(
                or_(
                    AuditEvent.occurred_at < occurred_at,
                    (AuditEvent.occurred_at == occurred_at) & (AuditEvent.id < event_id),
                )
            )
        events = list(db.session.scalars(query.limit(CSV_BATCH_SIZE)))
        if not events:
            return
        usernames, integration_names = _names_for(events)
        for event in events:
            yield line(_csv_row(event, usernames, integration_names))
        last_seen = (events[-1].occurred_at, events[-1].id)


def _csv_row(event: AuditEvent, usernames: dict[int, str], integration_names: dict[int, str]) -> list[Any]:
    return [
        event.id,
        event.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        event.action,
        event.outcome,
        event.actor_user_id if event.actor_user_id is not None else "",
        usernames.get(event.actor_user_id, "") if event.actor_user_id else "",
        event.actor_service or "",
        event.subject_user_id if event.subject_user_id is not None else "",
        usernames.get(event.subject_user_id, "") if event.subject_user_id else "",
        event.integration_id if event.integration_id is not None else "",
        integration_names.get(event.integration_id, "") if event.integration_id else "",
        event.provider_id if event.provider_id is not None else "",
        event.detail,
        json.dumps(event.data, sort_keys=True) if event.data else "",
    ]
