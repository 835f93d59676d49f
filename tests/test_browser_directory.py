"""Acceptance test of the directory features in Debian's Chromium, driven by Playwright.

Employees sign in with single sign-on at oidc-provider, an integration is limited to a
group, and an admin deactivates a user, which revokes the user's tokens at the provider.
"""

from __future__ import annotations

import re
import shutil

import pytest
from sqlalchemy import select

from app import create_app
from app.accounts import create_user
from app.extensions import db
from app.models import ROLE_ADMIN, ROLE_USER, Credential, Integration, User
from tests.conftest import ENCRYPTION_KEYS, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, PASSWORD, sso_config
from tests.support.live_server import LiveServer
from tests.support.oidc_server import introspect
from tests.test_browser import TIMEOUT_MS, available, browser, mine  # noqa: F401  (browser is a fixture)

pytestmark = pytest.mark.browser

USERS_GROUP = "personal-auth-users"
TEAM = "team-a"


@pytest.fixture
def live_app(tmp_path, sqlite_template, live_port, oidc_server):
    """The app with single sign-on and a local admin, served on the port registered at oidc-provider."""
    database = tmp_path / "live.db"
    shutil.copy(sqlite_template, database)
    app = create_app(
        {
            "ENV": "testing",
            "DATABASE_URL": f"sqlite:///{database}",
            "SECRET_KEY": "browser-secret-key-" + "x" * 32,
            "ENCRYPTION_KEYS": ENCRYPTION_KEYS,
            "BASE_URL": f"http://127.0.0.1:{live_port}",
            **sso_config(oidc_server),
        }
    )
    with app.app_context():
        create_user("root-admin", PASSWORD, roles=(ROLE_ADMIN, ROLE_USER))
        db.session.remove()

    server = LiveServer(app, live_port).start()
    yield app, server
    server.stop()
    oidc_server.set_user_groups({})
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def new_page(browser):  # noqa: F811
    contexts = []

    def make():
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def approve_at_oidc_provider(window, login: str) -> None:
    """Sign in if oidc-provider shows its login form, then consent."""
    continue_button = window.locator("button[type=submit]", has_text=re.compile("Continue", re.I))
    login_field = window.locator("input[name=login]")
    login_field.or_(continue_button).first.wait_for()
    if login_field.is_visible():
        login_field.fill(login)
        window.locator("input[name=password]").fill("any-password")
        window.locator("button[type=submit]").click()
    continue_button.click()


def sign_in_with_sso(page, base_url: str, login: str) -> None:
    page.goto(base_url + "/login")
    page.get_by_role("link", name="Sign in with Test IdP").click()
    approve_at_oidc_provider(page, login)
    page.get_by_role("heading", name="My Integrations").wait_for()


def sign_in_locally(page, base_url: str, username: str) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="My Integrations").wait_for()


