"""Attacks on routes and flows: CSRF, IDOR, the OAuth callback, redirects, XSS, sessions,
roles, secret leaks, security headers, malformed input and the token API.

Provider responses come from ``responses``, so no request leaves the test process.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import responses
from sqlalchemy import select

from app import create_app
from app.api_keys import create_api_key, revoke_api_key
from app.extensions import db
from app.groups import GroupInput, save_group, set_integration_groups
from app.models import ROLE_ADMIN, AuthorizationRequest, Credential, IntegrationType, LoginSession, utcnow
from app.security import SECURITY_HEADERS
from tests.conftest import PASSWORD, IsolatedClient, base_config, csrf_token_in

TOKEN_URL = "https://provider.invalid/token"
ACCESS_TOKEN = "attack-access-token-" + "a" * 24
REFRESH_TOKEN = "attack-refresh-token-" + "r" * 24
CLIENT_SECRET = "client-secret-1"
CODE = "attack-authorization-code-" + "c" * 20


def credential_for(user, integration) -> Credential | None:
    db.session.expire_all()
    return db.session.scalar(
        select(Credential).where(Credential.user_id == user.id, Credential.integration_id == integration.id)
    )


def add_credential(user, integration) -> Credential:
    credential = Credential(user_id=user.id, integration_id=integration.id, connected_at=utcnow())
    credential.access_token = ACCESS_TOKEN
    credential.refresh_token = REFRESH_TOKEN
    credential.access_token_expires_at = utcnow() + timedelta(hours=1)
    db.session.add(credential)
    db.session.commit()
    return credential


def start_state(client, integration, display="popup") -> str:
    response = client.get(f"/connect/{integration.id}?display={display}")
    assert response.status_code == 302
    return parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]


def token_answer(status=200, body=None):
    responses.add(
        responses.POST,
        TOKEN_URL,
        json=body
        if body is not None
        else {
            "access_token": ACCESS_TOKEN,
            "refresh_token": REFRESH_TOKEN,
            "token_type": "Bearer",
            "expires_in": 3600,
        },
        status=status,
    )


@pytest.fixture
def integration(make_provider, make_integration):
    return make_integration("Code Hub", make_provider("Example"))


@pytest.fixture
def alice(auth, user):
    auth.login("alice")
    return user


# CSRF --------------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True])
def test_revoke_without_csrf_rejected(client, alice, integration, htmx):
    add_credential(alice, integration)
    headers = {"HX-Request": "true"} if htmx else {}
    response = client.post(f"/integrations/{integration.id}/revoke", headers=headers)
    assert response.status_code == 400
    assert credential_for(alice, integration) is not None


@pytest.mark.parametrize("htmx", [False, True])
def test_revoke_with_wrong_csrf_rejected(client, alice, integration, htmx):
    add_credential(alice, integration)
    headers = {"X-CSRFToken": "forged-token"}
    if htmx:
        headers["HX-Request"] = "true"
    response = client.post(f"/integrations/{integration.id}/revoke", headers=headers)
    assert response.status_code == 400
    assert credential_for(alice, integration) is not None


def test_csrf_token_of_other_session_rejected(app, client, alice, make_user, integration):
    make_user("bob")
    other = app.test_client()
    other.post(
        "/login",
        data={
            "username": "bob",
            "password": PASSWORD,
            "csrf_token": csrf_token_in(other.get("/login").get_data(as_text=True)),
        },
    )
    bob_token = csrf_token_in(other.get("/").get_data(as_text=True))
    add_credential(alice, integration)
    response = client.post(f"/integrations/{integration.id}/revoke", data={"csrf_token": bob_token})
    assert response.status_code == 400
    assert credential_for(alice, integration) is not None


def test_login_without_csrf_rejected(client, user):
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_logout_without_csrf_keeps_session(client, alice):
    response = client.post("/logout")
    assert response.status_code == 400
    assert client.get("/").status_code == 200


def test_password_grant_without_csrf_rejected(client, alice, make_provider, make_integration):
    provider = make_provider("Desk", grant_type="password", authorization_url=None)
    desk = make_integration("Desk", provider)
    response = client.post(f"/connect/{desk.id}/password", data={"username": "u", "password": "p"})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "path",
    ["/admin/providers/new", "/admin/integrations/new", "/admin/users/new", "/admin/groups/new", "/admin/api-keys/new"],
)
def test_admin_post_without_csrf_rejected(auth, client, admin_user, path):
    auth.login("root-admin")
    response = client.post(path, data={"name": "x", "username": "x", "service": "x"})
    assert response.status_code == 400


# IDOR --------------------------------------------------------------------------------


def test_revoke_other_users_credential_404(auth, client, user, make_user, integration):
    bob = make_user("bob")
    add_credential(bob, integration)
    auth.login("alice")
    response = auth.post(f"/integrations/{integration.id}/revoke")
    assert response.status_code == 404
    assert credential_for(bob, integration) is not None


@pytest.mark.parametrize("kind", ["system", "disabled", "group", "unknown"])
def test_hidden_integration_unreachable(auth, client, alice, make_provider, make_integration, kind):
    provider = make_provider("Hidden")
    if kind == "system":
        target = make_integration("Hidden", provider, integration_type=IntegrationType.SYSTEM)
    elif kind == "disabled":
        target = make_integration("Hidden", provider, is_enabled=False)
    elif kind == "group":
        target = make_integration("Hidden", provider)
        set_integration_groups(target, [save_group(GroupInput(name="secret-team"))])
    target_id = target.id if kind != "unknown" else 99999
    assert client.get(f"/connect/{target_id}").status_code == 404
    assert auth.post(f"/connect/{target_id}/password", {"username": "u", "password": "p"}).status_code == 404
    assert auth.post(f"/integrations/{target_id}/revoke").status_code == 404


# OAuth callback ------------------------------------------------------------------------


@responses.activate
def test_callback_stores_tokens_with_mock(client, alice, integration):
    state = start_state(client, integration)
    token_answer()
    response = client.get(f"/oauth/callback?state={state}&code={CODE}")
    assert response.status_code == 200
    assert credential_for(alice, integration).access_token == ACCESS_TOKEN


@responses.activate
def test_replayed_callback_rejected(client, alice, integration):
    state = start_state(client, integration)
    token_answer()
    client.get(f"/oauth/callback?state={state}&code={CODE}")
    response = client.get(f"/oauth/callback?state={state}&code={CODE}")
    assert response.status_code == 400
    assert len(responses.calls) == 1


def test_callback_error_html_is_escaped(client, alice, integration):
    state = start_state(client, integration)
    payload = "<script>alert(1)</script>"
    query = f"state={state}&error={quote(payload)}&error_description={quote('<img src=x onerror=alert(1)>')}"
    html = client.get(f"/oauth/callback?{query}").get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert "<img src=x" not in html
    assert "&lt;img src=x" in html
    assert "unrecognized_error" in html


def test_callback_error_description_token_redacted(client, alice, integration):
    state = start_state(client, integration)
    leaked = "ya29." + "t" * 60
    html = client.get(f"/oauth/callback?state={state}&error=access_denied&error_description={leaked}").get_data(
        as_text=True
    )
    assert leaked not in html
    assert "[redacted]" in html


def test_callback_page_display_flash_escaped(client, alice, integration):
    state = start_state(client, integration, display="page")
    query = f"state={state}&error=access_denied&error_description={quote('<b>bad</b>')}"
    response = client.get(f"/oauth/callback?{query}")
    assert response.status_code == 303
    html = client.get("/").get_data(as_text=True)
    assert "<b>bad</b>" not in html
    assert "&lt;b&gt;bad&lt;/b&gt;" in html


def test_callback_without_login_redirects(client, integration):
    response = client.get("/oauth/callback?state=x&code=y")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_callback_state_of_other_user_burned(app, client, auth, user, make_user, integration):
    make_user("bob")
    auth.login("bob")
    state = start_state(client, integration)
    auth.logout()
    auth.login("alice")
    response = client.get(f"/oauth/callback?state={state}&code={CODE}")
    assert response.status_code == 400
    assert credential_for(user, integration) is None


# Open redirects ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.invalid/",
        "//evil.invalid/",
        "/\\evil.invalid/",
        "\\\\evil.invalid",
        "/\t/evil.invalid/",
        "/%2F/evil.invalid",
        " //evil.invalid",
        "javascript:alert(1)",
        "///evil.invalid",
        "/\n/evil.invalid",
    ],
)
def test_login_next_stays_on_site(client, user, target):
    token = csrf_token_in(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login?next=" + quote(target, safe=""),
        data={"username": "alice", "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    parts = urlsplit(location)
    assert parts.netloc in ("", "localhost")
    assert not location.startswith("//")
    assert "evil.invalid" not in parts.netloc


# Sessions ------------------------------------------------------------------------------


def test_session_cookie_changes_at_login(client, user):
    client.get("/login")
    before = client.get_cookie("personal_auth_session")
    token = csrf_token_in(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token})
    after = client.get_cookie("personal_auth_session")
    assert after is not None
    assert before is None or before.value != after.value


def test_old_cookie_dead_after_logout(app, client, auth, alice):
    cookie = client.get_cookie("personal_auth_session").value
    auth.logout()
    replay = app.test_client()
    replay.set_cookie("personal_auth_session", cookie)
    response = replay.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_deactivated_user_session_ends(client, alice):
    alice.is_enabled = False
    db.session.commit()
    response = client.get("/")
    assert response.status_code == 302


def test_removed_role_blocks_dashboard(client, alice):
    alice.roles.clear()
    db.session.commit()
    assert client.get("/").status_code == 403


def test_htmx_after_logout_gets_hx_redirect(app, client, auth, alice):
    cookie = client.get_cookie("personal_auth_session").value
    db.session.execute(LoginSession.__table__.delete())
    db.session.commit()
    client.set_cookie("personal_auth_session", cookie)
    response = client.get("/sections", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login"
    assert "<form" not in response.get_data(as_text=True)


def test_htmx_post_after_session_expiry(app, client, auth, alice, integration):
    add_credential(alice, integration)
    token = auth.csrf_token()
    db.session.execute(LoginSession.__table__.delete())
    db.session.commit()
    response = client.post(
        f"/integrations/{integration.id}/revoke",
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login"


# Roles on every route --------------------------------------------------------------------


def rule_paths(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/api/"):
            continue
        path = rule.rule
        for argument in rule.arguments:
            path = re.sub(rf"<(?:[a-z]+:)?{argument}>", "1", path)
        yield rule, path


def test_anonymous_gets_login_on_every_page(app, client):
    public = {"auth.login", "auth.logout", "auth.sso_login", "auth.sso_callback"}
    for rule, path in rule_paths(app):
        if rule.endpoint in public or "GET" not in rule.methods:
            continue
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/login" in response.headers["Location"], path


def test_user_gets_403_on_admin_pages(app, client, alice):
    for rule, path in rule_paths(app):
        if not rule.endpoint.startswith("admin.") or "GET" not in rule.methods:
            continue
        assert client.get(path).status_code == 403, path


def test_user_gets_403_on_admin_posts(app, client, auth, alice):
    token = auth.csrf_token()
    for rule, path in rule_paths(app):
        if not rule.endpoint.startswith("admin.") or "POST" not in rule.methods:
            continue
        assert client.post(path, data={"csrf_token": token}).status_code == 403, path


def test_admin_only_role_denied_dashboard(auth, client, make_user, integration):
    make_user("ops", roles=(ROLE_ADMIN,))
    auth.login("ops")
    assert client.get("/").status_code == 403
    assert client.get(f"/connect/{integration.id}").status_code == 403


# Secrets ---------------------------------------------------------------------------------


def app_log_lines(caplog) -> list[str]:
    """Format captured records as the app's own redacting handler would."""
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "personal_auth", False))
    lines = []
    for record in caplog.records:
        handler.filter(record)
        lines.append(handler.format(record))
    return lines


