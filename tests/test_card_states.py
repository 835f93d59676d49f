"""Card states on the dashboard: the model decides, the card shows words and a class."""

from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Credential, CredentialState, CredentialStatus, utcnow

HOUR = timedelta(hours=1)


@pytest.fixture
def integration(make_provider, make_integration):
    provider = make_provider("Example", default_scopes="read write")
    return make_integration("GitHub", provider)


def add_credential(user, integration, **fields) -> Credential:
    now = utcnow()
    credential = Credential(user_id=user.id, integration_id=integration.id, connected_at=now)
    db.session.add(credential)
    db.session.flush()
    credential.access_token = "access-token-1"
    credential.refresh_token = "refresh-token-1"
    credential.access_token_expires_at = now + HOUR
    credential.granted_scopes = "read write"
    for name, value in fields.items():
        setattr(credential, name, now + value if isinstance(value, timedelta) else value)
    db.session.commit()
    return credential


def mine_section(client) -> str:
    html = client.get("/").get_data(as_text=True)
    return html.partition('id="mine-heading"')[2].partition('id="available-heading"')[0]


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({}, CredentialState.ACTIVE),
        ({"refresh_token_expires_at": timedelta(minutes=30)}, CredentialState.EXPIRING_SOON),
        ({"refresh_token_ciphertext": None, "access_token_expires_at": timedelta(minutes=30)}, "expiring_soon"),
        ({"status": CredentialStatus.NEEDS_RECONNECT}, CredentialState.NEEDS_RECONNECT),
        ({"status": CredentialStatus.REVOCATION_PENDING}, CredentialState.REVOCATION_PENDING),
        ({"access_token_expires_at": -HOUR, "refresh_token_expires_at": -HOUR}, CredentialState.EXPIRED),
    ],
    ids=["active", "refresh-expiring", "access-expiring-no-refresh", "needs-reconnect", "pending", "expired"],
)
def test_state_follows_credential(user, integration, fields, state):
    assert add_credential(user, integration, **fields).state == state


def test_active_card_says_when_it_expires(auth, client, user, integration):
    add_credential(user, integration, access_token_expires_at=timedelta(minutes=59, seconds=30))
    auth.login("alice")
    mine = mine_section(client)
    assert 'class="card card--active"' in mine
    assert "Active.</strong> Access token expires in 59 minutes and is refreshed automatically." in mine


def test_expiring_card_says_so(auth, client, user, integration):
    add_credential(user, integration, refresh_token_expires_at=timedelta(minutes=20, seconds=30))
    auth.login("alice")
    mine = mine_section(client)
    assert 'class="card card--expiring-soon"' in mine
    assert "Expiring soon.</strong> Access ends in 20 minutes unless you renew it." in mine


def test_needs_reconnect_card_stays_mine(auth, client, user, integration):
    add_credential(user, integration, status=CredentialStatus.NEEDS_RECONNECT, refresh_error="invalid_grant")
    auth.login("alice")
    mine = mine_section(client)
    assert 'class="card card--needs-reconnect"' in mine
    assert "Needs reconnect.</strong>" in mine


def test_needs_reconnect_card_offers_reconnect(auth, client, user, integration):
    add_credential(user, integration, status=CredentialStatus.NEEDS_RECONNECT)
    auth.login("alice")
    mine = mine_section(client)
    assert f'data-popup-url="/connect/{integration.id}?display=popup"' in mine
    assert 'Reconnect<span class="visually-hidden"> GitHub</span>' in mine
    assert "Renew<span" not in mine


def test_needs_reconnect_card_shows_error(auth, client, user, integration):
    add_credential(
        user, integration, status=CredentialStatus.NEEDS_RECONNECT, refresh_error="invalid_grant: Token revoked"
    )
    auth.login("alice")
    assert '<p class="error">invalid_grant: Token revoked</p>' in mine_section(client)


def test_pending_card_has_its_class(auth, client, user, integration):
    add_credential(user, integration, status=CredentialStatus.REVOCATION_PENDING)
    auth.login("alice")
    mine = mine_section(client)
    assert 'class="card card--revocation-pending"' in mine
    assert "Retry revocation" in mine


def test_failed_refresh_shows_next_attempt(auth, client, user, integration):
    add_credential(
        user, integration, refresh_error="server_error: HTTP 503", next_refresh_attempt_at=timedelta(minutes=10)
    )
    auth.login("alice")
    mine = mine_section(client)
    assert "The last refresh failed (server_error: HTTP 503). Next attempt in 9 minutes." in mine


@pytest.mark.parametrize(
    ("granted", "shown", "missing"),
    [
        ("write read", ["write", "read"], []),
        ("read", ["read"], ["write"]),
        ("read write admin", ["read", "write", "admin"], []),
    ],
    ids=["other-order", "missing-one", "extra"],
)
def test_card_shows_granted_scopes(auth, client, user, integration, granted, shown, missing):
    add_credential(user, integration, granted_scopes=granted)
    auth.login("alice")
    mine = mine_section(client)
    granted_list = mine.partition("<dt>Granted scopes</dt>")[2].partition("</dd>")[0]
    assert granted_list.count("<li>") == len(shown)
    for scope in shown:
        assert f"<li><code>{scope}</code></li>" in granted_list
    assert ("Requested, not granted" in mine) is bool(missing)


def test_sections_poll_for_state_changes(auth, client, user, integration):
    add_credential(user, integration)
    auth.login("alice")
    html = client.get("/").get_data(as_text=True)
    assert 'hx-get="/sections" hx-trigger="every 60s" hx-swap="outerHTML"' in html


def test_poll_response_moves_no_focus(auth, client, user, integration):
    add_credential(user, integration)
    auth.login("alice")
    html = client.get("/sections", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "data-focus" not in html
    assert "data-announce" not in html


def test_card_actions_keep_their_ids(auth, client, user, integration):
    """htmx moves focus back to an element with the same id after a swap."""
    credential = add_credential(user, integration)
    auth.login("alice")
    assert f'id="{integration.dom_id}-connect"' in mine_section(client)

    credential.status = CredentialStatus.NEEDS_RECONNECT
    db.session.commit()
    assert f'id="{integration.dom_id}-connect"' in mine_section(client)


def test_refresh_failure_moves_card_to_reconnect(auth, client, user, integration):
    credential = add_credential(user, integration)
    auth.login("alice")
    assert "card--active" in mine_section(client)

    credential.status = CredentialStatus.NEEDS_RECONNECT
    db.session.commit()
    fragment = client.get("/sections", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "card--needs-reconnect" in fragment
