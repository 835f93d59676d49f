"""Discovery of provider settings from issuer metadata, and the iss check on callbacks (RFC 9207)."""

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from flask import Flask, jsonify, redirect
from sqlalchemy import select

from app import discovery
from app.extensions import db
from app.models import ClientAuthMethod, Credential, GrantType, Provider
from tests.conftest import OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, free_port
from tests.support.live_server import LiveServer
from tests.support.oidc_server import sign_in_and_consent


@pytest.mark.parametrize(
    ("issuer", "expected"),
    [
        (
            "https://sso.example.test",
            [
                "https://sso.example.test/.well-known/openid-configuration",
                "https://sso.example.test/.well-known/oauth-authorization-server",
            ],
        ),
        (
            "https://sso.example.test/realms/staff",
            [
                "https://sso.example.test/realms/staff/.well-known/openid-configuration",
                "https://sso.example.test/.well-known/oauth-authorization-server/realms/staff",
            ],
        ),
        (
            "https://sso.example.test/tenant/",
            [
                "https://sso.example.test/tenant/.well-known/openid-configuration",
                "https://sso.example.test/.well-known/oauth-authorization-server/tenant",
            ],
        ),
    ],
)
def test_metadata_urls(issuer, expected):
    assert discovery.metadata_urls(issuer) == expected


def test_reads_oidc_server_metadata(app, oidc_server):
    metadata = discovery.fetch_metadata(oidc_server.issuer)

    assert metadata.issuer == oidc_server.issuer
    assert metadata.source_url == f"{oidc_server.issuer}/.well-known/openid-configuration"
    assert metadata.authorization_endpoint == oidc_server.authorization_endpoint
    assert metadata.token_endpoint == oidc_server.token_endpoint
    assert metadata.revocation_endpoint == oidc_server.revocation_endpoint
    assert metadata.supports_pkce is True
    assert metadata.client_auth_method() == ClientAuthMethod.CLIENT_SECRET_BASIC
    assert metadata.issuer_parameter_supported is True


class MetadataServer:
    """A local HTTP server that serves metadata documents at chosen paths and logs requests."""

    def __init__(self):
        self.port = free_port()
        self.documents: dict[str, object] = {}
        self.redirects: dict[str, str] = {}
        self.requested: list[str] = []
        flask_app = Flask("metadata-server")

        @flask_app.route("/<path:path>")
        def serve(path):
            path = "/" + path
            self.requested.append(path)
            if path in self.redirects:
                return redirect(self.redirects[path], code=302)
            if path not in self.documents:
                return jsonify(error="not found"), 404
            return jsonify(self.documents[path])

        self.server = LiveServer(flask_app, self.port)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def metadata_server():
    server = MetadataServer()
    server.server.start()
    yield server
    server.server.stop()


def document(issuer: str, **changes) -> dict:
    values = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
        "code_challenge_methods_supported": ["plain"],
    }
    values.update(changes)
    return values


def test_path_insertion_finds_rfc8414_metadata(app, metadata_server):
    issuer = f"{metadata_server.base}/tenant1"
    metadata_server.documents["/.well-known/oauth-authorization-server/tenant1"] = document(issuer)

    metadata = discovery.fetch_metadata(issuer)

    assert metadata_server.requested == [
        "/tenant1/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/tenant1",
    ]
    assert metadata.token_endpoint == f"{issuer}/token"
    assert metadata.client_auth_method() == ClientAuthMethod.CLIENT_SECRET_POST
    assert metadata.supports_pkce is False
    assert metadata.issuer_parameter_supported is False


def test_issuer_mismatch_names_both_values(app, metadata_server):
    issuer = f"{metadata_server.base}/tenant1"
    metadata_server.documents["/tenant1/.well-known/openid-configuration"] = document("https://evil.example.test")

    with pytest.raises(discovery.DiscoveryError) as error:
        discovery.fetch_metadata(issuer)

    assert "'https://evil.example.test'" in str(error.value)
    assert f"you entered '{issuer}'" in str(error.value)


def test_redirect_not_followed(app, metadata_server):
    issuer = metadata_server.base
    metadata_server.redirects["/.well-known/openid-configuration"] = "/moved"
    metadata_server.documents["/moved"] = document(issuer)

    with pytest.raises(discovery.DiscoveryError) as error:
        discovery.fetch_metadata(issuer)

    assert "Redirects are not followed" in str(error.value)
    assert metadata_server.requested == ["/.well-known/openid-configuration"]


def test_missing_metadata_lists_tried_urls(app, metadata_server):
    with pytest.raises(discovery.DiscoveryError) as error:
        discovery.fetch_metadata(metadata_server.base)
    assert "No metadata found" in str(error.value)
    assert len(metadata_server.requested) == 2


def test_unsupported_client_auth_rejected(app, metadata_server):
    issuer = metadata_server.base
    metadata_server.documents["/.well-known/openid-configuration"] = document(
        issuer, token_endpoint_auth_methods_supported=["private_key_jwt"]
    )
    metadata = discovery.fetch_metadata(issuer)
    with pytest.raises(discovery.DiscoveryError) as error:
        metadata.client_auth_method()
    assert "private_key_jwt" in str(error.value)


