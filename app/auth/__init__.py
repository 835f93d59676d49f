"""Sign-in with local accounts, login sessions and role checks."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from app.auth import routes  # noqa: E402,F401
