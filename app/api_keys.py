"""API keys of internal services: creating, checking and revoking them.

A key reads ``pa_<prefix>_<secret>``. The prefix is public and finds the row; only the
SHA-256 digest of the secret is stored. The secret carries 256 random bits, so a fast
hash is enough: there is nothing to guess, and a keyed hash would tie every key to
``SECRET_KEY``, which would make rotating that key revoke all API keys.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, func, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import audit
from app.extensions import db
from app.models import Integration, User, UTCDateTime, utcnow

log = logging.getLogger(__name__)

KEY_SCHEME = "pa"
PREFIX_BYTES = 6
SECRET_BYTES = 32
MAX_SERVICE_LENGTH = 100
#: Largest value of an INTEGER primary key on PostgreSQL. Larger numbers cannot be an id,
#: and both databases raise an error when asked for one.
MAX_ROW_ID = 2**31 - 1

api_key_integrations = db.Table(
    "api_key_integrations",
    db.Column("api_key_id", ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    db.Column("integration_id", ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True),
)


class ApiKey(db.Model):
    """The key of one internal service, limited to the integrations it may read."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Name of the service that uses the key, such as ``ticket-bot``.
    service: Mapped[str] = mapped_column(String(MAX_SERVICE_LENGTH))
    #: Public hex part of the key, shown in lists and logs to tell keys apart.
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    #: SHA-256 hex digest of the secret part.
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    integrations: Mapped[list[Integration]] = relationship(secondary=api_key_integrations, lazy="selectin")
    created_by: Mapped[User | None] = relationship()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def display_prefix(self) -> str:
        """The public start of the key, enough to recognise it: ``pa_<prefix>_…``."""
        return f"{KEY_SCHEME}_{self.prefix}_…"

    def may_read(self, integration: Integration) -> bool:
        return any(allowed.id == integration.id for allowed in self.integrations)


class ApiKeyError(ValueError):
    """Invalid API key input. ``field`` names the input the message is about."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(raw_key: str) -> tuple[str, str] | None:
    """Split ``pa_<prefix>_<secret>`` into prefix and secret, or return None when malformed."""
    scheme, _, rest = raw_key.strip().partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != KEY_SCHEME or not prefix or not secret:
        return None
    if len(prefix) != 2 * PREFIX_BYTES or any(character not in "0123456789abcdef" for character in prefix):
        return None
    return prefix, secret


def _is_row_id(reference: str) -> bool:
    return reference.isdigit() and int(reference) <= MAX_ROW_ID


def find_integration(reference: str) -> Integration | None:
    """Return the integration with this id, else the one with this name, ignoring case."""
    reference = reference.strip()
    if _is_row_id(reference):
        integration = db.session.get(Integration, int(reference))
        if integration is not None:
            return integration
    return db.session.scalar(select(Integration).where(func.lower(Integration.name) == reference.lower()))


def create_api_key(
    service: str, integration_names: list[str] | tuple[str, ...], *, actor_user_id: int | None = None
) -> tuple[ApiKey, str]:
    """Create a key for ``service`` that may read the named integrations.

    Return the row and the full key. The key is not stored, so this is the only time
    anyone sees it.
    """
    service = service.strip()
    if not service:
        raise ApiKeyError("service name is missing: name the service that will use the key", field="service")
    if len(service) > MAX_SERVICE_LENGTH:
        raise ApiKeyError(f"service name is too long: use at most {MAX_SERVICE_LENGTH} characters", field="service")
    if not integration_names:
        raise ApiKeyError("choose at least one integration that the key may read", field="integrations")
    integrations = []
    for name in dict.fromkeys(integration_names):
        integration = find_integration(name)
        if integration is None:
            raise ApiKeyError(
                f"no integration named {name!r}: run `flask integrations list` to see the names", field="integrations"
            )
        integrations.append(integration)

    prefix = secrets.token_hex(PREFIX_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    api_key = ApiKey(
        service=service,
        prefix=prefix,
        secret_hash=hash_secret(secret),
        created_by_user_id=actor_user_id,
        integrations=integrations,
    )
    db.session.add(api_key)
    db.session.flush()
    audit.record(
        "api_key.create",
        actor_user_id=actor_user_id,
        detail=f"service {service}, prefix {prefix}",
        api_key_id=api_key.id,
        integration_ids=[integration.id for integration in integrations],
        commit=False,
    )
    db.session.commit()
    log.info(
        "API key created: key %s (%s), service %s, integrations %s",
        api_key.id,
        prefix,
        service,
        ",".join(str(integration.id) for integration in integrations),
    )
    return api_key, f"{KEY_SCHEME}_{prefix}_{secret}"


def revoke_api_key(api_key: ApiKey, *, actor_user_id: int | None = None) -> ApiKey:
    """Revoke ``api_key`` at once. Revoking a revoked key changes nothing."""
    if api_key.revoked_at is not None:
        return api_key

    api_key.revoked_at = utcnow()
    audit.record(
        "api_key.revoke",
        actor_user_id=actor_user_id,
        detail=f"service {api_key.service}, prefix {api_key.prefix}",
        api_key_id=api_key.id,
        commit=False,
    )
    db.session.commit()
    log.info("API key revoked: key %s (%s), service %s", api_key.id, api_key.prefix, api_key.service)
    return api_key


def authenticate(raw_key: str) -> ApiKey | None:
    """Return the active key that ``raw_key`` belongs to, or None.

    A known prefix with a wrong secret, or a revoked key, is logged and audited with the
    key's id; an unknown prefix is only logged, so random input cannot fill the table.
    """
    parts = parse_key(raw_key)
    if parts is None:
        log.warning("API key rejected: malformed key")
        return None
    prefix, secret = parts
    api_key = db.session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if api_key is None:
        log.warning("API key rejected: unknown prefix %s", prefix)
        return None

    secret_matches = hmac.compare_digest(api_key.secret_hash, hash_secret(secret))
    if secret_matches and api_key.is_active:
        return api_key
    reason = "wrong secret" if not secret_matches else "revoked key"
    # NOTE: each such request writes one audit row and nothing limits their rate, so a
    # client that knows a prefix can grow the audit table as fast as it sends requests.
    log.warning("API key rejected: key %s (%s), %s", api_key.id, prefix, reason)
    audit.record(
        "api_key.use",
        audit.Outcome.FAILURE,
        actor_service=api_key.service,
        detail=reason,
        api_key_id=api_key.id,
    )
    return None


def list_api_keys() -> list[ApiKey]:
    """Return every key, active ones first, newest first within each group."""
    return list(db.session.scalars(select(ApiKey).order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc())))


def find_api_key(reference: str) -> ApiKey | None:
    """Return the key with this id, prefix or full ``pa_<prefix>_…`` start."""
    reference = reference.strip().rstrip("_…")
    if reference.startswith(f"{KEY_SCHEME}_"):
        reference = reference[len(KEY_SCHEME) + 1 :].partition("_")[0]
    if _is_row_id(reference):
        api_key = db.session.get(ApiKey, int(reference))
        if api_key is not None:
            return api_key
    return db.session.scalar(select(ApiKey).where(ApiKey.prefix == reference.lower()))
