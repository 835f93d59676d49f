"""Audit trail: events for admin changes, the filter pages and the CSV export."""

import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app import audit
from app.accounts import UserChanges, set_enabled, set_password, set_roles, update_user
from app.audit import AuditEvent
from app.audit_search import CSV_COLUMNS, csv_cell, parse_filter
from app.extensions import db
from app.models import ROLE_ADMIN, ROLE_USER, Provider
from app.registry import delete_integration, delete_provider
from tests.conftest import PASSWORD

PROVIDER_FORM = {
    "name": "Code Hub",
    "client_id": "code-hub-client",
    "client_secret": "raw-client-secret-never-audited",
    "authorization_url": "https://codehub.invalid/authorize",
    "token_url": "https://codehub.invalid/token",
    "revocation_url": "",
    "default_scopes": "repo",
    "grant_type": "authorization_code",
    "use_pkce": "y",
    "client_auth_method": "client_secret_basic",
}


@pytest.fixture
def admin(admin_user, auth):
    auth.login(admin_user.username)
    return admin_user


def events(action: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def record_at(action: str, when: datetime, **fields) -> AuditEvent:
    event = audit.record(action, **fields)
    event.occurred_at = when
    db.session.commit()
    return event


def read_csv(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


# Records of admin changes --------------------------------------------------------------


def test_provider_create_recorded_without_secret(auth, admin):
    auth.post("/admin/providers/new", PROVIDER_FORM, token_from="/admin/providers/new")

    [event] = events("provider.create")
    assert event.actor_user_id == admin.id
    assert event.detail == "Code Hub"
    assert "raw-client-secret-never-audited" not in repr(event.data) + event.detail


def test_provider_update_lists_changed_fields(auth, admin, make_provider):
    provider = make_provider("Code Hub")
    form = dict(PROVIDER_FORM, client_secret="", default_scopes="repo read:user")
    form["authorization_url"] = provider.authorization_url
    form["token_url"] = provider.token_url
    form["client_id"] = provider.client_id

    auth.post(f"/admin/providers/{provider.id}/edit", form, token_from=f"/admin/providers/{provider.id}/edit")

    [event] = events("provider.update")
    assert event.actor_user_id == admin.id
    assert "default_scopes" in event.data["changed"]
    assert "client_secret" not in event.data["changed"]


def test_provider_delete_recorded(admin, make_provider):
    provider = make_provider("Code Hub")

    delete_provider(provider, actor_user_id=admin.id)

    [event] = events("provider.delete")
    assert event.provider_id == provider.id
    assert db.session.get(Provider, provider.id) is None


def test_integration_changes_recorded(auth, admin, make_provider):
    provider = make_provider("Code Hub")
    form = {"name": "Repos", "provider_id": str(provider.id), "integration_type": "personal", "is_enabled": "y"}

    auth.post("/admin/integrations/new", form, token_from="/admin/integrations/new")

    [event] = events("integration.create")
    assert event.actor_user_id == admin.id
    assert event.provider_id == provider.id


def test_integration_delete_recorded(admin, make_provider, make_integration):
    integration = make_integration("Repos", make_provider("Code Hub"))

    delete_integration(integration, actor_user_id=admin.id)

    [event] = events("integration.delete")
    assert event.integration_id == integration.id
    assert event.actor_user_id == admin.id


def test_user_create_recorded_without_password(auth, admin):
    auth.post(
        "/admin/users/new",
        {"username": "bob", "password": "a-long-new-password-1", "roles": [ROLE_USER]},
        token_from="/admin/users/new",
    )

    [event] = [event for event in events("user.create") if event.detail == "bob"]
    assert event.actor_user_id == admin.id
    assert "a-long-new-password-1" not in repr(event.data) + event.detail


def test_user_update_lists_changed_fields(admin, make_user):
    bob = make_user("bob")

    update_user(
        bob,
        UserChanges(display_name="Bob", email=None, roles=[ROLE_USER], is_enabled=True, password="another-password-2"),
        actor_user_id=admin.id,
    )

    [event] = events("user.update")
    assert event.data["changed"] == ["display_name", "password"]
    assert "another-password-2" not in repr(event.data) + event.detail


def test_cli_changes_recorded_as_system(runner, make_user):
    make_user("bob")

    runner.invoke(args=["users", "set-roles", "bob", "--role", ROLE_ADMIN])

    [event] = events("user.roles")
    assert event.actor_user_id is None
    assert event.data["roles"] == [ROLE_ADMIN]


@pytest.mark.parametrize(
    ("change", "action"),
    [
        (lambda user, actor: set_enabled(user, True, actor_user_id=actor.id), "user.activate"),
        (lambda user, actor: set_roles(user, [ROLE_USER], actor_user_id=actor.id), "user.roles"),
        (lambda user, actor: set_password(user, PASSWORD + "!", actor_user_id=actor.id), "user.password"),
    ],
)
def test_account_functions_record_actor(admin_user, make_user, change, action):
    bob = make_user("bob")

    change(bob, admin_user)

    [event] = events(action)
    assert event.actor_user_id == admin_user.id
    assert event.subject_user_id == bob.id


# Filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"outcome": "maybe"}, "outcome"),
        ({"integration": "abc"}, "integration"),
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-05-02", "to": "2026-05-01"}, "to"),
    ],
)
def test_filter_rejects_invalid_arguments(args, field):
    assert field in parse_filter(args).errors


def test_page_needs_admin(client, auth, user):
    auth.login("alice")

    assert client.get("/admin/audit").status_code == 403


def test_page_filters_by_action(client, admin):
    audit.record("credential.connect", detail="connect-event")
    audit.record("credential.revoke", detail="revoke-event")

    page = client.get("/admin/audit?action=credential.revoke").get_data(as_text=True)

    assert "revoke-event" in page
    assert "connect-event" not in page


