"""Groups, and integrations limited to the members of named groups."""

import pytest
from sqlalchemy import select

from app.extensions import db
from app.groups import GroupError, GroupInput, delete_group, save_group, set_integration_groups, set_user_groups
from app.models import ROLE_ADMIN, ROLE_USER, Group, Integration
from tests.test_dashboard import add_credential, count_queries, sections


@pytest.fixture
def provider(make_provider):
    return make_provider("Example")


@pytest.fixture
def sales(app):
    return save_group(GroupInput("sales", "Sales team"))


@pytest.fixture
def limited(provider, make_integration, sales):
    integration = make_integration("CRM", provider)
    set_integration_groups(integration, [sales])
    return integration


def test_limited_integration_hidden_from_outsider(auth, client, user, limited):
    auth.login("alice")
    html = client.get("/").get_data(as_text=True)
    assert "CRM" not in html


def test_limited_integration_shown_to_member(auth, client, user, limited, sales):
    set_user_groups(user, [sales])
    auth.login("alice")
    _, available = sections(client.get("/").get_data(as_text=True))
    assert 'Authenticate<span class="visually-hidden"> CRM</span>' in available


def test_integration_without_groups_is_open(auth, client, user, provider, make_integration, limited):
    make_integration("Wiki", provider)
    auth.login("alice")
    _, available = sections(client.get("/").get_data(as_text=True))
    assert 'Authenticate<span class="visually-hidden"> Wiki</span>' in available


def test_member_of_other_group_is_outsider(app, auth, client, user, limited):
    set_user_groups(user, [save_group(GroupInput("support"))])
    auth.login("alice")
    assert "CRM" not in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("path", ["/connect/{id}", "/connect/{id}?display=popup", "/connect/{id}/password"])
def test_outsider_connect_is_404(auth, client, user, limited, path):
    auth.login("alice")
    url = path.format(id=limited.id)
    if url.endswith("/password"):
        response = auth.post(url, {"username": "a", "password": "b"})
    else:
        response = client.get(url)
    assert response.status_code == 404


def test_outsider_revoke_without_tokens_is_404(auth, user, limited):
    auth.login("alice")
    assert auth.post(f"/integrations/{limited.id}/revoke", htmx=True).status_code == 404


def test_outsider_can_revoke_own_tokens(auth, user, limited):
    add_credential(user, limited)
    auth.login("alice")
    assert auth.post(f"/integrations/{limited.id}/revoke", htmx=True).status_code == 200


def test_member_connect_redirects_to_provider(auth, client, user, limited, sales):
    set_user_groups(user, [sales])
    auth.login("alice")
    response = client.get(f"/connect/{limited.id}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("https://provider.invalid/authorize")


def test_dashboard_query_count_is_constant_with_groups(app, auth, client, user, provider, make_integration, sales):
    set_user_groups(user, [sales])
    other = save_group(GroupInput("support"))
    auth.login("alice")
    first = make_integration("Integration 0", provider)
    set_integration_groups(first, [sales])
    add_credential(user, first)
    few = count_queries(app, lambda: client.get("/"))

    for number in range(1, 25):
        integration = make_integration(f"Integration {number}", provider)
        set_integration_groups(integration, [[sales], [other], [sales, other], []][number % 4])
        if number % 2:
            add_credential(user, integration)
    response = client.get("/")
    many = count_queries(app, lambda: client.get("/"))

    assert many == few
    html = response.get_data(as_text=True)
    assert "Integration 23" in html
    # Integration 21 is limited to another group; the card stays only because the user
    # still holds tokens, and it offers nothing but Revoke.
    assert 'Authenticate<span class="visually-hidden"> Integration 21<' not in html
    assert 'Renew<span class="visually-hidden"> Integration 21<' not in html
    assert 'Revoke<span class="visually-hidden"> Integration 21<' in html


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "name is missing"),
        ("x" * 101, "name is too long"),
        ("SALES", "already exists"),
    ],
)
def test_save_group_rejects(app, sales, name, message):
    with pytest.raises(GroupError, match=message):
        save_group(GroupInput(name))


def test_delete_sole_allowed_group_is_blocked(limited, sales):
    with pytest.raises(GroupError, match="only allowed group of CRM"):
        delete_group(sales)


def test_delete_group_keeps_integration_limited(app, limited, sales):
    other = save_group(GroupInput("support"))
    set_integration_groups(limited, [sales, other])
    delete_group(other)
    db.session.expire_all()
    assert [group.name for group in db.session.get(Integration, limited.id).allowed_groups] == ["sales"]


# Admin pages --------------------------------------------------------------------------


@pytest.fixture
def admin(make_user, auth):
    user = make_user("root-admin", roles=(ROLE_ADMIN, ROLE_USER))
    auth.login("root-admin")
    return user


def test_admin_creates_group(admin, auth, client):
    response = auth.post("/admin/groups/new", {"name": "sales", "description": "Sales team"})
    assert response.status_code == 303
    assert db.session.scalar(select(Group.description).where(Group.name == "sales")) == "Sales team"


def test_admin_create_group_shows_error(admin, auth, sales):
    response = auth.post("/admin/groups/new", {"name": "Sales"})
    assert response.status_code == 422
    assert "A group named &#39;sales&#39; already exists." in response.get_data(as_text=True)


def test_admin_renames_group(admin, auth, sales):
    auth.post(f"/admin/groups/{sales.id}/edit", {"name": "sales-emea", "description": ""})
    db.session.expire_all()
    assert db.session.get(Group, sales.id).name == "sales-emea"


def test_admin_deletes_group(admin, auth, sales):
    response = auth.post(f"/admin/groups/{sales.id}/delete")
    assert response.status_code == 303
    assert db.session.scalar(select(Group)) is None


def test_admin_delete_sole_group_is_409(admin, auth, limited, sales):
    response = auth.post(f"/admin/groups/{sales.id}/delete")
    assert response.status_code == 409
    assert "only allowed group of CRM" in response.get_data(as_text=True)


def test_groups_page_lists_members(admin, auth, client, user, sales, limited):
    set_user_groups(user, [sales])
    html = client.get("/admin/groups").get_data(as_text=True)
    assert "<td>alice</td>" in html
    assert "<td>CRM</td>" in html


def test_admin_limits_integration_to_group(admin, auth, provider, make_integration, sales):
    integration = make_integration("CRM", provider)
    form = {"name": "CRM", "provider_id": provider.id, "integration_type": "personal", "is_enabled": "y"}
    response = auth.post(f"/admin/integrations/{integration.id}/edit", {**form, "allowed_groups": [sales.id]})
    assert response.status_code == 303
    db.session.expire_all()
    assert [group.name for group in db.session.get(Integration, integration.id).allowed_groups] == ["sales"]


def test_admin_integration_unknown_group_is_422(admin, auth, provider, make_integration):
    integration = make_integration("CRM", provider)
    form = {"name": "CRM", "provider_id": provider.id, "integration_type": "personal", "allowed_groups": [999]}
    response = auth.post(f"/admin/integrations/{integration.id}/edit", form)
    assert response.status_code == 422
    assert "Group 999 does not exist" in response.get_data(as_text=True)


def test_admin_sets_user_groups(admin, auth, user, sales):
    form = {"display_name": "", "email": "", "roles": [ROLE_USER], "is_enabled": "y", "groups": [sales.id]}
    response = auth.post(f"/admin/users/{user.id}/edit", form)
    assert response.status_code == 303
    db.session.expire_all()
    assert [group.name for group in db.session.get(type(user), user.id).groups] == ["sales"]


def test_user_form_shows_group_choices(admin, client, user, sales):
    html = client.get(f"/admin/users/{user.id}/edit").get_data(as_text=True)
    assert 'name="groups"' in html
    assert "sales" in html


def test_is_allowed_follows_groups(app, user, limited, sales):
    from app.groups import is_allowed

    assert not is_allowed(user, limited)
    set_user_groups(user, [sales])
    assert is_allowed(user, limited)


def test_save_group_accepts_spaces(app):
    # Identity providers such as Keycloak allow spaces in the names of the groups claim.
    assert save_group(GroupInput("  Sales Team ")).name == "Sales Team"
