"""Admin pages for API keys: list, create (the key is shown once), revoke after confirming."""

from __future__ import annotations

from flask import flash, render_template
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField

from app.admin import bp
from app.admin.forms import ConfirmDeleteForm, MultiCheckboxField
from app.admin.routes import get_or_404, render_form, see_other, show_errors
from app.api_keys import ApiKey, ApiKeyError, create_api_key, list_api_keys, revoke_api_key
from app.auth.sessions import role_required
from app.models import ROLE_ADMIN
from app.registry import list_integrations


class ApiKeyForm(FlaskForm):
    service = StringField("Service")
    integrations = MultiCheckboxField("Integrations the key may read")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.integrations.choices = [(integration.name, integration.name) for integration in list_integrations()]


@bp.route("/api-keys")
@role_required(ROLE_ADMIN)
def api_keys():
    return render_template("admin/api_keys.html", api_keys=list_api_keys())


@bp.route("/api-keys/new", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def new_api_key():
    """Create a key and show it on the response page, the only time it is shown."""
    form = ApiKeyForm()
    if form.validate_on_submit():
        try:
            api_key, raw_key = create_api_key(
                form.service.data or "", form.integrations.data or [], actor_user_id=current_user.id
            )
        except ApiKeyError as error:
            message = str(error)
            show_errors(form, {error.field or "": [message[:1].upper() + message[1:] + "."]})
        else:
            return render_template("admin/api_key_created.html", api_key=api_key, raw_key=raw_key), 201
    return render_form("admin/api_key_form.html", form)


@bp.route("/api-keys/<int:api_key_id>/revoke", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def revoke_api_key_page(api_key_id: int):
    """Ask before revoking a key. POST revokes it."""
    api_key = get_or_404(ApiKey, api_key_id)
    form = ConfirmDeleteForm()
    if form.validate_on_submit():
        revoke_api_key(api_key, actor_user_id=current_user.id)
        flash(f"The API key {api_key.display_prefix} of {api_key.service} is revoked.", "success")
        return see_other("admin.api_keys")
    return render_template("admin/api_key_revoke.html", form=form, api_key=api_key)
