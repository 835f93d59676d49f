"""Admin pages: providers, integrations, users and roles."""

from flask import Blueprint

bp = Blueprint("admin", __name__)

from app.admin import api_key_routes, audit_routes, connected_routes, group_routes, routes  # noqa: E402,F401
