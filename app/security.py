"""Security headers on every response, and guards against malformed requests."""

from __future__ import annotations

from flask import Flask, Response, abort, request
from werkzeug.routing import IntegerConverter

#: Largest id a route accepts: the maximum of a 32-bit signed integer column, the
#: smallest id type among the supported databases.
MAX_ROUTE_ID = 2**31 - 1


class BoundedIntegerConverter(IntegerConverter):
    """The ``int`` URL converter, limited to ids that fit an integer column."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ROUTE_ID)
        super().__init__(url_map, *args, **kwargs)


def install_request_guards(app: Flask) -> None:
    """Reject ids out of range and NUL characters before any view sees them.

    Must run before blueprints are registered, because rules resolve converters then.
    PostgreSQL rejects NUL in text and ids past the integer range with an error that
    would otherwise surface as a server error.
    """
    app.url_map.converters["int"] = BoundedIntegerConverter

    @app.before_request
    def reject_nul_characters():
        values = [request.path, *request.args.values(), *request.form.values()]
        if any("\x00" in value for value in values):
            abort(400, description="The request contains a NUL character, which no field accepts.")


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Same-origin requests keep their Referer, which Flask-WTF checks on HTTPS; other
    # sites get none. The OAuth callback page sets no-referrer for itself.
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def register(app: Flask) -> None:
    @app.after_request
    def add_security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if app.config["SESSION_COOKIE_SECURE"]:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if response.mimetype == "text/html":
            response.headers["Cache-Control"] = "no-store"
            response.vary.add("HX-Request")
        return response