def test_password_only_server_gets_password_grant(app, metadata_server):
    issuer = metadata_server.base
    metadata_server.documents["/.well-known/openid-configuration"] = document(
        issuer, authorization_endpoint=None, grant_types_supported=["password", "refresh_token"]
    )
    assert discovery.fetch_metadata(issuer).grant_type() == GrantType.PASSWORD


@pytest.mark.parametrize(
    ("issuer", "message"),
    [
        ("https://169.254.169.254", "cloud metadata"),
        ("http://sso.example.test", "must use https"),
        ("https://sso.example.test/?tenant=1", "without query"),
    ],
)
def test_unsafe_issuer_rejected_before_request(app, issuer, message):
    with pytest.raises(discovery.DiscoveryError) as error:
        discovery.fetch_metadata(issuer)
    assert message in str(error.value)


@pytest.fixture
def admin(auth, admin_user):
    auth.login("root-admin")
    return admin_user


def test_admin_creates_provider_from_issuer(auth, admin, oidc_server):
    response = auth.post(
        "/admin/providers/discover",
        {
            "issuer": oidc_server.issuer,
            "name": "Company SSO",
            "client_id": OIDC_CLIENT_ID,
            "client_secret": OIDC_CLIENT_SECRET,
            "default_scopes": "openid profile",
        },
        token_from="/admin/providers/discover",
    )

    assert response.status_code == 303
    provider = db.session.scalar(select(Provider).where(Provider.name == "Company SSO"))
    assert response.headers["Location"] == f"/admin/providers/{provider.id}/edit"
    assert provider.issuer == oidc_server.issuer
    assert provider.authorization_url == oidc_server.authorization_endpoint
    assert provider.token_url == oidc_server.token_endpoint
    assert provider.revocation_url == oidc_server.revocation_endpoint
    assert provider.revocation_method == "rfc7009"
    assert provider.use_pkce is True
    assert provider.client_auth_method == ClientAuthMethod.CLIENT_SECRET_BASIC
    assert provider.issuer_parameter_required is True
    assert provider.client_secret == OIDC_CLIENT_SECRET


def test_admin_sees_discovery_error(auth, admin, metadata_server):
    metadata_server.documents["/.well-known/openid-configuration"] = document("https://other.example.test")
    response = auth.post(
        "/admin/providers/discover",
        {"issuer": metadata_server.base, "name": "Other", "client_id": "c", "client_secret": "s"},
        token_from="/admin/providers/discover",
    )
    assert response.status_code == 422
    assert "names the issuer" in response.get_data(as_text=True)
    assert db.session.scalar(select(Provider)) is None


# The iss parameter on the authorization response (RFC 9207) --------------------------


@pytest.fixture
def signed_in(auth, user):
    auth.login("alice")
    return user


@pytest.fixture
def issuer_integration(oidc_integration, oidc_server):
    provider = oidc_integration.provider
    provider.issuer = oidc_server.issuer
    provider.issuer_parameter_required = True
    db.session.commit()
    return oidc_integration


def callback_path(client, integration, **changes) -> str:
    """Run the sign-in at oidc-provider and return the callback path with ``changes`` applied."""
    start = client.get(f"/connect/{integration.id}?display=popup")
    redirect_url = sign_in_and_consent(start.headers["Location"])
    parts = urlsplit(redirect_url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return urlunsplit(("", "", parts.path, urlencode(query), ""))


def stored_credential() -> Credential | None:
    db.session.expire_all()
    return db.session.scalar(select(Credential))


def test_oidc_server_sends_iss(client, signed_in, issuer_integration, oidc_server):
    path = callback_path(client, issuer_integration)
    assert parse_qs(urlsplit(path).query)["iss"] == [oidc_server.issuer]


def test_matching_iss_connects(client, signed_in, issuer_integration):
    response = client.get(callback_path(client, issuer_integration))
    assert response.status_code == 200
    assert stored_credential() is not None


def test_wrong_iss_rejected(client, signed_in, issuer_integration, oidc_server):
    response = client.get(callback_path(client, issuer_integration, iss="https://attacker.example.test"))

    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "https://attacker.example.test" in html
    assert oidc_server.issuer in html
    assert stored_credential() is None


def test_missing_iss_rejected_when_required(client, signed_in, issuer_integration):
    response = client.get(callback_path(client, issuer_integration, iss=None))
    assert response.status_code == 400
    assert "has no iss parameter" in response.get_data(as_text=True)
    assert stored_credential() is None


def test_missing_iss_accepted_when_optional(client, signed_in, issuer_integration):
    issuer_integration.provider.issuer_parameter_required = False
    db.session.commit()
    response = client.get(callback_path(client, issuer_integration, iss=None))
    assert response.status_code == 200
    assert stored_credential() is not None
