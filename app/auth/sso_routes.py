"""Sign-in with the company identity provider (OpenID Connect)."""

from __future__ import annotations

import logging

from flask import abort, redirect, render_template, request, session
from flask_login import current_user

from app import sso
from app.auth import bp
from app.auth.routes import _home_for
from app.auth.sessions import is_safe_next, start_login_session

log = logging.getLogger(__name__)

#: Session key of the page to open after single sign-on; start_login_session clears it.
NEXT_KEY = "sso_next"


@bp.route("/auth/sso/login")
def sso_login():
    """Send the browser to the identity provider."""
    if not sso.is_enabled():
        abort(404, description="Single sign-on is not configured. Sign in with your local account.")
    if current_user.is_authenticated:
        return redirect(_home_for(current_user))

    next_url = request.args.get("next")
    session[NEXT_KEY] = next_url if is_safe_next(next_url) else None
    try:
        return sso.authorize_redirect()
    except sso.SsoError as error:
        return render_template("auth/sso_error.html", message=error.message), error.status


@bp.route("/auth/sso/callback")
def sso_callback():
    """Verify the identity provider's answer and sign the user in."""
    if not sso.is_enabled():
        abort(404, description="Single sign-on is not configured. Sign in with your local account.")
    try:
        user = sso.sign_in(sso.fetch_identity())
    except sso.SsoError as error:
        return render_template("auth/sso_error.html", message=error.message), error.status

    next_url = session.get(NEXT_KEY)
    start_login_session(user)
    log.info("Signed in with SSO: user %s", user.id)
    return redirect(next_url if is_safe_next(next_url) else _home_for(user))
