"""Token API views. Every response is JSON, errors included, and none redirects to the sign-in page."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from app.api import bp
from app.api.tokens import TokenFetchError, fetch_token
from app.api_keys import authenticate
from app.extensions import db

log = logging.getLogger(__name__)

OPENAPI_DOCUMENT = Path(__file__).with_name("openapi.json")

#: Endpoints that respond without an API key.
PUBLIC_ENDPOINTS = {"api.openapi"}

#: Methods the catch-all route takes, so that unknown paths and methods get JSON too.
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def json_error(status: int, error: str, message: str, headers: dict[str, str] | None = None):
    response = jsonify(error=error, message=message)
    response.status_code = status
    response.headers.update(headers or {})
    return response


@bp.before_request
def require_api_key():
    """Load the bearer API key into ``g.api_key``, or return 401 as RFC 6750 describes."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    authorization = request.authorization
    if authorization is None or authorization.type != "bearer" or not authorization.token:
        return json_error(
            401,
            "unauthorized",
            "This API needs an API key: send it as `Authorization: Bearer pa_...`. An administrator creates keys.",
            {"WWW-Authenticate": 'Bearer realm="personal-auth"'},
        )
    api_key = authenticate(authorization.token)
    if api_key is None:
        return json_error(
            401,
            "invalid_api_key",
            "The API key is unknown, malformed or revoked. Ask an administrator for a new key.",
            {"WWW-Authenticate": 'Bearer realm="personal-auth", error="invalid_token"'},
        )
    g.api_key = api_key
    return None


@bp.after_request
def forbid_caching(response):
    # Token responses must not be kept by caches (RFC 6749, section 5.1).
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.get("/users/<username>/integrations/<integration>/token")
def user_token(username: str, integration: str):
    """Return the user's access token for the integration, given by id or name."""
    try:
        document = fetch_token(g.api_key, username, integration)
    except TokenFetchError as error:
        response = jsonify(error.as_json())
        response.status_code = error.status
        response.headers.update(error.headers)
        return response
    return jsonify(document)


@bp.get("/openapi.json")
def openapi():
    """Serve the OpenAPI 3.1 document of this API."""
    return current_app.response_class(OPENAPI_DOCUMENT.read_bytes(), mimetype="application/json")


@bp.route("/", defaults={"path": ""}, methods=ALL_METHODS)
@bp.route("/<path:path>", methods=ALL_METHODS)
def unknown(path: str):
    """Return 405 for a known path with another method, else 404, in JSON."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        endpoint, _ = adapter.match(method="GET")
    except HTTPException:
        endpoint = "api.unknown"
    if endpoint != "api.unknown":
        raise MethodNotAllowed(valid_methods=["GET", "HEAD"])
    raise NotFound(f"There is no API endpoint at {request.path}. The OpenAPI document lists them: /api/v1/openapi.json")


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    status = error.code or 500
    names = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
    response = json_error(status, names.get(status, "http_error"), error.description or error.name)
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


@bp.errorhandler(Exception)
def internal_error(error: Exception):
    db.session.rollback()
    # Only the exception's type and traceback are logged, because its message may quote a secret.
    log.error("Unhandled %s in the token API", type(error).__name__, exc_info=error)
    return json_error(
        500,
        "internal_error",
        "Something went wrong on our side. Try again; if it keeps failing, tell an administrator.",
    )
