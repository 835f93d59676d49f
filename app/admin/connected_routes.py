"""Admin page "who is connected": the credentials of one integration, and revoking them.

The page shows each user's credential state and expiry, never a token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.admin import bp
from app.admin.forms import ConfirmDeleteForm
from app.admin.routes import get_or_404
from app.auth.sessions import role_required
from app.extensions import db
from app.groups import is_allowed
from app.models import ROLE_ADMIN, Credential, CredentialStatus, Integration, User, utcnow
from app.offboarding import revoke_credentials
from app.token_jobs import GiveUpError, give_up_revocation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectedUser:
    """One row of the page: a credential's owner, state and expiry."""

    credential: Credential
    state: str
    #: Reason the user could not connect today, such as a deactivated account; empty if they could.
    warning: str

    @property
    def user(self) -> User:
        return self.credential.user

    @property
    def expires_at(self) -> datetime | None:
        return self.credential.expires_at


def credential_state(credential: Credential, now: datetime) -> str:
    """Name the state of ``credential`` as the page shows it."""
    if credential.status == CredentialStatus.REVOCATION_PENDING:
        return "Revocation pending"
    if credential.status != CredentialStatus.ACTIVE:
        # Statuses added later, such as needs_reconnect, read well from their value.
        return credential.status.value.replace("_", " ").capitalize()
    if not credential.is_usable(now):
        return "Expired"
    if credential.is_expiring_soon(now):
        return "Expiring soon"
    return "Active"


def access_warning(user: User, integration: Integration) -> str:
    if not user.is_enabled:
        return "account deactivated"
    if not is_allowed(user, integration):
        return "not in the allowed groups"
    return ""


def connected_users(integration: Integration) -> list[ConnectedUser]:
    credentials = db.session.scalars(
        select(Credential)
        .join(Credential.user)
        .options(joinedload(Credential.user))
        .where(Credential.integration_id == integration.id)
        .order_by(User.username)
    )
    now = utcnow()
    return [
        ConnectedUser(credential, credential_state(credential, now), access_warning(credential.user, integration))
        for credential in credentials
    ]


def credential_of(integration: Integration, credential_id: int) -> Credential:
    credential = db.session.get(Credential, credential_id)
    if credential is None or credential.integration_id != integration.id:
        abort(404, description=f"{integration.name} has no credential with id {credential_id}. It may be revoked.")
    return credential


@bp.route("/integrations/<int:integration_id>/connected")
@role_required(ROLE_ADMIN)
def connected_users_page(integration_id: int):
    """List the users connected to one integration."""
    integration = get_or_404(Integration, integration_id)
    rows = connected_users(integration)
    return render_template("admin/connected.html", integration=integration, rows=rows)


@bp.route("/integrations/<int:integration_id>/connected/<int:credential_id>/revoke", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def revoke_connected_user(integration_id: int, credential_id: int):
    """Ask, then revoke one user's credential at the provider."""
    integration = get_or_404(Integration, integration_id)
    credential = credential_of(integration, credential_id)
    form = ConfirmDeleteForm()
    if not form.validate_on_submit():
        return render_template(
            "admin/connected_confirm.html", form=form, integration=integration, users=[credential.user]
        )

    log.info("Admin revokes one credential: admin %s, credential %s", current_user.id, credential.id)
    results = revoke_credentials([credential], actor_user_id=current_user.id)
    return render_template("admin/connected_result.html", integration=integration, results=results)


@bp.route("/integrations/<int:integration_id>/connected/revoke-all", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def revoke_all_connected(integration_id: int):
    """Ask, then revoke every credential of the integration, for example after a client secret leak."""
    integration = get_or_404(Integration, integration_id)
    statement = select(Credential).where(Credential.integration_id == integration.id).order_by(Credential.id)
    credentials = list(db.session.scalars(statement))
    form = ConfirmDeleteForm()
    if not form.validate_on_submit():
        users = [credential.user for credential in credentials]
        return render_template("admin/connected_confirm.html", form=form, integration=integration, users=users)

    log.info("Admin revokes all credentials: admin %s, integration %s", current_user.id, integration.id)
    results = revoke_credentials(credentials, actor_user_id=current_user.id)
    return render_template("admin/connected_result.html", integration=integration, results=results)


@bp.route("/integrations/<int:integration_id>/connected/<int:credential_id>/give-up", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def give_up_connected_revocation(integration_id: int, credential_id: int):
    """Ask, then delete a credential whose revocation the provider never confirmed."""
    integration = get_or_404(Integration, integration_id)
    credential = credential_of(integration, credential_id)
    form = ConfirmDeleteForm()
    context = {"form": form, "integration": integration, "credential": credential}
    if not form.validate_on_submit():
        return render_template("admin/connected_give_up.html", **context)

    username = credential.user.username
    try:
        give_up_revocation(credential, actor_user_id=current_user.id)
    except GiveUpError as error:
        log.info("Give-up rejected, credential not pending: admin %s, credential %s", current_user.id, credential.id)
        message = str(error)
        return render_template(
            "admin/connected_give_up.html", blocker=message[:1].upper() + message[1:] + ".", **context
        ), 409
    flash(
        f"The pending revocation of {username} is given up. Revoke the tokens at {integration.provider.name} "
        "if they may still be live there.",
        "success",
    )
    return redirect(url_for("admin.connected_users_page", integration_id=integration.id), code=303)
