"""The pop-up flows that connect or renew an integration, and the OAuth callback."""

from flask import Blueprint

bp = Blueprint("connect", __name__)

from app.connect import routes  # noqa: E402,F401
