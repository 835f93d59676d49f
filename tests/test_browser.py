"""The dashboard in Debian's Chromium, driven by Playwright, against real servers."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import select

from app import create_app
from app.accounts import create_user
from app.extensions import db
from app.models import ROLE_USER, Credential
from app.registry import IntegrationInput, ProviderInput, save_integration, save_provider
from tests.conftest import (
    ENCRYPTION_KEYS,
    OIDC_CLIENT_ID,
    OIDC_CLIENT_SECRET,
    PASSWORD,
    PASSWORD_CLIENT_ID,
    PASSWORD_CLIENT_SECRET,
    PROVIDER_PASSWORD,
    PROVIDER_USERNAME,
    skip_or_fail,
)
from tests.support.live_server import LiveServer
from tests.support.oidc_server import introspect

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"Chromium is not installed at {CHROMIUM}: run `apt-get install chromium`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def live_app(tmp_path, sqlite_template, live_port, oidc_server, password_server):
    """The app on its own SQLite file, served on the port registered at oidc-provider."""
    database = tmp_path / "live.db"
    shutil.copy(sqlite_template, database)
    app = create_app(
        {
            "ENV": "testing",
            "DATABASE_URL": f"sqlite:///{database}",
            "SECRET_KEY": "browser-secret-key-" + "x" * 32,
            "ENCRYPTION_KEYS": ENCRYPTION_KEYS,
            "BASE_URL": f"http://127.0.0.1:{live_port}",
        }
    )
    with app.app_context():
        create_user("alice", PASSWORD, roles=(ROLE_USER,))
        oidc_provider = save_provider(
            ProviderInput(
                name="Test OIDC",
                client_id=OIDC_CLIENT_ID,
                client_secret=OIDC_CLIENT_SECRET,
                authorization_url=oidc_server.authorization_endpoint,
                token_url=oidc_server.token_endpoint,
                revocation_url=oidc_server.revocation_endpoint,
                default_scopes="openid profile",
            )
        )
        save_integration(IntegrationInput(name="Code Hub", provider_id=oidc_provider.id))
        password_provider = save_provider(
            ProviderInput(
                name="ServiceNow Test",
                client_id=PASSWORD_CLIENT_ID,
                client_secret=PASSWORD_CLIENT_SECRET,
                grant_type="password",
                token_url=password_server.token_endpoint,
                revocation_url=password_server.revocation_endpoint,
            )
        )
        save_integration(IntegrationInput(name="Service Desk", provider_id=password_provider.id))
        db.session.remove()

    server = LiveServer(app, live_port).start()
    yield app, server
    server.stop()
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def page(browser, live_app):
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def sign_in(page, base_url: str) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="My Integrations").wait_for()
    # A full reload would drop this marker; the tests check it survives every swap.
    page.evaluate("window.__noReload = true")


def mine(page):
    return page.locator("#mine-heading").locator("xpath=..")


def available(page):
    return page.locator("#available-heading").locator("xpath=..")


def consent_at_oidc_provider(window) -> None:
    """Sign in and consent on oidc-provider's development pages."""
    window.locator("input[name=login]").fill("alice")
    window.locator("input[name=password]").fill("any-password")
    window.locator("button[type=submit]").click()
    window.locator("button[type=submit]", has_text=re.compile("Continue", re.I)).click()


def tokens_of(app) -> tuple[str, str]:
    with app.app_context():
        credential = db.session.scalar(select(Credential))
        tokens = (credential.access_token, credential.refresh_token)
        db.session.remove()
        return tokens


def test_authenticate_renew_revoke_in_popup(page, live_app, oidc_server):
    app, server = live_app
    sign_in(page, server.url)
    assert available(page).get_by_role("link", name="Authenticate Code Hub").is_visible()

    with page.expect_popup() as popup_info:
        page.get_by_role("link", name="Authenticate Code Hub").click()
    popup = popup_info.value
    consent_at_oidc_provider(popup)
    popup.wait_for_event("close")

    mine(page).get_by_role("button", name="Revoke Code Hub").wait_for()
    assert page.evaluate("window.__noReload") is True
    expect(page.locator("#announcer")).to_have_text("Code Hub is now in My Integrations.")
    expect(page.get_by_role("heading", name="Code Hub")).to_be_focused()
    first_access, _ = tokens_of(app)

    with page.expect_popup() as popup_info:
        mine(page).get_by_role("link", name="Renew Code Hub").click()
    renew_popup = popup_info.value
    if not renew_popup.is_closed():
        renew_popup.wait_for_event("close")
    mine(page).get_by_text("Renewed").wait_for()
    access, refresh = tokens_of(app)
    assert access != first_access

    mine(page).get_by_role("button", name="Revoke Code Hub").click()
    available(page).get_by_role("link", name="Authenticate Code Hub").wait_for()
    assert page.evaluate("window.__noReload") is True
    assert introspect(oidc_server, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, access)["active"] is False
    assert introspect(oidc_server, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, refresh)["active"] is False


def test_blocked_popup_runs_full_page(page, live_app):
    _app, server = live_app
    page.add_init_script("window.open = function () { return null; };")
    sign_in(page, server.url)

    page.get_by_role("link", name="Authenticate Code Hub").click()
    consent_at_oidc_provider(page)

    page.wait_for_url(re.compile(r"/#integration-\d+$"))
    assert page.get_by_text("Code Hub is connected.").is_visible()
    assert mine(page).get_by_role("button", name="Revoke Code Hub").is_visible()


def test_password_grant_popup(page, live_app, password_server):
    _app, server = live_app
    sign_in(page, server.url)

    with page.expect_popup() as popup_info:
        page.get_by_role("link", name="Authenticate Service Desk").click()
    popup = popup_info.value
    popup.get_by_label("Username").fill(PROVIDER_USERNAME)
    popup.get_by_label("Password").fill("wrong-password")
    popup.get_by_role("button", name="Get OAuth Token").click()
    assert popup.get_by_text("Invalid username or password").is_visible()

    popup.get_by_label("Password").fill(PROVIDER_PASSWORD)
    popup.get_by_role("button", name="Get OAuth Token").click()
    popup.wait_for_event("close")

    mine(page).get_by_role("button", name="Revoke Service Desk").wait_for()
    assert page.evaluate("window.__noReload") is True


def test_keyboard_revoke_keeps_focus(page, live_app, password_server):
    _app, server = live_app
    sign_in(page, server.url)
    with page.expect_popup() as popup_info:
        page.get_by_role("link", name="Authenticate Service Desk").click()
    popup = popup_info.value
    popup.get_by_label("Username").fill(PROVIDER_USERNAME)
    popup.get_by_label("Password").fill(PROVIDER_PASSWORD)
    popup.get_by_label("Password").press("Enter")
    popup.wait_for_event("close")
    expect(page.locator("#announcer")).to_have_text("Service Desk is now in My Integrations.")

    revoke = mine(page).get_by_role("button", name="Revoke Service Desk")
    revoke.focus()
    page.keyboard.press("Enter")
    available(page).get_by_role("link", name="Authenticate Service Desk").wait_for()
    expect(page.get_by_role("heading", name="Service Desk")).to_be_focused()
    expect(page.locator("#announcer")).to_contain_text("Service Desk is revoked")
