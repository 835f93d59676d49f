"""Server-side login sessions behind Flask-Login.

The cookie carries a random session id. Each sign-in makes a new one, sign-out deletes
it, so a copied cookie stops working at sign-out.
"""

from __future__ import annotations

import functools
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import abort, current_app, redirect, request, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import delete, select

from app.extensions import db, login_manager
from app.htmx import htmx
from app.models import LoginSession, User, hash_token, utcnow

login_manager.login_view = "auth.login"
login_manager.login_message = "Sign in to continue."
login_manager.login_message_category = "info"


@login_manager.user_loader
def load_user(session_token: str) -> User | None:
    login_session = db.session.scalar(select(LoginSession).where(LoginSession.token_hash == hash_token(session_token)))
    if login_session is None or login_session.expires_at <= utcnow():
        return None
    user = login_session.user
    if not user.is_enabled:
        return None
    user.login_session_token = session_token
    return user


@login_manager.unauthorized_handler
def unauthorized():
    login_url = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
    if htmx():
        # A swap must not paste the sign-in page into a card: send the whole page there.
        response = current_app.response_class(status=401)
        response.headers["HX-Redirect"] = url_for("auth.login")
        return response
    return redirect(login_url)


def current_login_session() -> LoginSession:
    token = current_user.login_session_token
    login_session = db.session.scalar(select(LoginSession).where(LoginSession.token_hash == hash_token(token)))
    if login_session is None:
        abort(401)
    return login_session


def start_login_session(user: User) -> None:
    """Sign ``user`` in with a new session id, dropping whatever the old cookie held."""
    from flask import session

    session.clear()
    token = secrets.token_urlsafe(32)
    ttl = timedelta(seconds=current_app.config["LOGIN_SESSION_TTL"])
    db.session.add(LoginSession(token_hash=hash_token(token), user_id=user.id, expires_at=utcnow() + ttl))
    db.session.execute(delete(LoginSession).where(LoginSession.expires_at <= utcnow()))
    db.session.commit()
    user.login_session_token = token
    login_user(user)


def end_login_session() -> None:
    from flask import session

    token = getattr(current_user, "login_session_token", None)
    if token:
        db.session.execute(delete(LoginSession).where(LoginSession.token_hash == hash_token(token)))
        db.session.commit()
    logout_user()
    session.clear()


def role_required(role: str):
    """Require a signed-in, enabled user with ``role``; others get a 403 page."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.has_role(role):
                abort(403, description=f"This page needs the role {role}. Ask an administrator to grant it.")
            return view(*args, **kwargs)

        return wrapped

    return decorator


def is_safe_next(target: str | None) -> bool:
    """Accept only a path on this site as the post-login destination."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc
