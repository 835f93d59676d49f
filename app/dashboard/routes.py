from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from app.auth.sessions import role_required
from app.connections import card_for, dashboard_cards, own_credential
from app.dashboard import bp
from app.htmx import htmx
from app.models import ROLE_USER
from app.revocation import revoke_credential


@bp.route("/")
@role_required(ROLE_USER)
def index():
    """Show both dashboard sections."""
    mine, available = dashboard_cards(current_user)
    return render_template("dashboard/index.html", mine=mine, available=available)


@bp.route("/sections")
@role_required(ROLE_USER)
def sections():
    """Render both sections again, announcing where the card ``moved`` now sits."""
    mine, available = dashboard_cards(current_user)

    moved_id = request.args.get("moved", type=int)
    moved = next((card for card in mine + available if card.integration.id == moved_id), None)
    if moved is None:
        return render_sections(mine, available)
    section = "My Integrations" if moved.is_mine else "Integrations I can use"
    return render_sections(
        mine, available, f"{moved.integration.name} is now in {section}.", f"{moved.integration.dom_id}-name"
    )


@bp.route("/integrations/<int:integration_id>/revoke", methods=["POST"])
@role_required(ROLE_USER)
def revoke(integration_id: int):
    """Revoke the current user's tokens for one integration."""
    # The user may revoke what they granted even after the integration was disabled or
    # limited to other groups, so this looks up the credential, not the card.
    credential = own_credential(current_user, integration_id)
    if credential is None:
        abort(404, description="You have no tokens for this integration.")

    integration = credential.integration
    outcome = revoke_credential(credential, actor_user_id=current_user.id)

    name = integration.name
    if outcome.completed and card_for(current_user, integration_id) is None:
        message = f"{name} is revoked."
    elif outcome.completed:
        message = f"{name} is revoked and is now in Integrations I can use."
    else:
        message = f"{name} could not be revoked at the provider yet. {outcome.error} Retry the revocation."
    if not htmx():
        flash(message, "success" if outcome.completed else "error")
        return redirect(url_for("dashboard.index"), code=303)
    mine, available = dashboard_cards(current_user)
    return render_sections(mine, available, message, f"{integration.dom_id}-name")


def render_sections(mine, available, announcement: str | None = None, focus: str | None = None):
    """Render both sections; the page reads ``announcement`` aloud and focuses ``focus`` after the swap."""
    return make_response(
        render_template(
            "dashboard/_sections.html", mine=mine, available=available, announcement=announcement, focus=focus
        )
    )
