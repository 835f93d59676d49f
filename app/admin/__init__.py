"""Admin pages: providers, integrations, users and roles."""

from flask import Blueprint

bp = Blueprint("admin", __name__)

from app.admin import (  # noqa: E402,F401
    api_key_routes,
    audit_routes,
    connected_routes,
    group_routes,
    provider_catalog_routes,
    routes,
)
