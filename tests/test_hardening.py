"""Guards against malformed requests, brute force and leaks found by attacking the routes."""

import logging

import pytest
from sqlalchemy import select

from app import create_app
from app.extensions import db
from app.logs import RedactingFilter
from app.models import Credential
from tests.conftest import PASSWORD, AuthActions, IsolatedClient, base_config, csrf_token_in


def test_login_throttled_after_limit(auth, user):
    for _ in range(10):
        assert auth.login("alice", "wrong password here").status_code == 422
    response = auth.login("alice")
    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.get_data(as_text=True)


def test_login_throttle_is_per_username(auth, user, make_user):
    make_user("bob")
    for _ in range(10):
        auth.login("alice", "wrong password here")
    assert auth.login("bob").status_code == 302


@pytest.mark.parametrize(
    "path", ["/connect/2147483648", "/connect/99999999999999999999999", "/integrations/9999999999999/revoke"]
)
def test_huge_id_is_not_found(auth, client, user, path):
    auth.login("alice")
    response = client.get(path) if path.startswith("/connect") else auth.post(path)
    assert response.status_code in (404, 405)


@pytest.mark.parametrize(
    ("path", "data"),
    [("/login", {"username": "nul\x00byte", "password": "x"}), ("/sections?moved=a%00b", None)],
)
def test_nul_character_rejected(auth, client, user, path, data):
    if data is None:
        auth.login("alice")
        response = client.get(path)
    else:
        data["csrf_token"] = auth.csrf_token("/login")
        response = client.post(path, data=data)
    assert response.status_code == 400
    assert "NUL character" in response.get_data(as_text=True)


def test_log_line_cannot_be_forged():
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "error %s", ("x\n2026-01-01 ERROR app: forged",), None)
    RedactingFilter().filter(record)
    assert "\n" not in record.getMessage()
    assert "\\n2026-01-01" in record.getMessage()


def test_https_form_with_same_origin_referer(database_url):
    app = create_app(base_config(database_url, BASE_URL="https://auth.example.invalid"))
    app.test_client_class = IsolatedClient
    client = app.test_client()
    with app.app_context():
        from app.accounts import create_user

        create_user("alice", PASSWORD, roles=("personal_auth_user",))
    token = csrf_token_in(client.get("https://localhost/login").get_data(as_text=True))
    response = client.post(
        "https://localhost/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": token},
        headers={"Referer": "https://localhost/login"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert client.get("https://localhost/login").headers["Referrer-Policy"] == "same-origin"
    with app.app_context():
        db.engine.dispose()


def test_callback_page_sends_no_referrer(auth, client, user):
    auth.login("alice")
    response = client.get("/oauth/callback?state=unknown&code=x")
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_htmx_csrf_failure_reloads_page(auth, client, user):
    auth.login("alice")
    response = client.post("/integrations/1/revoke", headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert response.headers["HX-Refresh"] == "true"


def test_callback_rechecks_integration_is_available(auth, client, user, oidc_integration):
    from urllib.parse import urlsplit

    from tests.support.oidc_server import sign_in_and_consent

    auth.login("alice")
    authorize_url = client.get(f"/connect/{oidc_integration.id}?display=popup").headers["Location"]
    callback = sign_in_and_consent(authorize_url)
    oidc_integration.is_enabled = False
    db.session.commit()

    parts = urlsplit(callback)
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 400
    assert "no longer available" in response.get_data(as_text=True)
    assert db.session.scalar(select(Credential)) is None


def test_revocation_error_does_not_echo_token(auth, user, password_integration, password_server):
    import responses

    from tests.conftest import PROVIDER_PASSWORD, PROVIDER_USERNAME

    auth.login("alice")
    auth.post(
        f"/connect/{password_integration.id}/password",
        {"username": PROVIDER_USERNAME, "password": PROVIDER_PASSWORD, "display": "popup"},
        token_from=f"/connect/{password_integration.id}?display=popup",
    )
    db.session.expire_all()
    credential = db.session.scalar(select(Credential))
    refresh_token = credential.refresh_token
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru(password_server.base_url.rsplit(":", 1)[0].replace("127.0.0.1", "localhost"))
        mock.post(password_server.revocation_endpoint, status=400, json={"error": refresh_token[:20]})
        html = auth.post(f"/integrations/{password_integration.id}/revoke", htmx=True).get_data(as_text=True)
    assert refresh_token[:20] not in html
    db.session.expire_all()
    assert refresh_token[:20] not in (db.session.scalar(select(Credential)).revocation_error or "")


_ = AuthActions


def test_unavailable_integration_can_still_be_revoked(auth, client, user, password_integration, password_server):
    from tests.conftest import PROVIDER_PASSWORD, PROVIDER_USERNAME

    auth.login("alice")
    auth.post(
        f"/connect/{password_integration.id}/password",
        {"username": PROVIDER_USERNAME, "password": PROVIDER_PASSWORD, "display": "popup"},
        token_from=f"/connect/{password_integration.id}?display=popup",
    )
    password_integration.is_enabled = False
    db.session.commit()

    html = client.get("/").get_data(as_text=True)
    mine = html.partition('id="mine-heading"')[2].partition('id="available-heading"')[0]
    assert "is no longer offered to you" in mine
    assert "Renew<span" not in mine
    assert client.get(f"/connect/{password_integration.id}").status_code == 404

    response = auth.post(f"/integrations/{password_integration.id}/revoke", htmx=True)
    assert response.status_code == 200
    assert 'data-announce="Service Desk is revoked."' in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalar(select(Credential)) is None


def test_sso_error_without_own_state_shows_no_text(app, client, monkeypatch):
    from app import sso

    monkeypatch.setattr(sso, "is_enabled", lambda: True)
    monkeypatch.setattr(sso, "_metadata", lambda: {"issuer": "https://idp.invalid"})
    monkeypatch.setattr(sso, "_client", lambda: _FakeClient())
    response = client.get("/auth/sso/callback?error=access_denied&error_description=Call%20helpdesk%20at%20555")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Call helpdesk" not in html
    assert "invalid state" in html


class _FakeClient:
    class framework:
        @staticmethod
        def get_state_data(session, state):
            return None


def test_expired_authorization_requests_are_removed(auth, client, user, oidc_integration):
    from datetime import timedelta

    from app.models import AuthorizationRequest, utcnow

    auth.login("alice")
    for _ in range(3):
        client.get(f"/connect/{oidc_integration.id}?display=popup")
    for request in db.session.scalars(select(AuthorizationRequest)):
        request.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()

    client.get(f"/connect/{oidc_integration.id}?display=popup")
    db.session.expire_all()
    assert len(db.session.scalars(select(AuthorizationRequest)).all()) == 1
