"""Local user accounts and their roles."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.extensions import db
from app.models import ROLE_ADMIN, ROLE_USER, ROLES, LoginSession, Role, User, hash_token
from app.offboarding import CredentialRevocation, revoke_all_for_user

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
MAX_DISPLAY_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 320


class AccountError(ValueError):
    """Invalid account data; the message names the field and the fix.

    ``field`` names the input the message is about (``username``, ``password``,
    ``roles``…), so a form can show it next to that input. None means the whole account.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password is too short: use at least {MIN_PASSWORD_LENGTH} characters", field="password")


def find_user(username: str) -> User | None:
    return db.session.scalar(select(User).where(User.username == username))


def roles_named(names: list[str] | tuple[str, ...]) -> list[Role]:
    unknown = sorted(set(names) - set(ROLES))
    if unknown:
        raise AccountError(f"unknown role {unknown[0]!r}: choose from {', '.join(ROLES)}", field="roles")
    return list(db.session.scalars(select(Role).where(Role.name.in_(names))))


def create_user(
    username: str,
    password: str,
    roles: list[str] | tuple[str, ...] = (),
    display_name: str = "",
    email: str | None = None,
    *,
    actor_user_id: int | None = None,
) -> User:
    """Create an enabled local user; raise AccountError on invalid or taken values.

    ``actor_user_id`` is the admin who acted, for the audit trail; None means the system.
    """
    username = username.strip()
    if not username:
        raise AccountError("username is missing", field="username")
    if len(username) > 150:
        raise AccountError("username is too long: use at most 150 characters", field="username")
    if find_user(username) is not None:
        raise AccountError(f"username {username!r} is already taken", field="username")
    display_name = clean_display_name(display_name)
    email = clean_email(email)
    validate_password(password)

    user = User(username=username, display_name=display_name, email=email)
    user.set_password(password)
    user.roles = roles_named(list(roles))
    db.session.add(user)
    db.session.flush()
    audit.record(
        "user.create",
        actor_user_id=actor_user_id,
        subject_user_id=user.id,
        detail=username,
        roles=sorted(set(roles)),
        commit=False,
    )
    db.session.commit()
    log.info("User created: user %s, roles %s", user.id, ",".join(sorted(roles)) or "none")
    return user


def clean_display_name(display_name: str) -> str:
    display_name = display_name.strip()
    if len(display_name) > MAX_DISPLAY_NAME_LENGTH:
        raise AccountError(
            f"display name is too long: use at most {MAX_DISPLAY_NAME_LENGTH} characters", field="display_name"
        )
    return display_name


def clean_email(email: str | None) -> str | None:
    """Return the address stripped, None when empty, or raise AccountError when malformed."""
    email = (email or "").strip()
    if not email:
        return None
    if len(email) > MAX_EMAIL_LENGTH:
        raise AccountError(f"email is too long: use at most {MAX_EMAIL_LENGTH} characters", field="email")
    local_part, at, domain = email.rpartition("@")
    if not at or not local_part or not domain or any(character.isspace() for character in email):
        raise AccountError(f"email {email!r} is invalid: write it as name@example.com", field="email")
    return email


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.username)))


def find_enabled_admin() -> User | None:
    """Return the oldest enabled user with the admin role, if there is one."""
    return db.session.scalar(
        select(User)
        .join(User.roles)
        .where(Role.name == ROLE_ADMIN, User.is_enabled.is_(True))
        .order_by(User.id)
        .limit(1)
    )


def _check_own_account(user: User, acting_user: User | None, role_names: list[str], enabled: bool) -> None:
    """Keep an admin from locking themselves out of the admin pages."""
    if acting_user is None or acting_user.id != user.id:
        return
    if ROLE_ADMIN not in role_names:
        raise AccountError("you cannot remove the admin role from your own account: ask another admin", field="roles")
    if not enabled:
        raise AccountError("you cannot deactivate your own account: ask another admin", field="is_enabled")


def _end_login_sessions(user: User, keep_token: str | None = None) -> None:
    """Sign ``user`` out of every browser, except the session whose raw id is ``keep_token``."""
    statement = delete(LoginSession).where(LoginSession.user_id == user.id)
    if keep_token:
        statement = statement.where(LoginSession.token_hash != hash_token(keep_token))
    db.session.execute(statement)


def _own_session_token(user: User, acting_user: User | None) -> str | None:
    if acting_user is None or acting_user.id != user.id:
        return None
    return acting_user.login_session_token


def _actor_id(actor_user_id: int | None, acting_user: User | None) -> int | None:
    """Return the acting admin's id for the audit trail, from either argument."""
    if actor_user_id is not None:
        return actor_user_id
    return acting_user.id if acting_user is not None else None


def set_roles(
    user: User,
    role_names: list[str] | tuple[str, ...],
    acting_user: User | None = None,
    *,
    actor_user_id: int | None = None,
) -> User:
    """Replace the roles of ``user``, unless ``acting_user`` would remove their own admin role."""
    roles = roles_named(list(role_names))
    _check_own_account(user, acting_user, list(role_names), user.is_enabled)

    user.roles = roles
    audit.record(
        "user.roles",
        actor_user_id=_actor_id(actor_user_id, acting_user),
        subject_user_id=user.id,
        roles=sorted(set(role_names)),
        commit=False,
    )
    db.session.commit()
    log.info("User roles set: user %s, roles %s", user.id, ",".join(sorted(role_names)) or "none")
    return user


