"""Error pages that state what failed and never show internals."""

from __future__ import annotations

import logging

from flask import Flask, make_response, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.extensions import db
from app.htmx import htmx

log = logging.getLogger(__name__)


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        response = _render(400, "The form expired or was sent from another site. Reload the page and try again.")
        if htmx():
            # Usually the session changed in another tab: reload so the page and its
            # token match the session again (or show the sign-in page).
            response = make_response(response)
            response.headers["HX-Refresh"] = "true"
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return _render(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    def internal_error(error: Exception):
        db.session.rollback()
        # The exception's type and place are logged; its message may quote a secret.
        log.error("Unhandled %s", type(error).__name__, exc_info=error)
        return _render(500, "Something went wrong on our side. Try again; if it keeps failing, tell an administrator.")


TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Access denied",
    404: "Not found",
    405: "Method not allowed",
    413: "Request too large",
    422: "Invalid input",
    429: "Too many requests",
    500: "Server error",
}


def _render(status: int, message: str):
    title = TITLES.get(status, "Error")
    template = "errors/_message.html" if htmx() else "errors/error.html"
    return render_template(template, status=status, title=title, message=message), status
