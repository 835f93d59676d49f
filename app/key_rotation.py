"""Re-encrypting every stored secret under the newest encryption key.

After a new key is put first in ``PERSONAL_AUTH_ENCRYPTION_KEYS``, new values are
encrypted with it, but old rows keep the key that made them. ``rotate_keys``
re-encrypts those rows in batches, one transaction per batch. It selects only rows
whose ciphertext names another key, so a run that stopped half-way (a crash, a
deploy) continues where it stopped when started again. Once it reports nothing left,
the old keys can be removed from the setting.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app.crypto import DecryptionError, Keyring
from app.extensions import db
from app.locking import lock_rows
from app.models import AuthorizationRequest, Credential, Provider

log = logging.getLogger(__name__)


class RotationError(Exception):
    """A ciphertext cannot be re-encrypted; the message names the row and what to do."""


@dataclass(frozen=True)
class EncryptedField:
    """A ciphertext column and the context string its row binds each value to."""

    label: str
    model: type
    column: str
    context: Callable[[Any], str]


#: Every column that contains a ciphertext made by ``app.crypto.Keyring``.
ENCRYPTED_FIELDS: tuple[EncryptedField, ...] = (
    EncryptedField(
        "credential access token", Credential, "access_token_ciphertext", lambda row: row._context("access_token")
    ),
    EncryptedField(
        "credential refresh token", Credential, "refresh_token_ciphertext", lambda row: row._context("refresh_token")
    ),
    EncryptedField("provider client secret", Provider, "client_secret_ciphertext", lambda row: row._secret_context()),
    EncryptedField("PKCE code verifier", AuthorizationRequest, "code_verifier_ciphertext", lambda row: row._context()),
)


def keyring() -> Keyring:
    return current_app.config["KEYRING"]


def current_key_id() -> str:
    return keyring().current_key_id


def _stale_rows_statement(field: EncryptedField, current_key_id: str, batch_size: int):
    column = getattr(field.model, field.column)
    prefix = f"pa1.{current_key_id}."
    return (
        select(field.model)
        .where(column.is_not(None), ~column.startswith(prefix, autoescape=True))
        .order_by(field.model.id)
        .limit(batch_size)
    )


def rotate_keys(batch_size: int = 500) -> dict[str, int]:
    """Re-encrypt every ciphertext not made by the current key; return the count per field.

    Each batch is locked, re-encrypted and committed on its own. A token refresh locks
    the same rows, so one of the two waits for the other and neither overwrites the
    other's ciphertext. Raises RotationError, with the batch rolled back,
    when a ciphertext cannot be decrypted with the configured keys.
    """
    ring = keyring()
    current = ring.current_key_id
    counts: dict[str, int] = {}
    for field in ENCRYPTED_FIELDS:
        counts[field.label] = 0
        while True:
            rows = lock_rows(_stale_rows_statement(field, current, batch_size))
            if not rows:
                db.session.commit()
                break
            for row in rows:
                _reencrypt(ring, field, row)
            try:
                db.session.commit()
            except SQLAlchemyError:
                db.session.rollback()
                raise
            counts[field.label] += len(rows)
            log.info("Re-encrypted %s rows of %s under key %s", len(rows), field.label, current)
    return counts


def _reencrypt(ring: Keyring, field: EncryptedField, row: Any) -> None:
    ciphertext = getattr(row, field.column)
    context = field.context(row)
    try:
        plaintext = ring.decrypt(ciphertext, context)
    except DecryptionError as error:
        db.session.rollback()
        raise RotationError(
            f"the {field.label} of {field.model.__tablename__} row {row.id} cannot be decrypted ({error}). "
            "Add the key that made it to PERSONAL_AUTH_ENCRYPTION_KEYS after the new key and run the command again."
        ) from None
    setattr(row, field.column, ring.encrypt(plaintext, context))


def key_status() -> list[tuple[str, str, int]]:
    """Count the ciphertexts of each field per key id, as (field label, key id, count) rows."""
    rows = []
    for field in ENCRYPTED_FIELDS:
        column = getattr(field.model, field.column)
        counter: Counter[str] = Counter()
        for ciphertext in db.session.scalars(select(column).where(column.is_not(None))):
            counter[Keyring.key_id_of(ciphertext) or "unknown format"] += 1
        rows.extend((field.label, key_id, count) for key_id, count in sorted(counter.items()))
    return rows
