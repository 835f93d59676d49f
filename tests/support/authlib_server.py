"""OAuth 2.0 authorization server for tests, built on Authlib's Flask integration.

``PasswordGrantServer`` runs a real Authlib ``AuthorizationServer`` in a
background thread on 127.0.0.1 and supports:

* the resource owner password credentials grant (RFC 6749 section 4.3),
* the refresh token grant with rotation: every refresh issues a new refresh
  token and revokes the one that was used,
* token revocation (RFC 7009) and token introspection (RFC 7662),
* client authentication with ``client_secret_basic`` or ``client_secret_post``,
  chosen per client.

All state lives in memory and is lost when the server object goes away.
Example::

    with PasswordGrantServer(
        clients=[{"client_id": "sn-client", "client_secret": "secret",
                  "token_endpoint_auth_method": "client_secret_basic"}],
        users={"alice": "correct-password"},
    ) as server:
        requests.post(server.token_endpoint, ...)
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from authlib.common.security import generate_token
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.authenticate_client import (
    authenticate_client_secret_basic,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, Response, jsonify, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

logger = logging.getLogger(__name__)

#: Scope granted when a token request has no ``scope`` parameter.
DEFAULT_SCOPE = "useraccount"

CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

ACCESS_TOKEN = "access_token"
REFRESH_TOKEN = "refresh_token"

# Text that application/x-www-form-urlencoded output may contain: unreserved
# characters that serializers leave as they are, "+" for a space and %XX
# escapes for everything else.
_FORM_URLENCODED_TEXT = re.compile(r"(?:[A-Za-z0-9*\-._~+]|%[0-9A-Fa-f]{2})*")

# OAuth 2.0 error codes sent with a forced status. RFC 6749 section 5.2
# defines invalid_request and invalid_client for the token endpoint. Section
# 4.1.2.1 defines temporarily_unavailable and server_error for the
# authorization endpoint, and this server sends them from the token and
# revocation endpoints too. Any status not listed here gets "server_error".
_ERROR_CODE_BY_STATUS = {
    400: "invalid_request",
    401: "invalid_client",
    503: "temporarily_unavailable",
}


class _Client(ClientMixin):
    """Registered client that authenticates with exactly one method at every endpoint."""

    def __init__(self, client_id: str, client_secret: str, token_endpoint_auth_method: str):
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_endpoint_auth_method = token_endpoint_auth_method

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or DEFAULT_SCOPE

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        # compare_digest rejects str arguments with non-ASCII characters,
        # so the secrets are compared as UTF-8 bytes.
        return secrets.compare_digest(client_secret.encode("utf-8"), self.client_secret.encode("utf-8"))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("password", "refresh_token")


@dataclass
class _TokenRecord:
    """Access token and refresh token issued together by one token response."""

    access_token: str
    refresh_token: str | None
    client_id: str
    username: str
    scope: str
    issued_at: float
    expires_in: int
    access_token_revoked: bool = False
    refresh_token_revoked: bool = False


class _TokenMatch(TokenMixin):
    """One token string found in the store, with the type it matched.

    Revoking a match revokes only that token type, so revoking a refresh
    token leaves the access token of the same response active.
    Refresh tokens never expire.
    """

    def __init__(self, record: _TokenRecord, token_type: str, clock: Callable[[], float]):
        self.record = record
        self.token_type = token_type
        self._clock = clock

    def check_client(self, client: _Client) -> bool:
        return self.record.client_id == client.client_id

    def get_scope(self) -> str:
        return self.record.scope

    def get_expires_in(self) -> int:
        return self.record.expires_in

    def get_expires_at(self) -> int:
        return int(self.record.issued_at + self.record.expires_in)

    def is_expired(self) -> bool:
        if self.token_type == REFRESH_TOKEN:
            return False
        return self._clock() >= self.record.issued_at + self.record.expires_in

    def is_revoked(self) -> bool:
        if self.token_type == ACCESS_TOKEN:
            return self.record.access_token_revoked
        return self.record.refresh_token_revoked

    def get_user(self) -> str:
        return self.record.username


class _TokenStore:
    """In-memory token storage. Every method is safe to call from any thread."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._lock = threading.Lock()
        self._records_by_access_token: dict[str, _TokenRecord] = {}
        self._records_by_refresh_token: dict[str, _TokenRecord] = {}

    def save(self, token: Mapping[str, Any], client_id: str, username: str) -> None:
        record = _TokenRecord(
            access_token=token["access_token"],
            refresh_token=token.get("refresh_token"),
            client_id=client_id,
            username=username,
            scope=token["scope"],
            issued_at=self._clock(),
            expires_in=token["expires_in"],
        )
        with self._lock:
            self._records_by_access_token[record.access_token] = record
            if record.refresh_token is not None:
                self._records_by_refresh_token[record.refresh_token] = record

    def find(self, token_string: str, token_type_hint: str | None = None) -> _TokenMatch | None:
        """Look the token up as the hinted type first, then as the other type.

        RFC 7009 section 2.1 and RFC 7662 section 2.1 both require the search
        to extend to other token types when the hinted lookup fails.
        """
        if token_type_hint == REFRESH_TOKEN:
            search_order = (REFRESH_TOKEN, ACCESS_TOKEN)
        else:
            search_order = (ACCESS_TOKEN, REFRESH_TOKEN)

        with self._lock:
            for token_type in search_order:
                if token_type == ACCESS_TOKEN:
                    record = self._records_by_access_token.get(token_string)
                else:
                    record = self._records_by_refresh_token.get(token_string)
                if record is not None:
                    return _TokenMatch(record, token_type, self._clock)
        return None

    def find_refresh_token(self, token_string: str) -> _TokenMatch | None:
        with self._lock:
            record = self._records_by_refresh_token.get(token_string)
        if record is None:
            return None
        return _TokenMatch(record, REFRESH_TOKEN, self._clock)

    def revoke(self, match: _TokenMatch) -> None:
        with self._lock:
            if match.token_type == ACCESS_TOKEN:
                match.record.access_token_revoked = True
            else:
                match.record.refresh_token_revoked = True