def test_group_limited_integration_and_offboarding(new_page, live_app, oidc_server):
    app, server = live_app

    # The admin creates a provider from the catalog, one from its discovery document, a
    # group team-a, and the integration Code Hub limited to team-a.
    admin = new_page()
    sign_in_locally(admin, server.url, "root-admin")

    # A second provider comes from the catalog: the company's ServiceNow instance.
    admin.goto(server.url + "/admin/providers/catalog")
    admin.get_by_role("link", name="Use the ServiceNow (password) template").click()
    admin.get_by_label("Instance host").fill("acme.service-now.com")
    admin.get_by_label("Client ID").fill("servicenow-client")
    admin.get_by_label("Client secret").fill("servicenow-secret-value")
    admin.get_by_role("button", name="Create provider").click()
    admin.get_by_text("ServiceNow (password)").first.wait_for()
    assert re.search(r"/admin/providers/\d+/edit$", admin.url)
    assert admin.get_by_label("Token URL").input_value() == "https://acme.service-now.com/oauth_token.do"
    assert "servicenow-secret-value" not in admin.content()

    admin.goto(server.url + "/admin/providers/discover")
    admin.get_by_label("Issuer URL").fill(oidc_server.issuer)
    admin.get_by_label("Name").fill("Test OIDC")
    admin.get_by_label("Client ID").fill(OIDC_CLIENT_ID)
    admin.get_by_label("Client secret").fill(OIDC_CLIENT_SECRET)
    admin.get_by_label("Default scopes (optional)").fill("openid profile")
    admin.get_by_role("button", name="Read metadata and create provider").click()
    admin.get_by_text("Provider Test OIDC is created").wait_for()

    admin.goto(server.url + "/admin/groups/new")
    admin.get_by_label("Name").fill(TEAM)
    admin.get_by_role("button", name="Create group").click()
    admin.get_by_text(f"Group {TEAM} is created.").wait_for()

    admin.goto(server.url + "/admin/integrations/new")
    admin.get_by_label("Name", exact=True).fill("Code Hub")
    admin.get_by_label("Provider").select_option(label="Test OIDC")
    admin.get_by_role("group", name="Allowed groups").get_by_label(TEAM).check()
    admin.get_by_role("button", name="Create integration").click()
    admin.get_by_text("Integration Code Hub is created.").wait_for()
    with app.app_context():
        integration_id = db.session.scalar(select(Integration.id).where(Integration.name == "Code Hub"))
        db.session.remove()

    oidc_server.set_user_groups({"dana": [USERS_GROUP, TEAM], "erin": [USERS_GROUP]})

    # Dana, in team-a, signs in with SSO and connects Code Hub in a pop-up.
    dana = new_page()
    sign_in_with_sso(dana, server.url, "dana")
    with dana.expect_popup() as popup_info:
        available(dana).get_by_role("link", name="Authenticate Code Hub").click()
    popup = popup_info.value
    approve_at_oidc_provider(popup, "dana")
    popup.wait_for_event("close")
    mine(dana).get_by_role("button", name="Revoke Code Hub").wait_for()
    with app.app_context():
        credential = db.session.scalar(select(Credential).join(Credential.user).where(User.username == "dana"))
        access_token, refresh_token = credential.access_token, credential.refresh_token
        db.session.remove()
    assert introspect(oidc_server, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, access_token)["active"] is True

    # Erin, outside team-a, neither sees Code Hub nor can start its connection.
    erin = new_page()
    sign_in_with_sso(erin, server.url, "erin")
    assert erin.get_by_text("Code Hub").count() == 0
    response = erin.goto(f"{server.url}/connect/{integration_id}")
    assert response.status == 404

    # The admin sees Dana connected, then deactivates her.
    admin.goto(f"{server.url}/admin/integrations/{integration_id}/connected")
    row = admin.get_by_role("row", name=re.compile(r"dana \(dana\)"))
    assert row.get_by_role("cell", name="Active").is_visible()
    assert admin.get_by_role("row", name=re.compile("erin")).count() == 0

    admin.goto(server.url + "/admin/users")
    admin.get_by_role("link", name="Edit user dana").click()
    admin.get_by_label("Account enabled").uncheck()
    admin.get_by_role("button", name="Save user dana").click()
    admin.get_by_text("Code Hub: revoked.").wait_for()

    assert introspect(oidc_server, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, access_token)["active"] is False
    assert introspect(oidc_server, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, refresh_token)["active"] is False

    # Dana is signed out and cannot sign in again.
    dana.goto(server.url + "/")
    dana.get_by_role("heading", name="Sign in").wait_for()
    dana.get_by_role("link", name="Sign in with Test IdP").click()
    approve_at_oidc_provider_if_asked(dana)
    dana.get_by_text("Your account is deactivated.").wait_for()


def approve_at_oidc_provider_if_asked(window) -> None:
    """Wait for the app's page or oidc-provider's consent, whichever comes first, and consent."""
    continue_button = window.locator("button[type=submit]", has_text=re.compile("Continue", re.I))
    result = window.get_by_role("heading", name="Sign-in failed")
    continue_button.or_(result).first.wait_for()
    if continue_button.is_visible():
        continue_button.click()
