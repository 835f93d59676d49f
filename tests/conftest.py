"""Shared fixtures: the app on SQLite and PostgreSQL, users, providers and real servers.

Set ``PERSONAL_AUTH_REQUIRE_ALL_TESTS=1`` (CI does) to turn a skip for a missing
PostgreSQL server, Node.js package or Chromium into a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from flask_migrate import upgrade

from app import create_app
from app.accounts import create_user
from app.extensions import db
from app.models import ROLE_ADMIN, ROLE_USER
from app.registry import IntegrationInput, ProviderInput, save_integration, save_provider

REQUIRE_ALL = os.environ.get("PERSONAL_AUTH_REQUIRE_ALL_TESTS") == "1"
POSTGRES_URL = os.environ.get("PERSONAL_AUTH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
#: The app's public URL in tests that use Flask's test client. Nothing listens there: the
#: tests read the provider's redirect and hand its path to the test client.
TEST_BASE_URL = "http://127.0.0.1:8765"
ENCRYPTION_KEYS = "test1:" + "A" * 43
PASSWORD = "correct horse battery"


def skip_or_fail(reason: str) -> None:
    """Skip, or fail when the environment promises every component."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (PERSONAL_AUTH_REQUIRE_ALL_TESTS=1 forbids skipping)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_config(database_url: str, **overrides) -> dict:
    config = {
        "ENV": "testing",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "ENCRYPTION_KEYS": ENCRYPTION_KEYS,
        "BASE_URL": TEST_BASE_URL,
        "LOG_LEVEL": "DEBUG",
    }
    config.update(overrides)
    return config


def migrate_database(database_url: str) -> None:
    app = create_app(base_config(database_url))
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    migrate_database(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database():
    """Create a fresh PostgreSQL database for this test run and migrate it."""
    admin_engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin_engine.connect() as connection:
            connection.execute(sa.text("select 1"))
    except sa.exc.OperationalError as error:
        admin_engine.dispose()
        skip_or_fail(f"PostgreSQL is not reachable at {POSTGRES_URL}: {error.orig}")

    name = f"personal_auth_test_{uuid.uuid4().hex[:12]}"
    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'create database "{name}"'))
    url = sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    migrate_database(url)
    yield url

    with admin_engine.connect() as connection:
        connection.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    admin_engine.dispose()


def reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        tables = [
            row[0]
            for row in connection.execute(
                sa.text(
                    "select tablename from pg_tables where schemaname = 'public' "
                    "and tablename not in ('alembic_version', 'roles')"
                )
            )
        ]
        if tables:
            connection.execute(sa.text(f"truncate {', '.join(tables)} restart identity cascade"))
    engine.dispose()


#: Address that the test resolver gives every host name: TEST-NET-1 (RFC 5737), which
#: is reserved for documentation and routes nowhere.
TEST_NET_ADDRESS = "192.0.2.10"


@pytest.fixture(autouse=True)
def offline_resolver(monkeypatch):
    """Answer the URL policy's host name lookups without DNS, so no test looks up a real name."""
    import ipaddress

    from app import url_policy

    def resolve(hostname: str):
        return [ipaddress.ip_address(TEST_NET_ADDRESS)]

    monkeypatch.setattr(url_policy, "resolve_host", resolve)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "app.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_database")
    reset_postgres(url)
    return url


@pytest.fixture
def app(database_url):
    app = create_app(base_config(database_url))
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


class IsolatedClient(FlaskClient):
    """A test client whose requests each get a fresh app context, as in production.

    The ``app`` fixture keeps an app context open for the test body; without this, every
    request would share its ``g`` and database session.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def client(app):
    app.test_client_class = IsolatedClient
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


CSRF_PATTERN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|"X-CSRFToken": "([^"]+)"')


def csrf_token_in(html: str) -> str:
    match = CSRF_PATTERN.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1) or match.group(2)


class AuthActions:
    """Sign in and send CSRF-protected requests with a test client."""

    def __init__(self, client):
        self.client = client

    def login(self, username: str, password: str = PASSWORD):
        token = csrf_token_in(self.client.get("/login").get_data(as_text=True))
        return self.client.post("/login", data={"username": username, "password": password, "csrf_token": token})

    def csrf_token(self, path: str = "/") -> str:
        return csrf_token_in(self.client.get(path).get_data(as_text=True))

    def post(self, path: str, data: dict | None = None, htmx: bool = False, token_from: str = "/"):
        form = dict(data or {})
        form["csrf_token"] = self.csrf_token(token_from)
        headers = {"HX-Request": "true"} if htmx else {}
        return self.client.post(path, data=form, headers=headers)

    def logout(self):
        return self.post("/logout")


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def make_user(app):
    def make(username: str = "alice", roles=(ROLE_USER,), password: str = PASSWORD):
        return create_user(username, password, roles=roles)

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice", roles=(ROLE_USER,))


@pytest.fixture
def admin_user(make_user):
    return make_user("root-admin", roles=(ROLE_ADMIN, ROLE_USER))


@pytest.fixture
def make_provider(app):
    def make(name: str = "Example", **fields):
        values = {
            "client_id": "client-1",
            "client_secret": "client-secret-1",
            "authorization_url": "https://provider.invalid/authorize",
            "token_url": "https://provider.invalid/token",
        }
        values.update(fields)
        return save_provider(ProviderInput(name=name, **values))

    return make


@pytest.fixture
def make_integration(app):
    def make(name: str, provider, **fields):
        return save_integration(IntegrationInput(name=name, provider_id=provider.id, **fields))

    return make


# Real authorization servers ----------------------------------------------------------

OIDC_CLIENT_ID = "personal-auth-test"
OIDC_CLIENT_SECRET = "oidc-client-secret-" + "s" * 32
#: The app's own client registration for single sign-on, separate from the provider one.
SSO_CLIENT_ID = "personal-auth-sso"
SSO_CLIENT_SECRET = "sso-client-secret-" + "s" * 32


@pytest.fixture(scope="session")
def live_port() -> int:
    """Port of the app's live server in browser tests, chosen before the provider starts."""
    return free_port()