class _AuthlibServer(AuthorizationServer):
    """Authlib authorization server wired to the in-memory stores."""

    def __init__(
        self,
        app: Flask,
        clients: Mapping[str, _Client],
        users: Mapping[str, str],
        token_store: _TokenStore,
        access_token_ttl: Callable[[], int],
        strict_basic_auth: bool,
    ):
        self.clients = clients
        self.users = users
        self.token_store = token_store
        super().__init__(app, query_client=self.clients.get, save_token=self._save_token)

        # The Flask integration builds its token generator from app.config.
        # This one is registered directly so that expires_in follows the
        # current access_token_ttl and every grant issues a refresh token.
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: generate_token(42),
                refresh_token_generator=lambda **_: generate_token(48),
                expires_generator=lambda client, grant_type: access_token_ttl(),
            ),
        )
        if strict_basic_auth:
            authenticate_basic = _authenticate_client_secret_basic_strictly
        else:
            authenticate_basic = _authenticate_client_secret_basic
        self.register_client_auth_method("client_secret_basic", authenticate_basic)
        self.register_grant(_PasswordGrant)
        self.register_grant(_RefreshTokenGrant)
        self.register_endpoint(_RevocationEndpoint)
        self.register_endpoint(_IntrospectionEndpoint)

    def _save_token(self, token: Mapping[str, Any], oauth2_request) -> None:
        self.token_store.save(token, oauth2_request.client.client_id, oauth2_request.user)

    def check_user_password(self, username: str, password: str) -> bool:
        expected = self.users.get(username)
        if expected is None:
            return False
        return secrets.compare_digest(password.encode("utf-8"), expected.encode("utf-8"))