@responses.activate
def test_flow_pages_and_logs_hold_no_secret(client, alice, integration, caplog):
    caplog.set_level(logging.DEBUG)
    start = client.get(f"/connect/{integration.id}?display=popup")
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    verifier = db.session.scalar(select(AuthorizationRequest)).code_verifier
    token_answer()
    pages = [client.get(f"/oauth/callback?state={state}&code={CODE}").get_data(as_text=True)]
    pages.append(client.get("/").get_data(as_text=True))
    pages.append(client.get("/sections", headers={"HX-Request": "true"}).get_data(as_text=True))
    lines = app_log_lines(caplog)
    for secret in (ACCESS_TOKEN, REFRESH_TOKEN, CLIENT_SECRET, CODE, verifier, state, PASSWORD):
        for page in pages:
            assert secret not in page, secret
        for line in lines:
            assert secret not in line, (secret, line)


@responses.activate
def test_token_error_echoing_secret_hidden(client, alice, integration, caplog):
    caplog.set_level(logging.DEBUG)
    state = start_state(client, integration)
    token_answer(400, {"error": "invalid_grant", "error_description": f"bad code {CODE} for {CLIENT_SECRET}"})
    html = client.get(f"/oauth/callback?state={state}&code={CODE}").get_data(as_text=True)
    assert CODE not in html
    assert CLIENT_SECRET not in html
    for line in app_log_lines(caplog):
        assert CODE not in line
        assert CLIENT_SECRET not in line


