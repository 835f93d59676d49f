from datetime import timedelta

import pytest
from sqlalchemy import event

from app.extensions import db
from app.models import Credential, CredentialStatus, utcnow


def add_credential(user, integration, access_expires_in=3600, refresh=True, refresh_expires_in=None, status=None):
    now = utcnow()
    credential = Credential(user_id=user.id, integration_id=integration.id, connected_at=now)
    credential.access_token = "access-" + integration.name
    credential.access_token_expires_at = now + timedelta(seconds=access_expires_in)
    if refresh:
        credential.refresh_token = "refresh-" + integration.name
        if refresh_expires_in is not None:
            credential.refresh_token_expires_at = now + timedelta(seconds=refresh_expires_in)
    if status:
        credential.status = status
    db.session.add(credential)
    db.session.commit()
    return credential


def sections(html: str) -> tuple[str, str]:
    mine, _, available = html.partition('id="mine-heading"')[2].partition('id="available-heading"')
    return mine, available


@pytest.fixture
def provider(make_provider):
    return make_provider("Example")


def test_empty_sections_say_so(auth, client, user):
    auth.login("alice")
    html = client.get("/").get_data(as_text=True)
    assert "You have not connected any integration yet." in html
    assert "There is no other integration for you to connect." in html


def test_unconnected_integration_is_available(auth, client, user, provider, make_integration):
    make_integration("GitHub", provider)
    auth.login("alice")
    mine, available = sections(client.get("/").get_data(as_text=True))
    assert "GitHub" not in mine
    assert 'Authenticate<span class="visually-hidden"> GitHub</span>' in available


def test_connected_integration_is_mine(auth, client, user, provider, make_integration):
    integration = make_integration("GitHub", provider)
    add_credential(user, integration)
    auth.login("alice")
    mine, available = sections(client.get("/").get_data(as_text=True))
    assert 'Revoke<span class="visually-hidden"> GitHub</span>' in mine
    assert 'Renew<span class="visually-hidden"> GitHub</span>' in mine
    assert "GitHub" not in available


@pytest.mark.parametrize(
    ("access_expires_in", "refresh", "refresh_expires_in", "expected_mine"),
    [
        (3600, False, None, True),
        (-60, True, None, True),
        (-60, True, 3600, True),
        (-60, True, -1, False),
        (-60, False, None, False),
    ],
    ids=["access-valid", "refresh-no-expiry", "refresh-valid", "both-expired", "access-expired-no-refresh"],
)
def test_section_follows_token_validity(
    auth, client, user, provider, make_integration, access_expires_in, refresh, refresh_expires_in, expected_mine
):
    integration = make_integration("GitHub", provider)
    add_credential(user, integration, access_expires_in, refresh, refresh_expires_in)
    auth.login("alice")
    mine, _ = sections(client.get("/").get_data(as_text=True))
    assert ("GitHub" in mine) is expected_mine


def test_system_integration_never_shown(auth, client, user, provider, make_integration):
    make_integration("Nightly Sync", provider, integration_type="system")
    auth.login("alice")
    assert "Nightly Sync" not in client.get("/").get_data(as_text=True)


def test_disabled_integration_not_shown(auth, client, user, provider, make_integration):
    make_integration("Old Tool", provider, is_enabled=False)
    auth.login("alice")
    assert "Old Tool" not in client.get("/").get_data(as_text=True)


def test_other_users_credentials_not_shown(auth, client, user, make_user, provider, make_integration):
    integration = make_integration("GitHub", provider)
    bob = make_user("bob")
    add_credential(bob, integration)
    auth.login("alice")
    mine, available = sections(client.get("/").get_data(as_text=True))
    assert "GitHub" not in mine
    assert "GitHub" in available


def test_pending_revocation_card_offers_retry(auth, client, user, provider, make_integration):
    integration = make_integration("GitHub", provider)
    add_credential(user, integration, status=CredentialStatus.REVOCATION_PENDING)
    auth.login("alice")
    mine, _ = sections(client.get("/").get_data(as_text=True))
    assert "Revocation pending" in mine
    assert "Retry revocation" in mine
    assert "Renew<span" not in mine


def test_card_shows_no_token(auth, client, user, provider, make_integration):
    integration = make_integration("GitHub", provider)
    credential = add_credential(user, integration)
    auth.login("alice")
    html = client.get("/").get_data(as_text=True)
    assert credential.access_token not in html
    assert credential.refresh_token not in html
    assert credential.access_token_ciphertext not in html


def count_queries(app, callback) -> int:
    statements = []

    def record(*args):
        statements.append(args[2])

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        callback()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(statements)


def test_dashboard_query_count_is_constant(app, auth, client, user, provider, make_integration):
    auth.login("alice")
    first = make_integration("Integration 0", provider)
    add_credential(user, first)
    few = count_queries(app, lambda: client.get("/"))

    for number in range(1, 25):
        integration = make_integration(f"Integration {number}", provider)
        if number % 2:
            add_credential(user, integration)
    many = count_queries(app, lambda: client.get("/"))

    assert many == few


def test_sections_fragment_announces_move(auth, client, user, provider, make_integration):
    integration = make_integration("GitHub", provider)
    add_credential(user, integration)
    auth.login("alice")
    response = client.get(f"/sections?moved={integration.id}", headers={"HX-Request": "true"})
    assert response.get_data(as_text=True).lstrip().startswith('<div id="sections"')
    assert 'data-announce="GitHub is now in My Integrations."' in response.get_data(as_text=True)
    assert "HX-Request" in response.headers["Vary"]


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(minutes=59, seconds=30), "in 59 minutes"),
        (timedelta(hours=3, minutes=5), "in 3 hours"),
        (timedelta(days=1, hours=2), "in 1 day"),
        (timedelta(seconds=20), "in less than a minute"),
        (-timedelta(hours=2), "2 hours ago"),
    ],
)
def test_relative_time(offset, expected):
    from app.filters import relative

    now = utcnow()
    assert relative(now + offset, now) == expected
