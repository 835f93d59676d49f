"""Authenticated encryption of tokens and client secrets at rest.

A ciphertext is ``pa1.<key id>.<base64url(nonce || AES-256-GCM output)>``. The key id
names the key that made it, so several keys can be configured at once: the first key
encrypts, every key decrypts. Each ciphertext is also bound to a context string (for
example the credential row and the field), passed to AES-GCM as associated data, so a
ciphertext copied into another row or field fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = "pa1"
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
NONCE_SIZE = 12


class KeyConfigError(ValueError):
    """The encryption key setting cannot be parsed."""


class DecryptionError(Exception):
    """A ciphertext is malformed, was made by an unknown key, or fails authentication."""


def generate_key() -> str:
    """Return a new random 256-bit key, base64url-encoded."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def generate_key_id() -> str:
    return "k" + secrets.token_hex(4)


@dataclass(frozen=True)
class Keyring:
    """Named AES-256 keys; the first one encrypts."""

    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, setting: str) -> Keyring:
        """Parse ``"id1:base64key,id0:base64key"``, newest key first."""
        entries = [entry.strip() for entry in setting.split(",") if entry.strip()]
        if not entries:
            raise KeyConfigError("no encryption key is configured")

        keys: list[tuple[str, bytes]] = []
        for entry in entries:
            key_id, separator, encoded = entry.partition(":")
            if not separator or not KEY_ID_PATTERN.match(key_id):
                raise KeyConfigError(
                    f"encryption key entry {key_id[:32]!r} is invalid: write it as "
                    "ID:BASE64KEY, where ID has 1-32 letters, digits, '-' or '_'"
                )
            try:
                key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
            except (binascii.Error, ValueError):
                raise KeyConfigError(f"encryption key {key_id!r} is not valid base64") from None
            if len(key) != 32:
                raise KeyConfigError(f"encryption key {key_id!r} has {len(key)} bytes, expected 32 (AES-256)")
            if any(existing_id == key_id for existing_id, _ in keys):
                raise KeyConfigError(f"encryption key id {key_id!r} is configured twice")
            keys.append((key_id, key))
        return cls(tuple(keys))

    @property
    def current_key_id(self) -> str:
        return self.keys[0][0]

    def encrypt(self, plaintext: str, context: str) -> str:
        key_id, key = self.keys[0]
        nonce = os.urandom(NONCE_SIZE)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), self._associated_data(key_id, context))
        payload = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{FORMAT_VERSION}.{key_id}.{payload}"

    def decrypt(self, ciphertext: str, context: str) -> str:
        version, _, rest = ciphertext.partition(".")
        key_id, _, payload = rest.partition(".")
        if version != FORMAT_VERSION or not payload:
            raise DecryptionError("ciphertext has an unknown format")
        key = dict(self.keys).get(key_id)
        if key is None:
            raise DecryptionError(f"ciphertext was made by key {key_id!r}, which is not configured")
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            plaintext = AESGCM(key).decrypt(raw[:NONCE_SIZE], raw[NONCE_SIZE:], self._associated_data(key_id, context))
        except (binascii.Error, ValueError, InvalidTag):
            raise DecryptionError(f"ciphertext made by key {key_id!r} failed authentication for {context!r}") from None
        return plaintext.decode()

    @staticmethod
    def key_id_of(ciphertext: str) -> str | None:
        parts = ciphertext.split(".", 2)
        return parts[1] if len(parts) == 3 and parts[0] == FORMAT_VERSION else None

    @staticmethod
    def _associated_data(key_id: str, context: str) -> bytes:
        return f"{FORMAT_VERSION}|{key_id}|{context}".encode()
