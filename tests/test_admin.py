import html
import re

import pytest
from sqlalchemy import func, select

from app.accounts import find_user
from app.extensions import db
from app.models import (
    ROLE_ADMIN,
    ROLE_USER,
    Credential,
    GrantType,
    Integration,
    IntegrationType,
    LoginSession,
    Provider,
    User,
)
from tests.conftest import PASSWORD, TEST_BASE_URL, AuthActions

SECRET = "raw-client-secret-4711-do-not-show"

PROVIDER_FORM = {
    "name": "Code Hub",
    "client_id": "code-hub-client",
    "client_secret": SECRET,
    "authorization_url": "https://codehub.invalid/login/oauth/authorize",
    "token_url": "https://codehub.invalid/login/oauth/access_token",
    "revocation_url": "",
    "default_scopes": "repo  read:user",
    "grant_type": "authorization_code",
    "use_pkce": "y",
    "client_auth_method": "client_secret_post",
}

ADMIN_PAGES = [
    "/admin/",
    "/admin/providers",
    "/admin/providers/new",
    "/admin/integrations",
    "/admin/integrations/new",
    "/admin/users",
    "/admin/users/new",
]


def error_next_to(page: str, field: str) -> str:
    """Return the text of the error paragraph that the `field` macro renders for ``field``."""
    match = re.search(rf'<p class="error" id="{field}-error">(.*?)</p>', page, re.S)
    assert match, f"no error shown next to {field}"
    return html.unescape(match.group(1))


def tag_of(page: str, field: str) -> str:
    """Return the opening tag of the input, select or textarea with id ``field``."""
    match = re.search(rf'<(?:input|select|textarea)[^>]*\bid="{field}"[^>]*>', page)
    assert match, f"no input with id {field}"
    return match.group(0)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def fresh(model, row_id: int):
    """Load a row again: each request of the test client commits in its own session."""
    db.session.expire_all()
    return db.session.get(model, row_id)


@pytest.fixture
def admin(admin_user, auth):
    auth.login(admin_user.username)
    return admin_user


# Access --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_page_redirects_signed_out_user(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_page_forbidden_for_personal_user(user, auth, path):
    auth.login(user.username)
    response = auth.client.get(path)
    assert response.status_code == 403


def test_admin_post_forbidden_for_personal_user(user, auth):
    auth.login(user.username)
    response = auth.post("/admin/providers/new", PROVIDER_FORM)
    assert response.status_code == 403
    assert count(Provider) == 0


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_page_renders_for_admin(admin, client, path):
    response = client.get(path)
    assert response.status_code == 200


def test_admin_index_shows_counts(admin, client, make_provider, make_integration):
    provider = make_provider("Example")
    make_integration("Code Hub", provider)
    make_integration("Nightly Export", provider, integration_type="system")

    page = client.get("/admin/").get_data(as_text=True)

    assert "1 registered OAuth provider." in page
    assert "1 personal, 1 system." in page
    assert "1 local account." in page


# Providers -----------------------------------------------------------------------------


def test_provider_create(admin, auth):
    response = auth.post("/admin/providers/new", PROVIDER_FORM, token_from="/admin/providers/new")

    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/providers"
    provider = db.session.scalar(select(Provider))
    assert provider.name == "Code Hub"
    assert provider.client_id == "code-hub-client"
    assert provider.client_secret == SECRET
    assert provider.default_scopes == "repo read:user"
    assert provider.grant_type == GrantType.AUTHORIZATION_CODE
    assert provider.use_pkce is True
    assert provider.client_auth_method.value == "client_secret_post"
    assert provider.revocation_url is None


def test_provider_create_without_pkce(admin, auth):
    form = {key: value for key, value in PROVIDER_FORM.items() if key != "use_pkce"}

    auth.post("/admin/providers/new", form)

    assert db.session.scalar(select(Provider)).use_pkce is False


def test_provider_new_form_has_pkce_checked(admin, client):
    page = client.get("/admin/providers/new").get_data(as_text=True)

    assert "checked" in tag_of(page, "use_pkce")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "Name is required."),
        ({"token_url": "ftp://codehub.invalid/token"}, "token_url", "is not an absolute http(s) URL"),
        ({"token_url": "not a url"}, "token_url", "is not an absolute http(s) URL"),
        ({"name": "existing provider"}, "name", "already exists"),
        ({"authorization_url": ""}, "authorization_url", "required for the authorization_code grant"),
        ({"client_secret": ""}, "client_secret", "Client secret is required."),
        ({"client_id": " "}, "client_id", "Client ID is required."),
        ({"grant_type": "implicit"}, "grant_type", "is not supported"),
        ({"revocation_url": "https://user:pw@codehub.invalid/revoke"}, "revocation_url", "username or password"),
    ],
)
def test_provider_error_next_to_field(admin, auth, make_provider, changes, field, message):
    make_provider("Existing Provider")

    response = auth.post("/admin/providers/new", {**PROVIDER_FORM, **changes})

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in error_next_to(page, field)
    assert 'aria-invalid="true"' in tag_of(page, field)
    assert count(Provider) == 1


def test_provider_invalid_edit_saves_nothing(admin, auth, make_provider):
    provider = make_provider("Example", client_id="before")

    response = auth.post(
        f"/admin/providers/{provider.id}/edit", {**PROVIDER_FORM, "client_id": "after", "token_url": ""}
    )

    assert response.status_code == 422
    assert fresh(Provider, provider.id).client_id == "before"


def test_provider_secret_never_rendered(admin, auth, client):
    auth.post("/admin/providers/new", PROVIDER_FORM)
    provider = db.session.scalar(select(Provider))
    assert provider.client_secret == SECRET

    pages = {
        "list": client.get("/admin/providers"),
        "edit": client.get(f"/admin/providers/{provider.id}/edit"),
        "invalid edit": auth.post(
            f"/admin/providers/{provider.id}/edit", {**PROVIDER_FORM, "client_secret": "", "name": ""}
        ),
        "delete": client.get(f"/admin/providers/{provider.id}/delete"),
        "index": client.get("/admin/"),
    }
    for label, response in pages.items():
        page = response.get_data(as_text=True)
        assert SECRET not in page, f"secret in the {label} page"
        assert provider.client_secret_ciphertext not in page, f"ciphertext in the {label} page"


def test_secret_input_empty_after_error(admin, auth):
    response = auth.post("/admin/providers/new", {**PROVIDER_FORM, "name": ""})

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert SECRET not in page
    assert re.search(r'value="[^"]', tag_of(page, "client_secret")) is None


def test_provider_edit_keeps_secret_when_empty(admin, auth, make_provider):
    provider = make_provider("Example", client_secret="stored-secret-1")

    response = auth.post(
        f"/admin/providers/{provider.id}/edit",
        {**PROVIDER_FORM, "name": "Example", "client_secret": "", "client_id": "new-client"},
    )

    assert response.status_code == 303
    provider = fresh(Provider, provider.id)
    assert provider.client_id == "new-client"
    assert provider.client_secret == "stored-secret-1"


def test_provider_edit_replaces_secret(admin, auth, make_provider):
    provider = make_provider("Example", client_secret="stored-secret-1")

    response = auth.post(f"/admin/providers/{provider.id}/edit", {**PROVIDER_FORM, "client_secret": "new-secret-2"})

    assert response.status_code == 303
    assert fresh(Provider, provider.id).client_secret == "new-secret-2"


def test_provider_edit_shows_redirect_uri(admin, client, make_provider):
    provider = make_provider("Example")

    page = client.get(f"/admin/providers/{provider.id}/edit").get_data(as_text=True)

    assert "Leave empty to keep the stored secret" in page
    assert '<label for="redirect-uri">Redirect URI</label>' in page
    redirect_input = tag_of(page, "redirect-uri")
    assert f'value="{TEST_BASE_URL}/oauth/callback"' in redirect_input
    assert "readonly" in redirect_input
    assert "Save provider" in page


def test_provider_edit_unknown_id_is_404(admin, client):
    assert client.get("/admin/providers/999/edit").status_code == 404


def test_provider_delete(admin, auth, client, make_provider):
    provider = make_provider("Example")
    confirm = client.get(f"/admin/providers/{provider.id}/delete").get_data(as_text=True)
    assert "Delete provider Example" in confirm

    response = auth.post(f"/admin/providers/{provider.id}/delete")

    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/providers"
    assert count(Provider) == 0


def test_provider_delete_blocked_when_used(admin, auth, client, make_provider, make_integration):
    provider = make_provider("Example")
    make_integration("Code Hub", provider)
    confirm = client.get(f"/admin/providers/{provider.id}/delete").get_data(as_text=True)
    assert "used by the integrations Code Hub" in html.unescape(confirm)

    response = auth.post(f"/admin/providers/{provider.id}/delete")

    assert response.status_code == 409
    assert "used by the integrations Code Hub" in html.unescape(response.get_data(as_text=True))
    assert count(Provider) == 1


# Integrations --------------------------------------------------------------------------


def integration_form(provider, **changes):
    form = {
        "name": "Code Hub",
        "description": "Repositories and issues.",
        "provider_id": str(provider.id),
        "scopes": "",
        "integration_type": "personal",
        "api_base_url": "https://api.codehub.invalid",
        "is_enabled": "y",
    }
    form.update(changes)
    return form


def test_integration_create(admin, auth, make_provider):
    provider = make_provider("Example", default_scopes="openid")

    response = auth.post("/admin/integrations/new", integration_form(provider), token_from="/admin/integrations/new")

    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/integrations"
    integration = db.session.scalar(select(Integration))
    assert integration.name == "Code Hub"
    assert integration.provider_id == provider.id
    assert integration.scopes is None
    assert integration.requested_scopes == "openid"
    assert integration.integration_type == IntegrationType.PERSONAL
    assert integration.api_base_url == "https://api.codehub.invalid"
    assert integration.is_enabled is True


def test_integration_list_shows_type_and_provider(admin, client, make_provider, make_integration):
    provider = make_provider("Example")
    make_integration("Nightly Export", provider, integration_type="system")

    page = client.get("/admin/integrations").get_data(as_text=True)

    row = re.search(r"<tr>\s*<th scope=\"row\">Nightly Export</th>.*?</tr>", page, re.S).group(0)
    assert "<td>system</td>" in row
    assert "<td>Example</td>" in row


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "Name is required."),
        ({"provider_id": ""}, "provider_id", "Choose a provider."),
        ({"provider_id": "9999"}, "provider_id", "Choose a provider."),
        ({"integration_type": "shared"}, "integration_type", "is not supported"),
        ({"api_base_url": "api.codehub.invalid"}, "api_base_url", "is not an absolute http(s) URL"),
        ({"name": "code hub"}, "name", "already exists"),
        ({"name": "365"}, "name", "would read as an id"),
    ],
)
def test_integration_error_next_to_field(admin, auth, make_provider, make_integration, changes, field, message):
    provider = make_provider("Example")
    make_integration("Code Hub", provider)

    response = auth.post("/admin/integrations/new", integration_form(provider, **{"name": "Other", **changes}))

    assert response.status_code == 422
    assert message in error_next_to(response.get_data(as_text=True), field)
    assert count(Integration) == 1


def test_integration_edit(admin, auth, client, make_provider, make_integration):
    first = make_provider("First")
    second = make_provider("Second")
    integration = make_integration("Code Hub", first, scopes="repo")
    page = client.get(f"/admin/integrations/{integration.id}/edit").get_data(as_text=True)
    assert "Save integration" in page
    assert "Empty means the provider&#39;s default scopes." in page

    response = auth.post(
        f"/admin/integrations/{integration.id}/edit",
        integration_form(second, name="Code Hub Renamed", scopes="", integration_type="system", is_enabled=""),
    )

    assert response.status_code == 303
    integration = fresh(Integration, integration.id)
    assert integration.name == "Code Hub Renamed"
    assert integration.provider_id == second.id
    assert integration.scopes is None
    assert integration.integration_type == IntegrationType.SYSTEM


def test_integration_edit_disables(admin, auth, make_provider, make_integration):
    provider = make_provider("Example")
    integration = make_integration("Code Hub", provider)
    form = integration_form(provider)
    del form["is_enabled"]

    auth.post(f"/admin/integrations/{integration.id}/edit", form)

    assert fresh(Integration, integration.id).is_enabled is False


def test_integration_delete(admin, auth, client, make_provider, make_integration):
    integration = make_integration("Code Hub", make_provider("Example"))
    confirm = client.get(f"/admin/integrations/{integration.id}/delete").get_data(as_text=True)
    assert "Delete integration Code Hub" in confirm

    response = auth.post(f"/admin/integrations/{integration.id}/delete")

    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/integrations"
    assert count(Integration) == 0


def test_integration_delete_blocked_by_tokens(admin, auth, make_provider, make_integration):
    integration = make_integration("Code Hub", make_provider("Example"))
    credential = Credential(user_id=admin.id, integration_id=integration.id)
    credential.access_token = "access-token-1"
    db.session.add(credential)
    db.session.commit()

    response = auth.post(f"/admin/integrations/{integration.id}/delete")

    assert response.status_code == 409
    assert "still stores tokens of 1 user" in html.unescape(response.get_data(as_text=True))
    assert count(Integration) == 1
    assert count(Credential) == 1


def test_system_integration_not_on_dashboard(admin, client, make_provider, make_integration):
    provider = make_provider("Example")
    make_integration("Team Tracker", provider)
    make_integration("Nightly Export", provider, integration_type="system")

    page = client.get("/").get_data(as_text=True)

    assert "Team Tracker" in page
    assert "Nightly Export" not in page


# Users ---------------------------------------------------------------------------------


