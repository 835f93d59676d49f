"""Token API for internal services at ``/api/v1``: JSON only, authenticated with API keys."""

from flask import Blueprint

bp = Blueprint("api", __name__)

from app.api import routes  # noqa: E402,F401