def test_admin_pages_hide_client_secret(auth, client, admin_user, integration):
    auth.login("root-admin")
    provider_id = integration.provider_id
    for path in (
        "/admin/providers",
        f"/admin/providers/{provider_id}/edit",
        f"/admin/providers/{provider_id}/delete",
        "/admin/integrations",
        f"/admin/integrations/{integration.id}/edit",
        f"/admin/integrations/{integration.id}/connected",
    ):
        assert CLIENT_SECRET not in client.get(path).get_data(as_text=True), path


def test_admin_connected_page_hides_tokens(auth, client, user, admin_user, integration):
    add_credential(user, integration)
    auth.login("root-admin")
    html = client.get(f"/admin/integrations/{integration.id}/connected").get_data(as_text=True)
    assert ACCESS_TOKEN not in html
    assert REFRESH_TOKEN not in html


def test_audit_csv_hides_tokens(auth, client, user, admin_user, integration):
    add_credential(user, integration)
    auth.login("root-admin")
    export = client.get("/admin/audit.csv").get_data(as_text=True)
    assert ACCESS_TOKEN not in export


# XSS -------------------------------------------------------------------------------------


def test_names_escaped_on_dashboard(client, auth, user, make_provider, make_integration):
    provider = make_provider('<img src=x onerror="alert(1)">')
    target = make_integration("<script>alert(2)</script>", provider, description="<svg onload=alert(3)>")
    add_credential(user, target)
    auth.login("alice")
    dashboard = client.get("/").get_data(as_text=True)
    fragment = auth.post(f"/integrations/{target.id}/revoke", htmx=True).get_data(as_text=True)
    for html in (dashboard, fragment):
        assert "<script>alert(2)" not in html
        assert "<img src=x" not in html
        assert "<svg onload" not in html


def test_username_escaped_in_header(client, auth, make_user):
    make_user("<b>mallory</b>")
    auth.login("<b>mallory</b>")
    html = client.get("/").get_data(as_text=True)
    assert "<b>mallory</b>" not in html


# Headers ---------------------------------------------------------------------------------


def assert_security_headers(response, label, **overrides):
    for name, value in {**SECURITY_HEADERS, **overrides}.items():
        assert response.headers.get(name) == value, (label, name)


def test_headers_on_error_responses(client, alice, integration):
    assert_security_headers(client.get("/logout"), "405")
    assert_security_headers(client.post(f"/integrations/{integration.id}/revoke"), "csrf 400")
    assert_security_headers(client.get("/oauth/callback"), "callback 400", **{"Referrer-Policy": "no-referrer"})
    assert_security_headers(client.get("/static/css/app.css"), "static")
    assert_security_headers(client.get("/api/v1/openapi.json"), "api")
    assert_security_headers(client.get("/api/v1/users/alice/integrations/1/token"), "api 401")


def test_500_page_has_headers_and_no_trace(app, client, alice, monkeypatch):
    from app.dashboard import routes

    def explode(user):
        raise RuntimeError("secret " + ACCESS_TOKEN)

    monkeypatch.setattr(routes, "dashboard_cards", explode)
    response = client.get("/")
    assert response.status_code == 500
    assert_security_headers(response, "500")
    assert ACCESS_TOKEN not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_logout_get_not_allowed(client, alice):
    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200


# Malformed input ---------------------------------------------------------------------


