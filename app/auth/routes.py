from __future__ import annotations

import logging

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.auth import bp
from app.auth.sessions import end_login_session, is_safe_next, start_login_session
from app.auth.throttle import allow_login_attempt
from app.extensions import db
from app.models import ROLE_ADMIN, ROLE_USER, User

log = logging.getLogger(__name__)

# Checked against when the username is unknown, so both cases take the same time.
_DUMMY_USER = User(username="")
_DUMMY_USER.set_password("unused-password")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=150)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with a local account."""
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))

    form = LoginForm()
    if form.validate_on_submit():
        if not allow_login_attempt(request.remote_addr, form.username.data):
            log.warning("Sign-in throttled: too many attempts from %s", request.remote_addr)
            abort(429, description="Too many sign-in attempts. Wait a minute and try again.")
        user = db.session.scalar(select(User).where(User.username == form.username.data.strip()))
        if user is None:
            _DUMMY_USER.check_password(form.password.data)
        elif user.is_enabled and user.check_password(form.password.data):
            start_login_session(user)
            log.info("Signed in: user %s", user.id)
            next_url = request.args.get("next")
            if is_safe_next(next_url):
                return redirect(next_url)
            return redirect(_home_for(user))
        log.info("Sign-in failed for a username of length %s", len(form.username.data))
        form.password.errors.append("The username or password is incorrect, or the account is deactivated.")

    return render_template("auth/login.html", form=form), 200 if not form.errors else 422


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out and end the session on the server."""
    if current_user.is_authenticated:
        log.info("Signed out: user %s", current_user.id)
        end_login_session()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


def _home_for(user: User) -> str:
    if not user.has_role(ROLE_USER) and user.has_role(ROLE_ADMIN):
        return url_for("admin.index")
    return url_for("dashboard.index")