def test_user_create_with_roles(admin, auth):
    response = auth.post(
        "/admin/users/new",
        {
            "username": "bob",
            "display_name": "Bob Builder",
            "email": "bob@example.com",
            "password": "a-long-password-1",
            "roles": [ROLE_USER, ROLE_ADMIN],
        },
        token_from="/admin/users/new",
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/users"
    user = find_user("bob")
    assert sorted(role.name for role in user.roles) == sorted([ROLE_ADMIN, ROLE_USER])
    assert user.display_name == "Bob Builder"
    assert user.email == "bob@example.com"
    assert user.check_password("a-long-password-1")


def test_user_new_form_checks_personal_role(admin, client):
    page = client.get("/admin/users/new").get_data(as_text=True)

    user_box = re.search(rf'<input[^>]*value="{ROLE_USER}"[^>]*>', page).group(0)
    admin_box = re.search(rf'<input[^>]*value="{ROLE_ADMIN}"[^>]*>', page).group(0)
    assert "checked" in user_box
    assert "checked" not in admin_box


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"username": ""}, "username", "Username is missing."),
        ({"username": "root-admin"}, "username", "already taken"),
        ({"password": "short"}, "password", "Password is too short"),
        ({"email": "not-an-address"}, "email", "is invalid"),
        ({"roles": ["superuser"]}, "roles", "Unknown role 'superuser'"),
    ],
)
def test_user_create_error_next_to_field(admin, auth, changes, field, message):
    form = {"username": "bob", "password": "a-long-password-1", "roles": [ROLE_USER]}

    response = auth.post("/admin/users/new", {**form, **changes})

    assert response.status_code == 422
    assert message in error_next_to(response.get_data(as_text=True), field)
    assert find_user("bob") is None


def test_user_list_shows_roles_and_state(admin, client, make_user):
    make_user("carol", roles=(ROLE_USER,))

    page = client.get("/admin/users").get_data(as_text=True)

    row = re.search(r'<th scope="row">carol</th>.*?</tr>', page, re.S).group(0)
    assert f"<td>{ROLE_USER}</td>" in row
    assert "<td>yes</td>" in row


def test_user_edit(admin, auth, client, make_user):
    carol = make_user("carol", roles=(ROLE_USER,))
    page = client.get(f"/admin/users/{carol.id}/edit").get_data(as_text=True)
    assert "Save user carol" in page

    response = auth.post(
        f"/admin/users/{carol.id}/edit",
        {"display_name": "Carol C.", "email": "carol@example.com", "roles": [ROLE_ADMIN], "is_enabled": "y"},
    )

    assert response.status_code == 303
    carol = fresh(User, carol.id)
    assert [role.name for role in carol.roles] == [ROLE_ADMIN]
    assert carol.display_name == "Carol C."
    assert carol.email == "carol@example.com"
    assert carol.check_password(PASSWORD)


def test_user_edit_deactivates_and_signs_out(admin, auth, client, make_user):
    carol = make_user("carol", roles=(ROLE_USER,))
    carol_client = client.application.test_client()
    AuthActions(carol_client).login("carol")
    assert db.session.scalar(select(func.count()).where(LoginSession.user_id == carol.id)) == 1

    response = auth.post(f"/admin/users/{carol.id}/edit", {"roles": [ROLE_USER]})

    assert response.status_code == 303
    assert fresh(User, carol.id).is_enabled is False
    assert db.session.scalar(select(func.count()).where(LoginSession.user_id == carol.id)) == 0
    assert carol_client.get("/").status_code == 302


def test_user_edit_sets_new_password(admin, auth, make_user):
    carol = make_user("carol", roles=(ROLE_USER,))

    auth.post(
        f"/admin/users/{carol.id}/edit",
        {"roles": [ROLE_USER], "is_enabled": "y", "password": "another-long-password"},
    )

    carol = fresh(User, carol.id)
    assert carol.check_password("another-long-password")
    assert not carol.check_password(PASSWORD)


def test_admin_cannot_remove_own_admin_role(admin, auth):
    response = auth.post(f"/admin/users/{admin.id}/edit", {"roles": [ROLE_USER], "is_enabled": "y"})

    assert response.status_code == 422
    assert "cannot remove the admin role from your own account" in error_next_to(
        response.get_data(as_text=True), "roles"
    )
    assert fresh(User, admin.id).has_role(ROLE_ADMIN)


def test_admin_cannot_deactivate_self(admin, auth):
    response = auth.post(f"/admin/users/{admin.id}/edit", {"roles": [ROLE_ADMIN, ROLE_USER]})

    assert response.status_code == 422
    assert "cannot deactivate your own account" in error_next_to(response.get_data(as_text=True), "is_enabled")
    assert fresh(User, admin.id).is_enabled is True


def test_own_password_change_keeps_session(admin, auth, client):
    response = auth.post(
        f"/admin/users/{admin.id}/edit",
        {"roles": [ROLE_ADMIN, ROLE_USER], "is_enabled": "y", "password": "another-long-password"},
    )

    assert response.status_code == 303
    assert client.get("/admin/users").status_code == 200
