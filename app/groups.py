"""Groups of users, and integrations limited to the members of named groups."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, func, or_, select

from app import audit
from app.extensions import db
from app.models import Group, Integration, User, group_members, integration_groups

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 100


class GroupError(ValueError):
    """Invalid group data; ``field`` names the input the message is about."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def visible_to(user: User) -> ColumnElement[bool]:
    """Return a condition on ``Integration`` that is true when ``user`` may use it.

    An integration without allowed groups is open to everyone; otherwise ``user`` must
    be a member of one of them. Both tests are subqueries, so a listing stays one query.
    """
    restricted = exists().where(integration_groups.c.integration_id == Integration.id)
    member = exists().where(
        integration_groups.c.integration_id == Integration.id,
        integration_groups.c.group_id == group_members.c.group_id,
        group_members.c.user_id == user.id,
    )
    return or_(~restricted, member)


def is_allowed(user: User, integration: Integration) -> bool:
    """Whether ``user`` may use ``integration``, by the same rule as ``visible_to``.

    NOTE: leaving a group hides the integration but does not revoke tokens stored before.
    Code that hands out tokens checks this, and admins revoke such credentials on the
    integration's connected users page, which flags them.
    """
    allowed = {group.id for group in integration.allowed_groups}
    return not allowed or bool(allowed & {group.id for group in user.groups})


def list_groups() -> list[Group]:
    return list(db.session.scalars(select(Group).order_by(Group.name)))


def find_group(name: str) -> Group | None:
    return db.session.scalar(select(Group).where(func.lower(Group.name) == name.strip().lower()))


def groups_with_ids(group_ids: Iterable[int]) -> list[Group]:
    """Return the groups with these ids; raise GroupError naming an id that does not exist."""
    wanted = set(group_ids)
    if not wanted:
        return []
    groups = list(db.session.scalars(select(Group).where(Group.id.in_(wanted)).order_by(Group.name)))
    missing = wanted - {group.id for group in groups}
    if missing:
        raise GroupError(f"group {min(missing)} does not exist: reload the page and choose again", field="groups")
    return groups


@dataclass
class GroupInput:
    name: str
    description: str = ""


def save_group(data: GroupInput, existing: Group | None = None, actor_user_id: int | None = None) -> Group:
    """Create or rename a group; raise GroupError on a missing, long or taken name."""
    name = data.name.strip()
    if not name:
        raise GroupError("name is missing", field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise GroupError(f"name is too long: use at most {MAX_NAME_LENGTH} characters", field="name")
    duplicate = find_group(name)
    if duplicate is not None and duplicate is not existing:
        raise GroupError(f"a group named {duplicate.name!r} already exists", field="name")

    group = existing or Group()
    group.name = name
    group.description = data.description.strip()
    if existing is None:
        db.session.add(group)
    db.session.flush()
    audit.record(
        "group.update" if existing else "group.create",
        actor_user_id=actor_user_id,
        detail=f"group {group.id} ({name})",
        commit=False,
    )
    db.session.commit()
    log.info("Group %s: group %s", "updated" if existing else "created", group.id)
    return group


def delete_blocker(group: Group) -> str | None:
    """Return why ``group`` cannot be deleted, or None.

    Deleting the only allowed group of an integration would open it to every user, so
    the admin changes that integration first.
    """
    sole = [integration.name for integration in group.integrations if len(integration.allowed_groups) == 1]
    if not sole:
        return None
    return (
        f"Group {group.name} is the only allowed group of {', '.join(sole)}. Deleting it would open "
        "them to every user: choose other allowed groups for them first."
    )


def delete_group(group: Group, actor_user_id: int | None = None) -> None:
    """Delete a group; raise GroupError when ``delete_blocker`` names a reason not to."""
    blocker = delete_blocker(group)
    if blocker:
        raise GroupError(blocker)
    group_id, name = group.id, group.name
    db.session.delete(group)
    audit.record("group.delete", actor_user_id=actor_user_id, detail=f"group {group_id} ({name})", commit=False)
    db.session.commit()
    log.info("Group deleted: group %s", group_id)


def set_user_groups(user: User, groups: list[Group], actor_user_id: int | None = None) -> None:
    """Replace the groups of ``user``."""
    if {group.id for group in user.groups} == {group.id for group in groups}:
        return
    user.groups = groups
    audit.record(
        "user.groups",
        actor_user_id=actor_user_id,
        subject_user_id=user.id,
        detail="groups: " + (", ".join(sorted(group.name for group in groups)) or "none"),
        commit=False,
    )
    db.session.commit()
    log.info("User groups set: user %s, groups %s", user.id, ",".join(str(group.id) for group in groups) or "none")


def set_integration_groups(integration: Integration, groups: list[Group], actor_user_id: int | None = None) -> None:
    """Limit ``integration`` to the members of ``groups``; an empty list opens it to everyone."""
    if {group.id for group in integration.allowed_groups} == {group.id for group in groups}:
        return
    integration.allowed_groups = groups
    audit.record(
        "integration.groups",
        actor_user_id=actor_user_id,
        integration_id=integration.id,
        provider_id=integration.provider_id,
        detail="allowed groups: " + (", ".join(sorted(group.name for group in groups)) or "everyone"),
        commit=False,
    )
    db.session.commit()
    log.info(
        "Integration groups set: integration %s, groups %s",
        integration.id,
        ",".join(str(group.id) for group in groups) or "everyone",
    )
