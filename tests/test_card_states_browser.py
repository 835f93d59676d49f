"""Card states change in Chromium by polling, without a reload and without moving focus."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.extensions import db
from app.models import Credential, CredentialStatus
from tests import test_browser
from tests.conftest import PROVIDER_PASSWORD, PROVIDER_USERNAME
from tests.test_browser import mine, sign_in

# The Chromium, live server and page fixtures of the dashboard browser tests.
browser = test_browser.browser
live_app = test_browser.live_app
page = test_browser.page

pytestmark = pytest.mark.browser


def connect_service_desk(page) -> None:
    with page.expect_popup() as popup_info:
        page.get_by_role("link", name="Authenticate Service Desk").click()
    popup = popup_info.value
    popup.get_by_label("Username").fill(PROVIDER_USERNAME)
    popup.get_by_label("Password").fill(PROVIDER_PASSWORD)
    popup.get_by_role("button", name="Get OAuth Token").click()
    popup.wait_for_event("close")
    mine(page).get_by_role("button", name="Revoke Service Desk").wait_for()


def set_status(app, status: CredentialStatus) -> None:
    with app.app_context():
        credential = db.session.scalar(select(Credential))
        credential.status = status
        credential.refresh_error = "invalid_grant: refresh token revoked"
        db.session.commit()
        db.session.remove()


def poll_every_second(page) -> None:
    """Shorten the 60 s polling interval, through the same htmx trigger."""
    page.evaluate(
        "() => { const sections = document.getElementById('sections');"
        " sections.setAttribute('hx-trigger', 'every 1s'); htmx.process(sections); }"
    )


def test_poll_shows_needs_reconnect_and_keeps_focus(page, live_app, password_server):
    app, server = live_app
    sign_in(page, server.url)
    connect_service_desk(page)
    expect(mine(page).locator(".card--active")).to_have_count(1)

    renew = mine(page).get_by_role("link", name="Renew Service Desk")
    renew.focus()
    set_status(app, CredentialStatus.NEEDS_RECONNECT)
    poll_every_second(page)

    reconnect = mine(page).get_by_role("link", name="Reconnect Service Desk")
    reconnect.wait_for()
    expect(mine(page).locator(".card--needs-reconnect")).to_contain_text("Needs reconnect.")
    expect(reconnect).to_be_focused()
    assert page.evaluate("window.__noReload") is True


def test_reconnect_button_runs_popup(page, live_app, password_server):
    app, server = live_app
    sign_in(page, server.url)
    connect_service_desk(page)
    set_status(app, CredentialStatus.NEEDS_RECONNECT)
    page.reload()
    page.evaluate("window.__noReload = true")

    with page.expect_popup() as popup_info:
        mine(page).get_by_role("link", name="Reconnect Service Desk").click()
    popup = popup_info.value
    popup.get_by_label("Username").fill(PROVIDER_USERNAME)
    popup.get_by_label("Password").fill(PROVIDER_PASSWORD)
    popup.get_by_role("button", name="Get OAuth Token").click()
    popup.wait_for_event("close")

    expect(mine(page).locator(".card--active")).to_contain_text("Active.")
    assert page.evaluate("window.__noReload") is True
