from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.auth.sessions import current_login_session, role_required
from app.connect import bp
from app.connections import (
    ConnectError,
    card_for,
    complete_authorization,
    password_grant,
    start_authorization,
    take_authorization_request,
)
from app.models import ROLE_USER, GrantType, Integration

DISPLAYS = ("popup", "page")


class PasswordGrantForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=255)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def _display() -> str:
    display = request.values.get("display", "page")
    return display if display in DISPLAYS else "page"


def _personal_integration(integration_id: int) -> Integration:
    card = card_for(current_user, integration_id)
    if card is None:
        abort(404, description="This integration does not exist or is not available to you.")
    return card.integration


@bp.route("/connect/<int:integration_id>")
@role_required(ROLE_USER)
def start(integration_id: int):
    """Send the user to the provider, or show the password form for a password grant."""
    integration = _personal_integration(integration_id)
    display = _display()

    if integration.provider.grant_type == GrantType.PASSWORD:
        form = PasswordGrantForm()
        return render_template("connect/password.html", integration=integration, form=form, display=display)
    try:
        url = start_authorization(current_user, current_login_session(), integration, display)
    except ConnectError as error:
        return finish(integration, display, error.message, succeeded=False)
    return redirect(url)


@bp.route("/connect/<int:integration_id>/password", methods=["POST"])
@role_required(ROLE_USER)
def submit_password(integration_id: int):
    """Request tokens with the username and password the user typed."""
    integration = _personal_integration(integration_id)
    display = _display()
    form = PasswordGrantForm()
    if not form.validate_on_submit():
        return render_template("connect/password.html", integration=integration, form=form, display=display), 422

    try:
        password_grant(current_user, integration, form.username.data, form.password.data)
    except ConnectError as error:
        form.password.errors.append(error.message)
        form.password.data = ""
        return render_template("connect/password.html", integration=integration, form=form, display=display), 422
    return finish(integration, display, f"{integration.name} is connected.", succeeded=True)


@bp.route("/oauth/callback")
@role_required(ROLE_USER)
def callback():
    """Take the provider's redirect, exchange the code and store the tokens."""
    display = "popup"
    try:
        authorization = take_authorization_request(request.args.get("state"), current_login_session())
        display = authorization.display
        # An admin may have disabled the integration or limited it to other groups
        # since the flow started.
        if card_for(current_user, authorization.integration.id) is None:
            raise ConnectError("This integration is no longer available to you. Nothing was stored.")
        complete_authorization(
            current_user,
            authorization,
            code=request.args.get("code"),
            error=request.args.get("error"),
            error_description=request.args.get("error_description"),
            iss=request.args.get("iss"),
        )
    except ConnectError as error:
        response = finish(error.integration, display, error.message, succeeded=False)
    else:
        integration = authorization.integration
        response = finish(integration, display, f"{integration.name} is connected.", succeeded=True)
    # This page's URL carries the authorization code: not even its own assets get it.
    response = make_response(response)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def finish(integration: Integration | None, display: str, message: str, succeeded: bool):
    """End a flow: the pop-up reports to its opener, a full page returns to the dashboard."""
    if display == "page":
        flash(message, "success" if succeeded else "error")
        anchor = integration.dom_id if integration is not None else None
        return redirect(url_for("dashboard.index", _anchor=anchor), code=303)
    status = 200 if succeeded else 400
    return render_template("connect/result.html", integration=integration, message=message, succeeded=succeeded), status
