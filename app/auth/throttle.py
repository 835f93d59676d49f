"""Throttling of sign-in attempts, with the ``limits`` package."""

from __future__ import annotations

from flask import Flask, current_app
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


def init_login_throttle(app: Flask) -> None:
    """Create this app's attempt counter; each app gets its own storage."""
    storage = storage_from_string(app.config["RATE_LIMIT_STORAGE_URI"])
    app.extensions["login_throttle"] = (MovingWindowRateLimiter(storage), parse(app.config["LOGIN_RATE_LIMIT"]))


def allow_login_attempt(client_address: str | None, username: str) -> bool:
    """Count one attempt and return False once the limit for this address and username is reached."""
    limiter, limit = current_app.extensions["login_throttle"]
    return limiter.hit(limit, "login", client_address or "unknown", username.strip().lower())