def _authenticate_client_secret_basic(query_client, oauth2_request):
    """Run Authlib's ``client_secret_basic`` check, treating undecodable credentials as absent.

    Authlib 1.9.10 decodes the Basic credentials as UTF-8 and lets a
    UnicodeDecodeError escape, which Flask turns into a 500 response. A
    client that encodes the secret as Latin-1 (as ``requests.auth.HTTPBasicAuth``
    and Authlib's own client do for a ``str`` secret) gets 401
    ``invalid_client`` from this server instead.
    """
    try:
        return authenticate_client_secret_basic(query_client, oauth2_request)
    except UnicodeDecodeError as error:
        logger.info("Rejected client_secret_basic credentials that are not UTF-8: %s", error)
        return None


def _authenticate_client_secret_basic_strictly(query_client, oauth2_request):
    """Authenticate ``client_secret_basic`` credentials encoded exactly as RFC 6749 section 2.3.1 requires.

    The client id and secret must each be application/x-www-form-urlencoded
    with UTF-8 (a space as "+" or %20, every other reserved or non-ASCII
    character as %XX) before they are joined with ":" and Base64-encoded.
    Credentials with raw reserved or non-ASCII characters do not authenticate.
    """
    credentials = _decode_form_urlencoded_basic_credentials(oauth2_request.headers.get("Authorization"))
    if credentials is None:
        logger.info("Rejected client_secret_basic credentials that are not form-urlencoded UTF-8")
        return None

    client_id, client_secret = credentials
    client = query_client(client_id)
    if client is None:
        raise InvalidClientError(status_code=401, description="The client does not exist on this server.")
    if client.check_client_secret(client_secret):
        return client
    return None


