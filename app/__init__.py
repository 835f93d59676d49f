"""Personal Auth: employees connect their own third-party accounts for internal integrations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

from app.config import load_settings, resolve_secrets
from app.extensions import csrf, db, login_manager, migrate

MIGRATIONS_DIRECTORY = Path(__file__).resolve().parent.parent / "migrations"


def engine_options(database_url: str) -> dict[str, Any]:
    options: dict[str, Any] = {"pool_pre_ping": True}
    if database_url.startswith("sqlite"):
        # A token refresh holds SQLite's write lock while it waits for the provider (up
        # to the connect and read timeouts); other writers wait instead of failing after
        # sqlite3's default 5 seconds.
        options["connect_args"] = {"timeout": 30}
    return options


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the app from ``PERSONAL_AUTH_*`` variables, with ``test_config`` on top."""
    # The instance folder contains the SQLite database and development secrets.
    instance_path = os.environ.get("PERSONAL_AUTH_INSTANCE_PATH") or None
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    settings = load_settings(os.environ, test_config)
    resolve_secrets(settings, Path(app.instance_path))

    database_url = settings["DATABASE_URL"] or "sqlite:///" + os.path.join(app.instance_path, "personal_auth.db")
    secure_cookies = settings["BASE_URL"].startswith("https://")
    app.config.from_mapping(
        settings,
        SQLALCHEMY_DATABASE_URI=database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(database_url),
        TESTING=settings["ENV"] == "testing",
        SESSION_COOKIE_NAME="personal_auth_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure_cookies,
        REMEMBER_COOKIE_SECURE=secure_cookies,
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=secure_cookies,
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    from app.logs import configure_logging

    configure_logging(app)

    from app import api_keys, audit  # noqa: F401  (registers the API key and audit models)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIRECTORY))
    csrf.init_app(app)
    login_manager.init_app(app)

    from app.auth.throttle import init_login_throttle

    init_login_throttle(app)

    from app import admin, api, auth, connect, dashboard, errors, filters, security

    security.install_request_guards(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(connect.bp)
    app.register_blueprint(admin.bp, url_prefix="/admin")
    app.register_blueprint(api.bp, url_prefix="/api/v1")
    # The token API authenticates with bearer API keys, never with the session cookie.
    csrf.exempt(api.bp)
    errors.register(app)
    security.register(app)
    filters.register(app)

    from app.cli import register_commands

    register_commands(app)
    return app