@pytest.fixture(scope="session")
def oidc_server(live_port):
    """The npm package oidc-provider, as a separate process on 127.0.0.1."""
    from tests.support.oidc_server import OidcProviderServer

    node_modules = Path(__file__).parent / "oidc_server" / "node_modules"
    if shutil.which("node") is None or not node_modules.is_dir():
        skip_or_fail("oidc-provider is not installed: run `npm ci` in tests/oidc_server")
    server = OidcProviderServer(
        clients=[
            {
                "client_id": OIDC_CLIENT_ID,
                "client_secret": OIDC_CLIENT_SECRET,
                "redirect_uris": [
                    f"{TEST_BASE_URL}/oauth/callback",
                    f"http://127.0.0.1:{live_port}/oauth/callback",
                ],
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code", "refresh_token"],
            },
            {
                "client_id": SSO_CLIENT_ID,
                "client_secret": SSO_CLIENT_SECRET,
                "redirect_uris": [
                    f"{TEST_BASE_URL}/auth/sso/callback",
                    f"http://127.0.0.1:{live_port}/auth/sso/callback",
                ],
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code"],
            },
        ],
        access_token_ttl=3600,
    )
    server.start()
    yield server
    server.stop()


PASSWORD_CLIENT_ID = "servicenow-client"
PASSWORD_CLIENT_SECRET = "sn+secret/with:colon-é"
PROVIDER_USERNAME = "alice.provider"
PROVIDER_PASSWORD = "provider-password-1"


@pytest.fixture
def password_server():
    """An Authlib authorization server with the password grant, in a thread on 127.0.0.1."""
    from tests.support.authlib_server import PasswordGrantServer

    server = PasswordGrantServer(
        clients=[
            {
                "client_id": PASSWORD_CLIENT_ID,
                "client_secret": PASSWORD_CLIENT_SECRET,
                "token_endpoint_auth_method": "client_secret_basic",
            }
        ],
        users={PROVIDER_USERNAME: PROVIDER_PASSWORD},
        strict_basic_auth=True,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def oidc_integration(oidc_server, make_provider, make_integration):
    provider = make_provider(
        "Test OIDC",
        client_id=OIDC_CLIENT_ID,
        client_secret=OIDC_CLIENT_SECRET,
        authorization_url=oidc_server.authorization_endpoint,
        token_url=oidc_server.token_endpoint,
        revocation_url=oidc_server.revocation_endpoint,
        default_scopes="openid profile",
    )
    return make_integration("Code Hub", provider, description="Repositories and issues.")


@pytest.fixture
def password_integration(password_server, make_provider, make_integration):
    provider = make_provider(
        "ServiceNow Test",
        client_id=PASSWORD_CLIENT_ID,
        client_secret=PASSWORD_CLIENT_SECRET,
        grant_type="password",
        authorization_url=None,
        token_url=password_server.token_endpoint,
        revocation_url=password_server.revocation_endpoint,
        default_scopes="useraccount",
    )
    return make_integration("Service Desk", provider, description="Tickets on the other instance.")


# Single sign-on -----------------------------------------------------------------------


def sso_config(oidc_server, **overrides) -> dict:
    """Settings that make oidc-provider the app's identity provider."""
    config = {
        "SSO_ISSUER": oidc_server.issuer,
        "SSO_CLIENT_ID": SSO_CLIENT_ID,
        "SSO_CLIENT_SECRET": SSO_CLIENT_SECRET,
        "SSO_ROLE_MAP": "personal-auth-users=personal_auth_user,personal-auth-admins=admin",
        "SSO_NAME": "Test IdP",
    }
    config.update(overrides)
    return config


@pytest.fixture
def sso_settings(request, oidc_server) -> dict:
    """Settings of ``sso_app``; parametrize it indirectly with a dict of overrides."""
    return sso_config(oidc_server, **getattr(request, "param", {}))


@pytest.fixture
def sso_app(database_url, oidc_server, sso_settings):
    """The app with single sign-on at oidc-provider; user groups are reset after the test."""
    app = create_app(base_config(database_url, **sso_settings))
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()
    oidc_server.set_user_groups({})


@pytest.fixture
def sso_client(sso_app):
    sso_app.test_client_class = IsolatedClient
    return sso_app.test_client()
