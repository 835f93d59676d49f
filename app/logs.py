"""Logging setup, with a filter that masks secrets in every record.

The app never logs a token, code, secret or password on purpose. The filter is the
second line of defence for lines written by libraries, such as the request line the
development server logs for ``/oauth/callback?code=...&state=...``.
"""

from __future__ import annotations

import logging
import re

from flask import Flask

SECRET_PARAMETERS = (
    "code",
    "state",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "password",
    "code_verifier",
    "token",
    "assertion",
)

_PARAMETER_PATTERN = re.compile(
    r"(?P<name>\b(?:"
    + "|".join(SECRET_PARAMETERS)
    + r"))(?P<separator>=|\"\s*:\s*\"|'\s*:\s*')(?P<value>[^&\s\"',;]+)",
    re.IGNORECASE,
)
_ANSI_COLOURS = re.compile(r"\x1b\[[0-9;]*m")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_AUTHORIZATION_PATTERN = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def redact(text: str) -> str:
    """Mask the values of secret parameters and Authorization header values in ``text``."""
    text = _PARAMETER_PATTERN.sub(lambda match: f"{match['name']}{match['separator']}[redacted]", text)
    return _AUTHORIZATION_PATTERN.sub(lambda match: f"{match[1]} [redacted]", text)


class RedactingFilter(logging.Filter):
    """Rewrite each record's message with ``redact`` before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        # Control characters in a value from a request could start a forged log line.
        # Terminal colour codes, as in Werkzeug's request lines, are dropped first.
        redacted = _CONTROL_CHARACTERS.sub(lambda match: repr(match[0])[1:-1], _ANSI_COLOURS.sub("", redact(message)))
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


class RedactingFormatter(logging.Formatter):
    """Apply ``redact`` to the whole formatted line, tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def install_redaction(handler: logging.Handler) -> None:
    if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
        handler.addFilter(RedactingFilter())


def configure_logging(app: Flask) -> None:
    """Send app and library records to stderr through the redacting filter."""
    root = logging.getLogger()
    if not any(getattr(handler, "personal_auth", False) for handler in root.handlers):
        handler = logging.StreamHandler()
        handler.personal_auth = True  # type: ignore[attr-defined]
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    for handler in root.handlers:
        install_redaction(handler)
    # Werkzeug adds its own handler when the root logger has none; cover it too.
    for handler in logging.getLogger("werkzeug").handlers:
        install_redaction(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.WARNING)
    logging.getLogger("app").setLevel(app.config["LOG_LEVEL"])
    logging.getLogger("werkzeug").setLevel(logging.INFO)