@pytest.mark.parametrize("username", ["a" * 10000, "\u202eadmin", "😀" * 100])
def test_login_odd_username_rejected(client, user, username):
    token = csrf_token_in(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": username, "password": "x", "csrf_token": token})
    assert response.status_code == 422


def test_password_form_overlong_password_422(client, auth, alice, make_provider, make_integration):
    provider = make_provider("Desk", grant_type="password", authorization_url=None)
    desk = make_integration("Desk", provider)
    response = auth.post(f"/connect/{desk.id}/password", {"username": "bob", "password": "p" * 2000})
    assert response.status_code == 422


def test_oversized_body_rejected(client, auth, alice):
    token = auth.csrf_token()
    response = client.post("/logout", data={"csrf_token": token, "pad": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413


# Token API -----------------------------------------------------------------------------


def api_get(client, key, username, reference):
    return client.get(
        f"/api/v1/users/{quote(username, safe='')}/integrations/{quote(reference, safe='')}/token",
        headers={"Authorization": f"Bearer {key}"} if key else {},
    )


def test_api_without_key_401(client, user, integration):
    add_credential(user, integration)
    assert api_get(client, None, "alice", str(integration.id)).status_code == 401


def test_api_revoked_key_401(client, user, integration):
    add_credential(user, integration)
    api_key, raw_key = create_api_key("bot", [integration.name])
    revoke_api_key(api_key)
    response = api_get(client, raw_key, "alice", str(integration.id))
    assert response.status_code == 401
    assert ACCESS_TOKEN not in response.get_data(as_text=True)


def test_api_key_of_other_integration_403(client, user, integration, make_provider, make_integration):
    other = make_integration("Other", make_provider("Other"))
    add_credential(user, integration)
    _, raw_key = create_api_key("bot", [other.name])
    response = api_get(client, raw_key, "alice", str(integration.id))
    assert response.status_code == 403
    assert ACCESS_TOKEN not in response.get_data(as_text=True)


def test_api_session_cookie_not_enough(client, alice, integration):
    add_credential(alice, integration)
    assert api_get(client, None, "alice", str(integration.id)).status_code == 401


# HTTPS cookies, audit export, admin input and API keys ---------------------------------


def https_client(database_url):
    https_app = create_app(base_config(database_url, BASE_URL="https://auth.example.invalid"))
    https_app.test_client_class = IsolatedClient
    return https_app.test_client()


def test_https_sets_secure_cookie_and_hsts(database_url, user):
    client = https_client(database_url)
    response = client.get("https://localhost/login")
    assert "Secure" in response.headers["Set-Cookie"]
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_session_cookie_flags(client, user):
    client.get("/login")
    token = csrf_token_in(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_expired_login_session_ends(client, alice):
    for login_session in db.session.scalars(select(LoginSession)):
        login_session.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get("/").status_code == 302


def test_deactivated_user_cannot_login(client, auth, user):
    user.is_enabled = False
    db.session.commit()
    assert auth.login("alice").status_code == 422


def test_audit_csv_neutralises_formula(auth, client, user, admin_user, integration):
    auth.login("alice")
    state = start_state(client, integration)
    client.get(f"/oauth/callback?state={state}&error={quote('=HYPERLINK(1)')}")
    auth.logout()
    auth.login("root-admin")
    export = client.get("/admin/audit.csv").get_data(as_text=True)
    assert ",=HYPERLINK" not in export
    assert '"=HYPERLINK' not in export


def test_admin_overlong_provider_rejected(auth, client, admin_user):
    auth.login("root-admin")
    token = auth.csrf_token("/admin/providers/new")
    response = client.post(
        "/admin/providers/new",
        data={
            "name": "p" * 5000,
            "client_id": "c" * 5000,
            "token_url": "https://provider.invalid/token",
            "grant_type": "password",
            "client_auth_method": "client_secret_basic",
            "csrf_token": token,
        },
    )
    assert response.status_code == 422


def test_admin_unknown_role_no_server_error(auth, client, admin_user, user):
    auth.login("root-admin")
    token = auth.csrf_token(f"/admin/users/{user.id}/edit")
    response = client.post(
        f"/admin/users/{user.id}/edit",
        data={"username": "alice", "roles": ["superuser"], "is_enabled": "y", "csrf_token": token},
    )
    assert response.status_code in (303, 422)


@pytest.mark.parametrize("authorization", ["Bearer pa_\x00_x", "Bearer " + "a" * 100000, "Bearer pa_zzzzzzzzzzzz_x"])
def test_api_odd_bearer_401(client, user, integration, authorization):
    response = client.get(
        f"/api/v1/users/alice/integrations/{integration.id}/token", headers={"Authorization": authorization}
    )
    assert response.status_code == 401


def test_admin_revoke_all_without_csrf_keeps_tokens(auth, client, user, admin_user, integration):
    add_credential(user, integration)
    auth.login("root-admin")
    client.post(f"/admin/integrations/{integration.id}/connected/revoke-all")
    assert credential_for(user, integration) is not None


def test_admin_delete_without_csrf_keeps_rows(auth, client, admin_user, integration):
    auth.login("root-admin")
    client.post(f"/admin/integrations/{integration.id}/delete")
    client.post(f"/admin/providers/{integration.provider_id}/delete")
    db.session.expire_all()
    assert db.session.get(type(integration), integration.id) is not None


@responses.activate
def test_password_grant_secrets_hidden(client, auth, alice, make_provider, make_integration, caplog):
    caplog.set_level(logging.DEBUG)
    provider = make_provider("Desk", grant_type="password", authorization_url=None)
    desk = make_integration("Desk", provider)
    provider_password = "provider-pass-xyz"
    responses.add(
        responses.POST,
        TOKEN_URL,
        json={"error": "invalid_grant", "error_description": f"password {provider_password} is wrong"},
        status=400,
    )
    response = auth.post(f"/connect/{desk.id}/password", {"username": "bob", "password": provider_password})
    assert response.status_code == 422
    assert provider_password not in response.get_data(as_text=True)
    for line in app_log_lines(caplog):
        assert provider_password not in line
