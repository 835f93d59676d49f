from http.cookies import SimpleCookie

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import ROLE_ADMIN, LoginSession


def session_cookie(response) -> str | None:
    for header in response.headers.getlist("Set-Cookie"):
        cookie = SimpleCookie(header)
        if "personal_auth_session" in cookie:
            return cookie["personal_auth_session"].value
    return None


def test_dashboard_redirects_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_login_success_shows_dashboard(auth, client, user):
    response = auth.login("alice")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "My Integrations" in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong password here"), ("nobody", "correct horse battery")],
)
def test_login_failure_is_generic(auth, user, username, password):
    response = auth.login(username, password)
    assert response.status_code == 422
    assert "The username or password is incorrect" in response.get_data(as_text=True)


def test_login_rejects_deactivated_user(auth, user):
    user.is_enabled = False
    db.session.commit()
    assert auth.login("alice").status_code == 422


def test_login_changes_session_id(auth, client, user):
    client.get("/login")
    anonymous_cookie = client.get_cookie("personal_auth_session")
    auth.login("alice")
    signed_in_cookie = client.get_cookie("personal_auth_session")
    assert signed_in_cookie is not None
    assert anonymous_cookie is None or anonymous_cookie.value != signed_in_cookie.value
    assert db.session.scalar(select(func.count()).select_from(LoginSession)) == 1


def test_logout_ends_server_session(app, auth, client, user):
    auth.login("alice")
    stolen = client.get_cookie("personal_auth_session").value

    auth.logout()
    assert db.session.scalar(select(func.count()).select_from(LoginSession)) == 0

    replay = app.test_client()
    replay.set_cookie("personal_auth_session", stolen)
    assert replay.get("/").status_code == 302


def test_login_ignores_offsite_next(auth, user, client):
    token = auth.csrf_token("/login")
    response = client.post(
        "/login?next=//evil.example/",
        data={"username": "alice", "password": "correct horse battery", "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_login_follows_local_next(auth, user, client):
    token = auth.csrf_token("/login")
    response = client.post(
        "/login?next=/sections",
        data={"username": "alice", "password": "correct horse battery", "csrf_token": token},
    )
    assert response.headers["Location"] == "/sections"


def test_login_without_csrf_rejected(client, user):
    response = client.post("/login", data={"username": "alice", "password": "correct horse battery"})
    assert response.status_code == 400


def test_dashboard_without_role_is_403(auth, client, make_user):
    make_user("bob", roles=())
    auth.login("bob")
    response = client.get("/")
    assert response.status_code == 403
    assert "personal_auth_user" in response.get_data(as_text=True)


def test_admin_without_admin_role_is_403(auth, client, user):
    auth.login("alice")
    assert client.get("/admin/").status_code == 403


def test_admin_only_user_lands_on_admin(auth, make_user):
    make_user("carol", roles=(ROLE_ADMIN,))
    assert auth.login("carol").headers["Location"] == "/admin/"


def test_htmx_request_after_expiry_gets_hx_redirect(client, user):
    response = client.get("/sections", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login"
    assert response.get_data(as_text=True) == ""


def test_expired_login_session_signs_out(app, auth, client, user):
    from datetime import timedelta

    from app.models import utcnow

    auth.login("alice")
    login_session = db.session.scalar(select(LoginSession))
    login_session.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get("/").status_code == 302


def test_password_hash_is_modern(user):
    assert user.password_hash.startswith(("scrypt:", "pbkdf2:sha256:600000"))