def test_page_filters_by_outcome(client, admin):
    audit.record("credential.connect", detail="good-event")
    audit.record("credential.connect", audit.Outcome.FAILURE, detail="bad-event")

    page = client.get("/admin/audit?outcome=failure").get_data(as_text=True)

    assert "bad-event" in page
    assert "good-event" not in page


def test_page_filters_by_user_as_actor_or_subject(client, admin, make_user):
    bob = make_user("bob")
    audit.record("credential.connect", actor_user_id=bob.id, detail="acted-event")
    audit.record("api.token_fetch", subject_user_id=bob.id, detail="subject-event")
    audit.record("credential.connect", detail="other-event")

    page = client.get("/admin/audit?user=bob").get_data(as_text=True)

    assert "acted-event" in page
    assert "subject-event" in page
    assert "other-event" not in page


def test_page_unknown_user_matches_nothing(client, admin):
    audit.record("credential.connect", detail="some-event")

    page = client.get("/admin/audit?user=nobody").get_data(as_text=True)

    assert "some-event" not in page
    assert "No event matches" in page


def test_page_filters_by_integration(client, admin):
    audit.record("credential.connect", integration_id=7, detail="seven-event")
    audit.record("credential.connect", integration_id=8, detail="eight-event")

    page = client.get("/admin/audit?integration=7").get_data(as_text=True)

    assert "seven-event" in page
    assert "eight-event" not in page


def test_page_filters_by_date_range_inclusive(client, admin):
    record_at("credential.connect", datetime(2026, 5, 1, 23, 59, tzinfo=UTC), detail="before-event")
    record_at("credential.connect", datetime(2026, 5, 2, 0, 0, tzinfo=UTC), detail="first-day-event")
    record_at("credential.connect", datetime(2026, 5, 3, 23, 59, tzinfo=UTC), detail="last-day-event")
    record_at("credential.connect", datetime(2026, 5, 4, 0, 0, tzinfo=UTC), detail="after-event")

    page = client.get("/admin/audit?from=2026-05-02&to=2026-05-03").get_data(as_text=True)

    assert "first-day-event" in page
    assert "last-day-event" in page
    assert "before-event" not in page
    assert "after-event" not in page


def test_page_invalid_filter_is_422(client, admin):
    response = client.get("/admin/audit?from=2026-02-30")

    assert response.status_code == 422
    assert "write it as YYYY-MM-DD" in response.get_data(as_text=True)


def test_page_htmx_returns_results_only(client, admin):
    audit.record("credential.connect", detail="some-event")

    page = client.get("/admin/audit?action=credential.connect", headers={"HX-Request": "true"}).get_data(as_text=True)

    assert "some-event" in page
    assert "<form" not in page


def test_page_paginates(client, admin):
    for number in range(55):
        audit.record("credential.connect", detail=f"event-{number:02d}", commit=False)
    db.session.commit()

    first = client.get("/admin/audit").get_data(as_text=True)
    second = client.get("/admin/audit?page=2").get_data(as_text=True)

    assert "event-54" in first
    assert "event-04" not in first
    assert "event-04" in second
    assert "Page 2 of 2" in second


# CSV export ----------------------------------------------------------------------------


def test_csv_has_header_and_filtered_rows(client, admin):
    audit.record("credential.connect", detail="connect-event")
    audit.record("credential.revoke", detail="revoke-event")

    response = client.get("/admin/audit.csv?action=credential.revoke")

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = read_csv(response)
    assert [row["detail"] for row in rows] == ["revoke-event"]
    assert tuple(rows[0].keys()) == CSV_COLUMNS


def test_csv_names_users_and_integrations(client, admin, make_provider, make_integration):
    integration = make_integration("Repos", make_provider("Code Hub"))
    audit.record("credential.connect", actor_user_id=admin.id, subject_user_id=admin.id, integration_id=integration.id)

    [row] = read_csv(client.get("/admin/audit.csv?action=credential.connect"))

    assert row["actor_username"] == admin.username
    assert row["subject_username"] == admin.username
    assert row["integration_name"] == "Repos"


def test_csv_quotes_commas_quotes_and_newlines(client, admin):
    detail = 'a, "quoted"\nvalue'
    audit.record("credential.connect", detail=detail)

    [row] = read_csv(client.get("/admin/audit.csv?action=credential.connect"))

    assert row["detail"] == detail


@pytest.mark.parametrize("value", ["=HYPERLINK(1)", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cell_guards_formulas(value):
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["plain", "a=b", "", 12, None])
def test_csv_cell_keeps_other_values(value):
    assert csv_cell(value) == value


def test_csv_export_guards_formula_in_detail(client, admin):
    audit.record("credential.connect", detail="=cmd|' /C calc'!A0")

    [row] = read_csv(client.get("/admin/audit.csv?action=credential.connect"))

    assert row["detail"] == "'=cmd|' /C calc'!A0"


def test_csv_export_spans_batches(client, admin, monkeypatch):
    monkeypatch.setattr("app.audit_search.CSV_BATCH_SIZE", 3)
    for number in range(8):
        audit.record("credential.connect", detail=f"event-{number}", commit=False)
    db.session.commit()

    rows = read_csv(client.get("/admin/audit.csv?action=credential.connect"))

    assert [row["detail"] for row in rows] == [f"event-{number}" for number in reversed(range(8))]


def test_csv_invalid_filter_is_400(client, admin):
    response = client.get("/admin/audit.csv?outcome=maybe")

    assert response.status_code == 400


def test_csv_needs_admin(client, auth, user):
    auth.login("alice")

    assert client.get("/admin/audit.csv").status_code == 403
