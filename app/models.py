"""Database models. Rules about a row (is this credential usable, which dashboard
section does it belong to) live here as methods and properties."""

from __future__ import annotations

import enum
import hashlib
from datetime import UTC, datetime, timedelta

from flask import current_app
from flask_login import UserMixin
from sqlalchemy import JSON, Boolean, DateTime, Enum, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db

ROLE_USER = "personal_auth_user"
ROLE_ADMIN = "admin"
ROLES = (ROLE_USER, ROLE_ADMIN)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every database.

    SQLite drops the offset, so values are stored naive in UTC and marked UTC on load.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def keyring():
    return current_app.config["KEYRING"]


class GrantType(enum.StrEnum):
    AUTHORIZATION_CODE = "authorization_code"
    PASSWORD = "password"


class ClientAuthMethod(enum.StrEnum):
    CLIENT_SECRET_BASIC = "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post"


class IntegrationType(enum.StrEnum):
    PERSONAL = "personal"
    SYSTEM = "system"


class CredentialStatus(enum.StrEnum):
    ACTIVE = "active"
    #: The user asked to revoke, and the provider has not confirmed yet. The tokens are
    #: kept only to retry the revocation and are never handed out.
    REVOCATION_PENDING = "revocation_pending"
    #: The provider rejected the refresh token for good (``invalid_grant`` and the like).
    #: The tokens are never handed out, and the user must connect again.
    NEEDS_RECONNECT = "needs_reconnect"


class CredentialState(enum.StrEnum):
    """State of a dashboard card, derived from the status and the token expiry times."""

    ACTIVE = "active"
    EXPIRING_SOON = "expiring_soon"
    NEEDS_RECONNECT = "needs_reconnect"
    REVOCATION_PENDING = "revocation_pending"
    #: Both tokens expired; the card is back under *Integrations I can use*.
    EXPIRED = "expired"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


def _enum(enum_class: type[enum.Enum], name: str) -> Enum:
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        validate_strings=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
    )