def _decode_form_urlencoded_basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """Return the decoded client id and secret, or None unless the header is valid form-urlencoded Basic."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None

    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None

    encoded_id, separator, encoded_secret = decoded.partition(":")
    if not separator or not encoded_id or not encoded_secret:
        return None
    if not _FORM_URLENCODED_TEXT.fullmatch(encoded_id):
        return None
    if not _FORM_URLENCODED_TEXT.fullmatch(encoded_secret):
        return None

    try:
        return (
            unquote_plus(encoded_id, encoding="utf-8", errors="strict"),
            unquote_plus(encoded_secret, encoding="utf-8", errors="strict"),
        )
    except UnicodeDecodeError:
        return None


class _PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    def authenticate_user(self, username: str, password: str) -> str:
        # Authlib 1.9.10 rejects a falsy user with invalid_request, but
        # RFC 6749 section 5.2 defines invalid_grant for invalid resource
        # owner credentials, so the error is raised here.
        if not self.server.check_user_password(username, password):
            raise InvalidGrantError(description="Invalid username or password")
        return username


class _RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> _TokenMatch | None:
        match = self.server.token_store.find_refresh_token(refresh_token)
        if match is None or match.is_revoked():
            return None
        return match

    def authenticate_user(self, refresh_token: _TokenMatch) -> str:
        return refresh_token.get_user()

    def revoke_old_credential(self, refresh_token: _TokenMatch) -> None:
        self.server.token_store.revoke(refresh_token)


class _RevocationEndpoint(RevocationEndpoint):
    CLIENT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    def query_token(self, token_string: str, token_type_hint: str | None) -> _TokenMatch | None:
        return self.server.token_store.find(token_string, token_type_hint)

    def revoke_token(self, token: _TokenMatch, oauth2_request) -> None:
        self.server.token_store.revoke(token)


class _IntrospectionEndpoint(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    def query_token(self, token_string: str, token_type_hint: str | None) -> _TokenMatch | None:
        return self.server.token_store.find(token_string, token_type_hint)

    def check_permission(self, token: _TokenMatch, client: _Client, oauth2_request) -> bool:
        # RFC 7662 lets any authenticated protected resource introspect any
        # token, so the token need not belong to the calling client.
        return True

    def introspect_token(self, token: _TokenMatch) -> dict[str, Any]:
        """Build the RFC 7662 payload. Refresh tokens never expire, so theirs has no ``exp``."""
        payload = {
            "active": True,
            "scope": token.get_scope(),
            "client_id": token.record.client_id,
            "username": token.get_user(),
            "iat": int(token.record.issued_at),
        }
        if token.token_type == ACCESS_TOKEN:
            payload["token_type"] = "Bearer"
            payload["exp"] = token.get_expires_at()
        return payload


class _QuietRequestHandler(WSGIRequestHandler):
    """Request handler that logs errors but not one line per request."""

    # HTTP/1.0 closes the connection after every response. With keep-alive,
    # a pooled client connection would still reach a handler thread after
    # stop() has closed the listening socket.
    protocol_version = "HTTP/1.0"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class PasswordGrantServer:
    """OAuth 2.0 authorization server on 127.0.0.1 for the password and refresh token grants.

    ``clients`` is a list of dicts with ``client_id``, ``client_secret`` and
    ``token_endpoint_auth_method`` (``client_secret_basic`` or
    ``client_secret_post``). The method applies to the token, revocation and
    introspection endpoints. ``users`` maps usernames to passwords.
    ``access_token_ttl`` is the access token lifetime in seconds and may be
    changed while the server runs. Refresh tokens never expire. ``clock``
    returns the current time in seconds since the epoch, so tests can make
    access tokens expire without sleeping.

    ``client_secret_basic`` credentials are decoded by Authlib 1.9.10 unless
    ``strict_basic_auth`` is True. Authlib percent-decodes the client id and
    secret with ``urllib.parse.unquote``, so it accepts both the
    form-urlencoded and the raw UTF-8 form of "+", "/", ":" and non-ASCII
    characters, but it reads "+" as a plus sign rather than a space.
    With ``strict_basic_auth`` the credentials must be form-urlencoded as
    RFC 6749 section 2.3.1 requires, and raw reserved or non-ASCII
    characters fail with 401 ``invalid_client``.

    Fault injection, settable while the server runs:

    * ``token_status``: when not None, the token endpoint returns this
      status with a JSON error body and issues nothing.
    * ``revocation_status``: when not None, the revocation endpoint returns
      this status with a JSON error body and revokes nothing.

    Token endpoint requests are processed one at a time, so of two
    concurrent refreshes with the same refresh token exactly one succeeds.
    """

    def __init__(
        self,
        clients: Iterable[Mapping[str, str]],
        users: Mapping[str, str],
        access_token_ttl: int = 3600,
        *,
        token_path: str = "/oauth/token",
        revocation_path: str = "/oauth/revoke",
        introspection_path: str = "/oauth/introspect",
        clock: Callable[[], float] = time.time,
        strict_basic_auth: bool = False,
    ):
        if access_token_ttl <= 0:
            raise ValueError(f"access_token_ttl must be a positive number of seconds, got {access_token_ttl!r}")

        self.access_token_ttl = access_token_ttl
        self.token_status: int | None = None
        self.revocation_status: int | None = None
        self.token_path = token_path
        self.revocation_path = revocation_path
        self.introspection_path = introspection_path

        self._clients = _parse_clients(clients)
        self._users = dict(users)
        self._token_store = _TokenStore(clock)
        self._requests_lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._token_endpoint_lock = threading.Lock()
        self._app = self._create_app(strict_basic_auth)
        self._http_server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self) -> PasswordGrantServer:
        """Bind a free port on 127.0.0.1 and serve requests in a daemon thread."""
        if self._http_server is not None:
            raise RuntimeError("PasswordGrantServer is already running. Call stop() before start().")

        self._http_server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietRequestHandler)
        self._thread = threading.Thread(
            target=self._http_server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"PasswordGrantServer:{self._http_server.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket. Does nothing when the server is not running."""
        if self._http_server is None:
            return
        self._http_server.shutdown()
        self._http_server.server_close()
        self._thread.join(timeout=5)
        self._http_server = None
        self._thread = None

    def __enter__(self) -> PasswordGrantServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Addresses

    @property
    def base_url(self) -> str:
        if self._http_server is None:
            raise RuntimeError("PasswordGrantServer is not running. Call start() first.")
        return f"http://127.0.0.1:{self._http_server.port}"

    @property
    def token_endpoint(self) -> str:
        return self.base_url + self.token_path

    @property
    def revocation_endpoint(self) -> str:
        return self.base_url + self.revocation_path

    @property
    def introspection_endpoint(self) -> str:
        return self.base_url + self.introspection_path

    # Inspection

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Copy of the record of token and revocation endpoint requests, oldest first.

        Each entry has ``path``, ``grant_type``, ``token_type_hint``,
        ``token`` and ``auth``. ``token`` is the ``token`` form field at the
        revocation endpoint and the ``refresh_token`` form field at the token
        endpoint. ``auth`` is ``"basic"`` when the request has an
        ``Authorization: Basic`` header, else ``"post"`` when the form has
        ``client_secret``, else None. Requests rejected by fault injection
        are recorded too.
        """
        with self._requests_lock:
            return [dict(entry) for entry in self._requests]

    def clear_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    def is_active(self, token: str) -> bool:
        """Return whether the access or refresh token is known, unrevoked and unexpired."""
        match = self._token_store.find(token)
        return match is not None and not match.is_revoked() and not match.is_expired()

    # Flask application

    def _create_app(self, strict_basic_auth: bool) -> Flask:
        app = Flask(__name__)
        authorization_server = _AuthlibServer(
            app,
            self._clients,
            self._users,
            self._token_store,
            access_token_ttl=lambda: self.access_token_ttl,
            strict_basic_auth=strict_basic_auth,
        )

        @app.post(self.token_path)
        def token_endpoint() -> Response:
            self._record_request()
            forced_status = self.token_status
            if forced_status is not None:
                return _forced_error_response(forced_status)
            with self._token_endpoint_lock:
                return authorization_server.create_token_response()

        @app.post(self.revocation_path)
        def revocation_endpoint() -> Response:
            self._record_request()
            forced_status = self.revocation_status
            if forced_status is not None:
                return _forced_error_response(forced_status)
            return authorization_server.create_endpoint_response(RevocationEndpoint.ENDPOINT_NAME)

        @app.post(self.introspection_path)
        def introspection_endpoint() -> Response:
            return authorization_server.create_endpoint_response(IntrospectionEndpoint.ENDPOINT_NAME)

        return app

    def _record_request(self) -> None:
        form = request.form
        if request.path == self.revocation_path:
            token = form.get("token")
        else:
            token = form.get("refresh_token")

        authorization = request.headers.get("Authorization", "")
        if authorization.split(" ", 1)[0].lower() == "basic":
            auth = "basic"
        elif "client_secret" in form:
            auth = "post"
        else:
            auth = None

        entry = {
            "path": request.path,
            "grant_type": form.get("grant_type"),
            "token_type_hint": form.get("token_type_hint"),
            "token": token,
            "auth": auth,
        }
        with self._requests_lock:
            self._requests.append(entry)


def _parse_clients(clients: Iterable[Mapping[str, str]]) -> dict[str, _Client]:
    parsed: dict[str, _Client] = {}
    for index, client in enumerate(clients):
        missing = {"client_id", "client_secret"} - client.keys()
        if missing:
            raise ValueError(f"Client at index {index} is missing {sorted(missing)}")
        method = client.get("token_endpoint_auth_method", "client_secret_basic")
        if method not in CLIENT_AUTH_METHODS:
            raise ValueError(
                f"Client {client['client_id']!r} has unsupported token_endpoint_auth_method "
                f"{method!r}. Use one of {list(CLIENT_AUTH_METHODS)}."
            )
        parsed[client["client_id"]] = _Client(client["client_id"], client["client_secret"], method)
    return parsed


def _forced_error_response(status: int) -> Response:
    error = _ERROR_CODE_BY_STATUS.get(status, "server_error")
    response = jsonify(
        error=error,
        error_description=f"The test server is configured to return HTTP {status}",
    )
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if status == 401:
        # RFC 6749 section 5.2 requires this header on a 401 from the token endpoint.
        response.headers["WWW-Authenticate"] = "Basic"
    return response
