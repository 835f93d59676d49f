"""Single sign-on with OpenID Connect against oidc-provider, through the Flask test client."""

from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from app.accounts import create_user, set_enabled
from app.config import ConfigError
from app.extensions import db
from app.groups import GroupInput, save_group
from app.models import ROLE_ADMIN, ROLE_USER, LoginSession, User
from app.sso import parse_role_map
from tests.conftest import PASSWORD, base_config, csrf_token_in, sso_config
from tests.support.oidc_server import deny_consent, sign_in_and_consent

USERS_GROUP = "personal-auth-users"
ADMINS_GROUP = "personal-auth-admins"


def local_path(url: str) -> str:
    """Return the path and query of a redirect to the app, for the test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def start(client, next_url: str | None = None) -> str:
    response = client.get("/auth/sso/login", query_string={"next": next_url} if next_url else None)
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def sso_sign_in(client, login: str = "carol", next_url: str | None = None):
    callback = sign_in_and_consent(start(client, next_url), login=login)
    return client.get(local_path(callback))


def _csrf(client) -> str:
    return csrf_token_in(client.get("/").get_data(as_text=True))


def find(username: str) -> User | None:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.username == username))


@pytest.fixture
def sales(sso_app):
    return save_group(GroupInput("sales"))


def test_login_page_shows_sso_button(sso_client):
    html = sso_client.get("/login").get_data(as_text=True)
    assert "Sign in with Test IdP" in html


def test_login_page_without_sso_has_no_button(client):
    assert "Sign in with" not in client.get("/login").get_data(as_text=True)


def test_sso_login_without_sso_is_404(client):
    assert client.get("/auth/sso/login").status_code == 404


def test_authorization_request_uses_pkce_and_nonce(sso_client, oidc_server):
    query = dict(part.split("=", 1) for part in urlsplit(start(sso_client)).query.split("&"))
    assert query["code_challenge_method"] == "S256"
    assert query["nonce"]
    assert query["client_id"] == "personal-auth-sso"


def test_sso_creates_user(sso_client, oidc_server):
    oidc_server.set_user_groups({"carol": [USERS_GROUP]})
    response = sso_sign_in(sso_client)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/"
    user = find("carol")
    assert user.email == "carol@example.test"
    assert user.sso_subject == "carol"
    assert user.sso_issuer == oidc_server.issuer


def test_sso_user_sees_dashboard(sso_client, oidc_server):
    oidc_server.set_user_groups({"carol": [USERS_GROUP]})
    sso_sign_in(sso_client)
    assert sso_client.get("/").status_code == 200


def test_sso_starts_new_login_session(sso_client, oidc_server):
    oidc_server.set_user_groups({"carol": [USERS_GROUP]})
    sso_sign_in(sso_client)
    first = set(db.session.scalars(select(LoginSession.token_hash)))
    sso_client.post("/logout", data={"csrf_token": _csrf(sso_client)})
    sso_sign_in(sso_client)
    db.session.expire_all()
    second = set(db.session.scalars(select(LoginSession.token_hash)))
    assert len(second) == 1
    assert not first & second


def test_sso_maps_groups(sso_client, oidc_server, sales):
    oidc_server.set_user_groups({"carol": [USERS_GROUP, "sales", "unknown-group"]})
    sso_sign_in(sso_client)
    assert [group.name for group in find("carol").groups] == ["sales"]


@pytest.mark.parametrize(
    ("claim", "roles"),
    [
        ([USERS_GROUP], [ROLE_USER]),
        ([ADMINS_GROUP], [ROLE_ADMIN]),
        ([USERS_GROUP, ADMINS_GROUP], [ROLE_ADMIN, ROLE_USER]),
    ],
)
def test_sso_maps_roles(sso_client, oidc_server, claim, roles):
    oidc_server.set_user_groups({"carol": claim})
    sso_sign_in(sso_client)
    assert sorted(role.name for role in find("carol").roles) == roles


def test_sso_admin_lands_on_admin(sso_client, oidc_server):
    oidc_server.set_user_groups({"carol": [ADMINS_GROUP]})
    response = sso_sign_in(sso_client)
    assert urlsplit(response.headers["Location"]).path == "/admin/"


def test_sso_user_loses_revoked_groups_and_roles(sso_client, oidc_server, sales):
    oidc_server.set_user_groups({"carol": [USERS_GROUP, ADMINS_GROUP, "sales"]})
    sso_sign_in(sso_client)
    sso_client.post("/logout", data={"csrf_token": _csrf(sso_client)})
    oidc_server.set_user_groups({"carol": [USERS_GROUP]})
    sso_sign_in(sso_client)

    user = find("carol")
    assert [role.name for role in user.roles] == [ROLE_USER]
    assert user.groups == []


def test_sso_without_role_is_rejected(sso_client, oidc_server):
    response = sso_sign_in(sso_client)
    assert response.status_code == 403
    assert "Your account has no role in Personal Auth" in response.get_data(as_text=True)
    assert sso_client.get("/").status_code == 302


def test_sso_deactivated_user_is_rejected(sso_client, oidc_server):
    oidc_server.set_user_groups({"carol": [USERS_GROUP]})
    sso_sign_in(sso_client)
    set_enabled(find("carol"), False)

    response = sso_sign_in(sso_client)
    assert response.status_code == 403
    assert "Your account is deactivated" in response.get_data(as_text=True)


def test_sso_keeps_local_account_apart(sso_client, oidc_server):
    create_user("carol", PASSWORD, roles=(ROLE_ADMIN,))
    oidc_server.set_user_groups({"carol": [USERS_GROUP]})
    sso_sign_in(sso_client)
    assert find("carol").sso_subject is None
    assert find("carol-2").sso_subject == "carol"


def test_sso_follows_safe_next(sso_client, oidc_server):
    oidc_server.set_user_groups({"carol": [USERS_GROUP]})
    response = sso_sign_in(sso_client, next_url="/sections")
    assert response.headers["Location"] == "/sections"


def test_sso_ignores_external_next(sso_client, oidc_server):
    oidc_server.set_user_groups({"carol": [USERS_GROUP]})
    response = sso_sign_in(sso_client, next_url="//evil.invalid/")
    assert urlsplit(response.headers["Location"]).path == "/"


@pytest.mark.parametrize("sso_settings", [{"SSO_AUTO_CREATE_USERS": False}], indirect=True)
def test_sso_unknown_user_without_auto_create(sso_client, oidc_server):
    oidc_server.set_user_groups({"carol": [USERS_GROUP]})
    response = sso_sign_in(sso_client)
    assert response.status_code == 403
    assert "There is no Personal Auth account for carol" in response.get_data(as_text=True)
    assert find("carol") is None


@pytest.mark.parametrize("sso_settings", [{"SSO_AUTO_CREATE_USERS": False}], indirect=True)
def test_sso_links_precreated_user(sso_client, oidc_server):
    create_user("carol", PASSWORD)
    oidc_server.set_user_groups({"carol": [USERS_GROUP]})
    assert sso_sign_in(sso_client).status_code == 302
    assert find("carol").sso_subject == "carol"


# Errors at the callback ---------------------------------------------------------------


def test_access_denied_shows_error(sso_client):
    callback = deny_consent(start(sso_client), login="carol")
    response = sso_client.get(local_path(callback))
    assert response.status_code == 403
    assert "did not sign you in (access_denied" in response.get_data(as_text=True)


def test_bad_state_shows_error(sso_client):
    callback = sign_in_and_consent(start(sso_client), login="carol")
    parts = urlsplit(callback)
    query = "&".join("state=forged" if part.startswith("state=") else part for part in parts.query.split("&"))
    response = sso_client.get(f"{parts.path}?{query}")
    assert response.status_code == 400
    assert "invalid state" in response.get_data(as_text=True)


def test_replayed_callback_shows_error(sso_client, oidc_server):
    oidc_server.set_user_groups({"carol": [USERS_GROUP]})
    callback = sign_in_and_consent(start(sso_client), login="carol")
    sso_client.get(local_path(callback))
    response = sso_client.get(local_path(callback))
    assert response.status_code == 400
    assert "invalid state" in response.get_data(as_text=True)


def test_callback_from_other_browser_shows_error(sso_client, sso_app):
    callback = sign_in_and_consent(start(sso_client), login="carol")
    other = sso_app.test_client()
    response = other.get(local_path(callback))
    assert response.status_code == 400
    assert "invalid state" in response.get_data(as_text=True)


def test_issuer_mismatch_shows_error(sso_client):
    callback = sign_in_and_consent(start(sso_client), login="carol")
    parts = urlsplit(callback)
    query = "&".join(
        "iss=http%3A%2F%2Fother.invalid" if part.startswith("iss=") else part for part in parts.query.split("&")
    )
    assert "iss=" in parts.query
    response = sso_client.get(f"{parts.path}?{query}")
    assert response.status_code == 400
    assert "issuer mismatch" in response.get_data(as_text=True)


# Settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("staff=personal_auth_user", {"staff": {ROLE_USER}}),
        (" a = admin , a=personal_auth_user ,", {"a": {ROLE_ADMIN, ROLE_USER}}),
    ],
)
def test_parse_role_map(text, expected):
    assert parse_role_map(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("staff", "write it as group=role"),
        ("=admin", "write it as group=role"),
        ("staff=superuser", "unknown role"),
    ],
)
def test_parse_role_map_rejects(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_role_map(text)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SSO_CLIENT_ID": None}, "PERSONAL_AUTH_SSO_CLIENT_ID is missing"),
        ({"SSO_CLIENT_SECRET": ""}, "PERSONAL_AUTH_SSO_CLIENT_SECRET is missing"),
        ({"SSO_SCOPES": "profile email"}, "include openid"),
        ({"SSO_ROLE_MAP": "x=root"}, "unknown role"),
    ],
)
def test_invalid_sso_settings_stop_start(database_url, oidc_server, overrides, message):
    from app import create_app

    with pytest.raises(ConfigError, match=message):
        create_app(base_config(database_url, **sso_config(oidc_server, **overrides)))


def test_users_page_marks_sso_user(sso_client, oidc_server):
    oidc_server.set_user_groups({"carol": [USERS_GROUP, ADMINS_GROUP]})
    sso_sign_in(sso_client)
    html = sso_client.get("/admin/users").get_data(as_text=True)
    assert 'carol (you) <span class="hint">single sign-on</span>' in html