user_roles = db.Table(
    "user_roles",
    db.Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    db.Column("role_id", ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
)


class Role(db.Model):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


group_members = db.Table(
    "group_members",
    db.Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    db.Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)

#: Groups whose members may use an integration; an integration without rows here is open
#: to every personal_auth_user.
integration_groups = db.Table(
    "integration_groups",
    db.Column("integration_id", ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True),
    db.Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Group(db.Model):
    """A named set of users, such as a team, that integrations can be limited to."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Also the value matched against the identity provider's groups claim at sign-in.
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[User]] = relationship(
        secondary=group_members, back_populates="groups", order_by="User.username"
    )
    integrations: Mapped[list[Integration]] = relationship(
        secondary=integration_groups, back_populates="allowed_groups", order_by="Integration.name"
    )


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("sso_issuer", "sso_subject", name="uq_users_sso_identity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    #: Issuer and ``sub`` of the single sign-on identity; None for a local account.
    sso_issuer: Mapped[str | None] = mapped_column(String(500))
    sso_subject: Mapped[str | None] = mapped_column(String(255))

    roles: Mapped[list[Role]] = relationship(secondary=user_roles, lazy="selectin")
    groups: Mapped[list[Group]] = relationship(secondary=group_members, back_populates="members", order_by="Group.name")

    #: Raw id of the login session this object was loaded for; Flask-Login stores it in
    #: the cookie through ``get_id``.
    login_session_token = None

    def set_password(self, password: str) -> None:
        # Werkzeug 3 defaults to scrypt, a memory-hard hash.
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return self.password_hash is not None and check_password_hash(self.password_hash, password)

    def has_role(self, name: str) -> bool:
        return any(role.name == name for role in self.roles)

    @property
    def is_active(self) -> bool:
        return self.is_enabled

    @property
    def label(self) -> str:
        return self.display_name or self.username

    @property
    def is_sso(self) -> bool:
        """Whether the user signs in through the identity provider, which then sets their groups."""
        return self.sso_subject is not None

    def get_id(self) -> str | None:
        return self.login_session_token


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest stored in place of a random session or state token."""
    return hashlib.sha256(token.encode()).hexdigest()


class LoginSession(db.Model):
    """A signed-in browser. The cookie contains the raw id and the table its hash, so
    a copy of the database cannot be used to sign in."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class Provider(db.Model):
    """An OAuth 2.0 authorization server registered by an admin."""

    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    client_id: Mapped[str] = mapped_column(String(500))
    client_secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    authorization_url: Mapped[str | None] = mapped_column(String(2000))
    token_url: Mapped[str] = mapped_column(String(2000))
    revocation_url: Mapped[str | None] = mapped_column(String(2000))
    default_scopes: Mapped[str] = mapped_column(String(2000), default="")
    grant_type: Mapped[GrantType] = mapped_column(_enum(GrantType, "grant_type"))
    use_pkce: Mapped[bool] = mapped_column(Boolean, default=True)
    client_auth_method: Mapped[ClientAuthMethod] = mapped_column(
        _enum(ClientAuthMethod, "client_auth_method"), default=ClientAuthMethod.CLIENT_SECRET_BASIC
    )
    #: Issuer identifier from discovery metadata; when set, an ``iss`` parameter on the
    #: authorization response must equal it (RFC 9207).
    issuer: Mapped[str | None] = mapped_column(String(2000))
    #: Extra query parameters for the authorization request, such as
    #: ``{"access_type": "offline", "prompt": "consent"}``.
    extra_authorization_params: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: Separator of the ``scope`` value in requests; most providers use a space.
    scope_separator: Mapped[str] = mapped_column(String(4), default=" ")
    #: Access token lifetime in seconds assumed when a token response has no ``expires_in``;
    #: None means the token does not expire until refreshed or revoked.
    default_token_lifetime: Mapped[int | None] = mapped_column(Integer)
    #: Whether the provider issues a new refresh token on every refresh; None if unknown.
    refresh_token_rotates: Mapped[bool | None] = mapped_column(Boolean)
    #: How tokens are revoked: ``rfc7009`` or the name of a revocation adapter.
    revocation_method: Mapped[str] = mapped_column(String(40), default="rfc7009")
    #: Key of the catalog template the provider was created from, if any.
    catalog_key: Mapped[str | None] = mapped_column(String(60))
    #: Whether an authorization response without ``iss`` is rejected, because the
    #: provider's metadata has ``authorization_response_iss_parameter_supported: true``.
    issuer_parameter_required: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    integrations: Mapped[list[Integration]] = relationship(back_populates="provider")

    def _secret_context(self) -> str:
        if self.id is None:
            raise RuntimeError("flush the provider before setting its client secret")
        return f"provider:{self.id}:client_secret"

    def set_client_secret(self, secret: str) -> None:
        self.client_secret_ciphertext = keyring().encrypt(secret, self._secret_context())

    @property
    def client_secret(self) -> str | None:
        if self.client_secret_ciphertext is None:
            return None
        return keyring().decrypt(self.client_secret_ciphertext, self._secret_context())

    @property
    def has_client_secret(self) -> bool:
        return self.client_secret_ciphertext is not None


class Integration(db.Model):
    """A use of a provider: what the company's services do on a user's behalf."""

    __tablename__ = "integrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), index=True)
    scopes: Mapped[str | None] = mapped_column(String(2000))
    integration_type: Mapped[IntegrationType] = mapped_column(
        _enum(IntegrationType, "integration_type"), default=IntegrationType.PERSONAL
    )
    api_base_url: Mapped[str | None] = mapped_column(String(2000))
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    provider: Mapped[Provider] = relationship(back_populates="integrations", lazy="joined")
    #: Only members of these groups see and connect the integration; empty means everyone.
    allowed_groups: Mapped[list[Group]] = relationship(
        secondary=integration_groups, back_populates="integrations", order_by="Group.name"
    )

    @property
    def requested_scopes(self) -> str:
        """Scopes sent to the provider: the integration's own, else the provider's default."""
        return (self.scopes if self.scopes is not None else self.provider.default_scopes).strip()

    @property
    def dom_id(self) -> str:
        return f"integration-{self.id}"


class Credential(db.Model):
    """One user's tokens for one integration, encrypted and bound to this row."""

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("user_id", "integration_id", name="uq_credentials_user_integration"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), index=True)
    status: Mapped[CredentialStatus] = mapped_column(
        _enum(CredentialStatus, "credential_status"), default=CredentialStatus.ACTIVE
    )
    access_token_ciphertext: Mapped[str | None] = mapped_column(Text)
    refresh_token_ciphertext: Mapped[str | None] = mapped_column(Text)
    token_type: Mapped[str] = mapped_column(String(40), default="Bearer")
    granted_scopes: Mapped[str] = mapped_column(String(2000), default="")
    access_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: None when the provider stated no lifetime; such a refresh token counts as unexpired.
    refresh_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revocation_error: Mapped[str | None] = mapped_column(String(1000))
    revocation_attempts: Mapped[int] = mapped_column(Integer, default=0)
    revocation_attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the refresh token grant last succeeded.
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Refresh failures in a row; reset by a successful refresh or a new connection.
    refresh_attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: The background job does not try to refresh again before this time.
    next_refresh_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The last refresh failure, cleaned of secrets and safe to show.
    refresh_error: Mapped[str | None] = mapped_column(String(1000))

    user: Mapped[User] = relationship()
    integration: Mapped[Integration] = relationship()

    def _context(self, field: str) -> str:
        return f"credential:{self.user_id}:{self.integration_id}:{field}"

    def _encrypt(self, value: str | None, field: str) -> str | None:
        return None if value is None else keyring().encrypt(value, self._context(field))

    def _decrypt(self, ciphertext: str | None, field: str) -> str | None:
        return None if ciphertext is None else keyring().decrypt(ciphertext, self._context(field))

    @property
    def access_token(self) -> str | None:
        return self._decrypt(self.access_token_ciphertext, "access_token")

    @access_token.setter
    def access_token(self, value: str | None) -> None:
        self.access_token_ciphertext = self._encrypt(value, "access_token")

    @property
    def refresh_token(self) -> str | None:
        return self._decrypt(self.refresh_token_ciphertext, "refresh_token")

    @refresh_token.setter
    def refresh_token(self, value: str | None) -> None:
        self.refresh_token_ciphertext = self._encrypt(value, "refresh_token")

    def has_valid_access_token(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        if self.access_token_ciphertext is None:
            return False
        return self.access_token_expires_at is None or self.access_token_expires_at > now

    def has_valid_refresh_token(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        if self.refresh_token_ciphertext is None:
            return False
        return self.refresh_token_expires_at is None or self.refresh_token_expires_at > now

    def is_usable(self, now: datetime | None = None) -> bool:
        """Whether the app may use these tokens: active, with an unexpired access or refresh token."""
        if self.status != CredentialStatus.ACTIVE:
            return False
        return self.has_valid_access_token(now) or self.has_valid_refresh_token(now)

    def belongs_in_my_integrations(self, now: datetime | None = None) -> bool:
        """Whether the card sits under *My Integrations*.

        A credential waiting for revocation stays there too, so that the user sees that
        something may still be live at the provider, and so does one that needs a
        reconnect, so that the user sees what to repair.
        """
        if self.status in (CredentialStatus.REVOCATION_PENDING, CredentialStatus.NEEDS_RECONNECT):
            return True
        return self.is_usable(now)

    @property
    def expires_at(self) -> datetime | None:
        """When the app loses access without renewal: the later of the two token expiries."""
        if self.refresh_token_ciphertext is not None:
            return self.refresh_token_expires_at
        return self.access_token_expires_at

    def is_expiring_soon(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        expires_at = self.expires_at
        margin = timedelta(minutes=current_app.config["EXPIRING_SOON_MINUTES"])
        return expires_at is not None and expires_at - now <= margin

    @property
    def granted_scope_list(self) -> list[str]:
        """Scopes the provider granted, in the order it sent them."""
        return self.granted_scopes.split()

    def scopes_not_granted(self, requested: str) -> list[str]:
        """Requested scopes that the provider left out of the grant."""
        granted = set(self.granted_scope_list)
        return [scope for scope in requested.split() if scope not in granted]

    @property
    def state(self) -> CredentialState:
        """The state a dashboard card shows for this credential now."""
        return self.state_at()

    def state_at(self, now: datetime | None = None) -> CredentialState:
        if self.status == CredentialStatus.REVOCATION_PENDING:
            return CredentialState.REVOCATION_PENDING
        if self.status == CredentialStatus.NEEDS_RECONNECT:
            return CredentialState.NEEDS_RECONNECT
        if not self.is_usable(now):
            return CredentialState.EXPIRED
        if self.is_expiring_soon(now):
            return CredentialState.EXPIRING_SOON
        return CredentialState.ACTIVE


class AuthorizationRequest(db.Model):
    """A pending authorization-code redirect: its state and PKCE verifier.

    Bound to one login session and one integration, removed when the callback uses it,
    and rejected after ``AUTHORIZATION_REQUEST_TTL`` seconds.
    """

    __tablename__ = "authorization_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    login_session_id: Mapped[int] = mapped_column(ForeignKey("login_sessions.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    code_verifier_ciphertext: Mapped[str | None] = mapped_column(Text)
    #: ``popup`` or ``page``: how the result is shown when the callback arrives.
    display: Mapped[str] = mapped_column(String(10), default="popup")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    integration: Mapped[Integration] = relationship()

    def _context(self) -> str:
        return f"authorization_request:{self.state_hash}:code_verifier"

    def set_code_verifier(self, verifier: str) -> None:
        self.code_verifier_ciphertext = keyring().encrypt(verifier, self._context())

    @property
    def code_verifier(self) -> str | None:
        if self.code_verifier_ciphertext is None:
            return None
        return keyring().decrypt(self.code_verifier_ciphertext, self._context())
