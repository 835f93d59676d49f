"""The API key pages in Debian's Chromium: the new key is shown once and copied with one click."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import expect

from app import create_app
from app.accounts import create_user
from app.api_keys import authenticate
from app.extensions import db
from app.models import ROLE_ADMIN, ROLE_USER
from app.registry import IntegrationInput, ProviderInput, save_integration, save_provider
from tests.conftest import ENCRYPTION_KEYS, PASSWORD, free_port
from tests.support.live_server import LiveServer
from tests.test_browser import TIMEOUT_MS, browser  # noqa: F401  (shared Chromium fixture)

pytestmark = pytest.mark.browser


@pytest.fixture
def admin_app(tmp_path, sqlite_template):
    database = tmp_path / "live.db"
    shutil.copy(sqlite_template, database)
    port = free_port()
    app = create_app(
        {
            "ENV": "testing",
            "DATABASE_URL": f"sqlite:///{database}",
            "SECRET_KEY": "browser-secret-key-" + "x" * 32,
            "ENCRYPTION_KEYS": ENCRYPTION_KEYS,
            "BASE_URL": f"http://127.0.0.1:{port}",
        }
    )
    with app.app_context():
        create_user("root-admin", PASSWORD, roles=(ROLE_ADMIN, ROLE_USER))
        provider = save_provider(
            ProviderInput(
                name="Example",
                client_id="client-1",
                client_secret="client-secret-1",
                authorization_url="https://provider.invalid/authorize",
                token_url="https://provider.invalid/token",
            )
        )
        save_integration(IntegrationInput(name="Code Hub", provider_id=provider.id))
        db.session.remove()

    server = LiveServer(app, port).start()
    yield app, server
    server.stop()
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def page(browser, admin_app):  # noqa: F811
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    yield page
    context.close()


def test_new_key_copied_to_clipboard(page, admin_app):
    app, server = admin_app
    page.goto(server.url + "/login")
    page.get_by_label("Username").fill("root-admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.goto(server.url + "/admin/api-keys/new")
    page.get_by_label("Service").fill("ticket-bot")
    page.get_by_label("Code Hub").check()
    page.get_by_role("button", name="Create API key").click()
    page.get_by_role("button", name="Copy key").click()

    expect(page.locator("#api-key-status")).to_have_text("Copied the key to the clipboard.")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.locator("#api-key").input_value()
    with app.app_context():
        assert authenticate(copied) is not None
        db.session.remove()


def test_key_not_shown_after_leaving_page(page, admin_app):
    _, server = admin_app
    page.goto(server.url + "/login")
    page.get_by_label("Username").fill("root-admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(server.url + "/admin/api-keys/new")
    page.get_by_label("Service").fill("ticket-bot")
    page.get_by_label("Code Hub").check()
    page.get_by_role("button", name="Create API key").click()
    key = page.locator("#api-key").input_value()

    page.get_by_role("link", name="Done").click()

    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    assert key not in page.content()
    assert key.split("_", 2)[1] in page.content()
