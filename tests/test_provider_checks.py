"""The provider Test action against oidc-provider and the Authlib password grant server."""

import pytest

from app.extensions import db
from app.provider_checks import Status, run_checks
from tests.conftest import OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, PASSWORD_CLIENT_ID, PASSWORD_CLIENT_SECRET


def results_by_name(provider) -> dict:
    return {result.name: result for result in run_checks(provider)}


@pytest.fixture
def oidc_provider(make_provider, oidc_server):
    return make_provider(
        "Company SSO",
        client_id=OIDC_CLIENT_ID,
        client_secret=OIDC_CLIENT_SECRET,
        authorization_url=oidc_server.authorization_endpoint,
        token_url=oidc_server.token_endpoint,
        revocation_url=oidc_server.revocation_endpoint,
        issuer=oidc_server.issuer,
    )


@pytest.fixture
def password_provider(make_provider, password_server):
    return make_provider(
        "ServiceNow Test",
        client_id=PASSWORD_CLIENT_ID,
        client_secret=PASSWORD_CLIENT_SECRET,
        grant_type="password",
        authorization_url=None,
        token_url=password_server.token_endpoint,
        revocation_url=password_server.revocation_endpoint,
    )


def test_oidc_provider_passes_all(oidc_provider):
    results = results_by_name(oidc_provider)
    assert {name: result.status for name, result in results.items()} == {
        "Authorization URL reachable": Status.PASSED,
        "Token URL reachable": Status.PASSED,
        "Revocation URL reachable": Status.PASSED,
        "Metadata matches": Status.PASSED,
        "Client ID and secret accepted": Status.PASSED,
    }


def test_wrong_secret_reported(oidc_provider):
    oidc_provider.set_client_secret("not-the-secret")
    db.session.commit()

    result = results_by_name(oidc_provider)["Client ID and secret accepted"]

    assert result.status == Status.FAILED
    assert "invalid_client" in result.message


def test_endpoint_differing_from_metadata_reported(oidc_provider, oidc_server):
    oidc_provider.token_url = oidc_server.issuer + "/other-token"
    db.session.commit()

    result = results_by_name(oidc_provider)["Metadata matches"]

    assert result.status == Status.FAILED
    assert f"{oidc_server.issuer}/other-token here but {oidc_server.token_endpoint}" in result.message


def test_unreachable_endpoint_reported(oidc_provider, oidc_server):
    from tests.conftest import free_port

    oidc_provider.revocation_url = f"http://127.0.0.1:{free_port()}/revoke"
    db.session.commit()

    result = results_by_name(oidc_provider)["Revocation URL reachable"]

    assert result.status == Status.FAILED
    assert "could not be reached" in result.message


def test_password_provider_client_accepted(password_provider):
    results = results_by_name(password_provider)
    assert results["Client ID and secret accepted"].status == Status.PASSED
    assert "invalid_grant" in results["Client ID and secret accepted"].message


def test_password_provider_wrong_secret(password_provider):
    password_provider.set_client_secret("wrong")
    db.session.commit()
    assert results_by_name(password_provider)["Client ID and secret accepted"].status == Status.FAILED


def test_password_provider_without_issuer_skips_metadata(password_provider):
    result = results_by_name(password_provider)["Metadata matches"]
    assert result.status == Status.UNKNOWN
    assert "No issuer is set" in result.message


@pytest.fixture
def admin(auth, admin_user):
    auth.login("root-admin")
    return admin_user


def test_test_action_returns_fragment(auth, admin, oidc_provider):
    edit = f"/admin/providers/{oidc_provider.id}/edit"
    response = auth.post(f"/admin/providers/{oidc_provider.id}/test", htmx=True, token_from=edit)

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="provider-checks"')
    assert "Passed: Client ID and secret accepted." in html
    assert 'data-status="failed"' not in html


def test_test_action_without_htmx_renders_edit_page(auth, admin, oidc_provider):
    edit = f"/admin/providers/{oidc_provider.id}/edit"
    response = auth.post(f"/admin/providers/{oidc_provider.id}/test", token_from=edit)

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Edit provider Company SSO" in html
    assert "Passed: Metadata matches." in html


def test_test_action_requires_csrf(client, admin, oidc_provider):
    response = client.post(f"/admin/providers/{oidc_provider.id}/test", headers={"HX-Request": "true"})
    assert response.status_code == 400


def test_edit_page_offers_test_button(client, admin, oidc_provider):
    html = client.get(f"/admin/providers/{oidc_provider.id}/edit").get_data(as_text=True)
    assert f'hx-post="/admin/providers/{oidc_provider.id}/test"' in html
    assert "/oauth/callback" in html


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("invalid_grant", Status.PASSED),
        ("unauthorized_client", Status.PASSED),
        ("bad_verification_code", Status.PASSED),
        ("invalid_client", Status.FAILED),
        ("incorrect_client_credentials", Status.FAILED),
        ("invalid_request", Status.UNKNOWN),
        ("", Status.UNKNOWN),
    ],
)
def test_token_error_codes_interpreted(code, status):
    from app.provider_checks import _credentials_result

    assert _credentials_result("Client ID and secret accepted", code).status == status


def test_redirecting_token_url_not_followed(make_provider):
    from flask import Flask, redirect

    from tests.conftest import free_port
    from tests.support.live_server import LiveServer

    requested = []
    flask_app = Flask("redirecting-token-endpoint")

    @flask_app.route("/<path:path>", methods=["GET", "POST"])
    def token(path):
        requested.append(path)
        if path == "elsewhere":
            return {"error": "invalid_grant"}, 400
        return redirect("/elsewhere", code=307)

    server = LiveServer(flask_app, free_port()).start()
    try:
        provider = make_provider("Redirecting", token_url=f"{server.url}/token", authorization_url=f"{server.url}/auth")
        result = results_by_name(provider)["Client ID and secret accepted"]
    finally:
        server.stop()

    assert result.status == Status.FAILED
    assert "redirects elsewhere" in result.message
    assert "elsewhere" not in requested
