"""Local user accounts and their roles."""

from __future__ import annotations

import logging
import secrets

from sqlalchemy import select

from app.extensions import db
from app.models import ROLES, Role, User

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12


class AccountError(ValueError):
    """Invalid account data; the message names the field and the fix."""


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password is too short: use at least {MIN_PASSWORD_LENGTH} characters")


def find_user(username: str) -> User | None:
    return db.session.scalar(select(User).where(User.username == username))


def roles_named(names: list[str] | tuple[str, ...]) -> list[Role]:
    unknown = sorted(set(names) - set(ROLES))
    if unknown:
        raise AccountError(f"unknown role {unknown[0]!r}: choose from {', '.join(ROLES)}")
    return list(db.session.scalars(select(Role).where(Role.name.in_(names))))


def create_user(
    username: str,
    password: str,
    roles: list[str] | tuple[str, ...] = (),
    display_name: str = "",
    email: str | None = None,
) -> User:
    """Create an enabled local user; raise AccountError on invalid or taken values."""
    username = username.strip()
    if not username:
        raise AccountError("username is missing")
    if len(username) > 150:
        raise AccountError("username is too long: use at most 150 characters")
    if find_user(username) is not None:
        raise AccountError(f"username {username!r} is already taken")
    validate_password(password)

    user = User(username=username, display_name=display_name.strip(), email=email or None)
    user.set_password(password)
    user.roles = roles_named(list(roles))
    db.session.add(user)
    db.session.commit()
    log.info("User created: user %s, roles %s", user.id, ",".join(sorted(roles)) or "none")
    return user