def set_enabled(
    user: User,
    enabled: bool,
    acting_user: User | None = None,
    revocations: list[CredentialRevocation] | None = None,
    *,
    actor_user_id: int | None = None,
) -> User:
    """Activate or deactivate ``user``.

    Deactivating also ends their login sessions and revokes each of their credentials at
    the provider; the outcome per credential is appended to ``revocations`` when given.
    """
    _check_own_account(user, acting_user, [role.name for role in user.roles], enabled)

    user.is_enabled = enabled
    if not enabled:
        _end_login_sessions(user)
    audit.record(
        "user.activate" if enabled else "user.deactivate",
        actor_user_id=_actor_id(actor_user_id, acting_user),
        subject_user_id=user.id,
        commit=False,
    )
    db.session.commit()
    log.info("User %s: user %s", "activated" if enabled else "deactivated", user.id)
    if not enabled:
        results = revoke_all_for_user(user, actor_user_id=_actor_id(actor_user_id, acting_user))
        if revocations is not None:
            revocations.extend(results)
    return user


def set_password(
    user: User, password: str, acting_user: User | None = None, *, actor_user_id: int | None = None
) -> User:
    """Set a new password and sign ``user`` out everywhere, except ``acting_user``'s own session."""
    validate_password(password)

    user.set_password(password)
    _end_login_sessions(user, keep_token=_own_session_token(user, acting_user))
    audit.record(
        "user.password", actor_user_id=_actor_id(actor_user_id, acting_user), subject_user_id=user.id, commit=False
    )
    db.session.commit()
    log.info("Password set: user %s", user.id)
    return user


@dataclass
class UserChanges:
    """An admin's edit of an existing account."""

    display_name: str
    email: str | None
    roles: list[str]
    is_enabled: bool
    #: None or empty keeps the current password.
    password: str | None = None


def update_user(
    user: User,
    changes: UserChanges,
    acting_user: User | None = None,
    revocations: list[CredentialRevocation] | None = None,
    *,
    actor_user_id: int | None = None,
) -> User:
    """Apply ``changes`` to ``user`` after checking every value, so nothing is saved on AccountError.

    ``acting_user`` cannot remove their own admin role or deactivate themselves. A new
    password or a deactivation signs ``user`` out of their other browsers. A deactivated
    user's credentials are revoked as in ``set_enabled``.
    """
    display_name = clean_display_name(changes.display_name)
    email = clean_email(changes.email)
    roles = roles_named(changes.roles)
    _check_own_account(user, acting_user, changes.roles, changes.is_enabled)
    if changes.password:
        validate_password(changes.password)
    changed = [
        name
        for name, old, new in (
            ("display_name", user.display_name, display_name),
            ("email", user.email, email),
            ("roles", {role.name for role in user.roles}, set(changes.roles)),
            ("is_enabled", user.is_enabled, changes.is_enabled),
            ("password", False, bool(changes.password)),
        )
        if old != new
    ]

    user.display_name = display_name
    user.email = email
    user.roles = roles
    if changes.password:
        user.set_password(changes.password)
        _end_login_sessions(user, keep_token=_own_session_token(user, acting_user))
    if user.is_enabled and not changes.is_enabled:
        _end_login_sessions(user)
    user.is_enabled = changes.is_enabled
    audit.record(
        "user.update",
        actor_user_id=_actor_id(actor_user_id, acting_user),
        subject_user_id=user.id,
        detail=", ".join(changed),
        changed=changed,
        roles=sorted(set(changes.roles)),
        enabled=user.is_enabled,
        commit=False,
    )
    db.session.commit()
    log.info(
        "User updated: user %s, roles %s, enabled %s, password changed %s",
        user.id,
        ",".join(sorted(changes.roles)) or "none",
        user.is_enabled,
        bool(changes.password),
    )
    if not user.is_enabled:
        results = revoke_all_for_user(user, actor_user_id=_actor_id(actor_user_id, acting_user))
        if revocations is not None:
            revocations.extend(results)
    return user


def ensure_admin(username: str, password: str) -> tuple[User, bool]:
    """Create ``username`` with the admin and personal_auth_user roles unless an enabled admin exists.

    Return the admin and whether it was created. Safe to run from several processes at
    once: the one that loses the race on the unique username returns the winner's admin.
    """
    existing = find_enabled_admin()
    if existing is not None:
        return existing, False

    user_with_name = find_user(username.strip())
    if user_with_name is not None:
        raise AccountError(
            f"username {user_with_name.username!r} is already taken by a user who is not an enabled admin",
            field="username",
        )
    try:
        return create_user(username, password, roles=(ROLE_ADMIN, ROLE_USER)), True
    except IntegrityError:
        db.session.rollback()
        existing = find_enabled_admin()
        if existing is None:
            raise
        return existing, False
