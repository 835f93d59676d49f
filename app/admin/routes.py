"""Admin pages. Each view parses a form, calls one function of app.registry or
app.accounts, then renders the page again (422 on invalid input) or redirects with 303."""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import SelectChoice

from app.accounts import MIN_PASSWORD_LENGTH, AccountError, create_user, list_users, update_user
from app.admin import bp
from app.admin.forms import ConfirmDeleteForm, EditUserForm, IntegrationForm, NewUserForm, ProviderForm
from app.auth.sessions import role_required
from app.connections import redirect_uri
from app.extensions import db
from app.groups import GroupError, groups_with_ids, list_groups, set_integration_groups, set_user_groups
from app.models import ROLE_ADMIN, Integration, IntegrationType, Provider, User
from app.offboarding import CredentialRevocation
from app.registry import (
    InUseError,
    ValidationError,
    delete_integration,
    delete_provider,
    integration_delete_blocker,
    list_integrations,
    list_providers,
    provider_delete_blocker,
    save_integration,
    save_provider,
)


def sentence(error: Exception) -> str:
    """Turn a lower-case error phrase, as the CLI prints it, into a sentence for a form."""
    message = str(error)
    return message[:1].upper() + message[1:] + "."


def group_choices() -> list[SelectChoice]:
    return [SelectChoice(group.id, group.name) for group in list_groups()]


def get_or_404(model: type[db.Model], row_id: int):
    row = db.session.get(model, row_id)
    if row is None:
        abort(404, description=f"There is no {model.__name__.lower()} with id {row_id}. It may have been deleted.")
    return row


def show_errors(form: FlaskForm, errors: dict[str, list[str]]) -> None:
    """Put each message next to the field it names, and messages for unknown names above the form."""
    for name, messages in errors.items():
        if name in form:
            form[name].errors = [*form[name].errors, *messages]
        else:
            form.form_errors.extend(messages)


def show_account_error(form: FlaskForm, error: AccountError) -> None:
    """Show an AccountError, a lower-case phrase that also suits the CLI, as a sentence."""
    message = str(error)
    show_errors(form, {error.field or "": [message[:1].upper() + message[1:] + "."]})


def render_form(template: str, form: FlaskForm, **context):
    """Render a form page: 422 when a submitted form comes back with errors."""
    status = 422 if form.is_submitted() else 200
    return render_template(template, form=form, **context), status


def see_other(endpoint: str, **values):
    return redirect(url_for(endpoint, **values), code=303)


def confirm_delete(
    kind: str,
    name: str,
    cancel_url: str,
    consequence: str,
    delete: Callable[[], None],
    blocker: Callable[[], str | None],
    in_use_error: type[Exception],
    list_endpoint: str,
):
    """Show the confirmation page of a delete; on a confirmed POST call ``delete``.

    ``delete`` raises ``in_use_error`` when something still depends on the row, and the
    page then shows that message with status 409. ``blocker`` names such a dependency
    before the admin confirms.
    """
    form = ConfirmDeleteForm()
    context = {"kind": kind, "name": name, "cancel_url": cancel_url, "consequence": consequence}
    if form.validate_on_submit():
        try:
            delete()
        except in_use_error as error:
            return render_template("admin/confirm_delete.html", form=form, blocker=str(error), **context), 409
        flash(f"{kind.capitalize()} {name} is deleted.", "success")
        return see_other(list_endpoint)
    return render_template("admin/confirm_delete.html", form=form, blocker=blocker(), **context)


@bp.route("/")
@role_required(ROLE_ADMIN)
def index():
    """Link to each admin area with its row count."""
    count = func.count()
    counts = {
        "providers": db.session.scalar(select(count).select_from(Provider)),
        "personal": db.session.scalar(select(count).where(Integration.integration_type == IntegrationType.PERSONAL)),
        "system": db.session.scalar(select(count).where(Integration.integration_type == IntegrationType.SYSTEM)),
        "users": db.session.scalar(select(count).select_from(User)),
    }
    return render_template("admin/index.html", counts=counts)


# Providers ---------------------------------------------------------------------------


@bp.route("/providers")
@role_required(ROLE_ADMIN)
def providers():
    return render_template("admin/providers.html", providers=list_providers())


@bp.route("/providers/new", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def new_provider():
    form = ProviderForm()
    if form.validate_on_submit():
        try:
            provider = save_provider(form.to_input(), actor_user_id=current_user.id)
        except ValidationError as error:
            show_errors(form, error.errors)
        else:
            flash(f"Provider {provider.name} is created.", "success")
            return see_other("admin.providers")
    return render_form("admin/provider_form.html", form, provider=None, redirect_uri=redirect_uri())


@bp.route("/providers/<int:provider_id>/edit", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def edit_provider(provider_id: int):
    provider = get_or_404(Provider, provider_id)
    form = ProviderForm(data=ProviderForm.stored_values(provider))
    if form.validate_on_submit():
        try:
            save_provider(form.to_input(), existing=provider, actor_user_id=current_user.id)
        except ValidationError as error:
            show_errors(form, error.errors)
        else:
            flash(f"Provider {provider.name} is saved.", "success")
            return see_other("admin.providers")
    return render_form("admin/provider_form.html", form, provider=provider, redirect_uri=redirect_uri())


@bp.route("/providers/<int:provider_id>/delete", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def confirm_delete_provider(provider_id: int):
    """Ask before deleting a provider. POST deletes it unless an integration uses it."""
    provider = get_or_404(Provider, provider_id)
    return confirm_delete(
        "provider",
        provider.name,
        url_for("admin.edit_provider", provider_id=provider.id),
        "Its client ID and client secret are removed from Personal Auth.",
        delete=lambda: delete_provider(provider, actor_user_id=current_user.id),
        blocker=lambda: provider_delete_blocker(provider),
        in_use_error=InUseError,
        list_endpoint="admin.providers",
    )


# Integrations ------------------------------------------------------------------------


@bp.route("/integrations")
@role_required(ROLE_ADMIN)
def integrations():
    return render_template("admin/integrations.html", integrations=list_integrations())


@bp.route("/integrations/new", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def new_integration():
    form = IntegrationForm(list_providers())
    form.allowed_groups.choices = group_choices()
    if form.validate_on_submit():
        integration = submit_integration(form)
        if integration is not None:
            flash(f"Integration {integration.name} is created.", "success")
            return see_other("admin.integrations")
    return render_form("admin/integration_form.html", form, integration=None)


@bp.route("/integrations/<int:integration_id>/edit", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def edit_integration(integration_id: int):
    integration = get_or_404(Integration, integration_id)
    form = IntegrationForm(list_providers(), data=IntegrationForm.stored_values(integration))
    form.allowed_groups.choices = group_choices()
    if form.validate_on_submit() and submit_integration(form, integration) is not None:
        flash(f"Integration {integration.name} is saved.", "success")
        return see_other("admin.integrations")
    return render_form("admin/integration_form.html", form, integration=integration)


def submit_integration(form: IntegrationForm, existing: Integration | None = None) -> Integration | None:
    """Save the integration and its allowed groups, or put the errors on the form and return None."""
    try:
        allowed_groups = groups_with_ids(form.allowed_groups.data or [])
        integration = save_integration(form.to_input(), existing=existing, actor_user_id=current_user.id)
    except GroupError as error:
        show_errors(form, {"allowed_groups": [sentence(error)]})
        return None
    except ValidationError as error:
        show_errors(form, error.errors)
        return None
    set_integration_groups(integration, allowed_groups, actor_user_id=current_user.id)
    return integration


@bp.route("/integrations/<int:integration_id>/delete", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def confirm_delete_integration(integration_id: int):
    """Ask before deleting an integration. POST deletes it unless a user has tokens for it."""
    integration = get_or_404(Integration, integration_id)
    return confirm_delete(
        "integration",
        integration.name,
        url_for("admin.edit_integration", integration_id=integration.id),
        "Users can no longer connect it, and services can no longer use it.",
        delete=lambda: delete_integration(integration, actor_user_id=current_user.id),
        blocker=lambda: integration_delete_blocker(integration),
        in_use_error=InUseError,
        list_endpoint="admin.integrations",
    )


# Users -------------------------------------------------------------------------------


@bp.route("/users")
@role_required(ROLE_ADMIN)
def users():
    return render_template("admin/users.html", users=list_users())


@bp.route("/users/new", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def new_user():
    form = NewUserForm()
    if form.validate_on_submit():
        try:
            user = create_user(
                form.username.data or "",
                form.password.data or "",
                roles=form.roles.data or [],
                display_name=form.display_name.data or "",
                email=form.email.data,
                actor_user_id=current_user.id,
            )
        except AccountError as error:
            show_account_error(form, error)
        else:
            flash(f"User {user.username} is created.", "success")
            return see_other("admin.users")
    return render_form("admin/user_form.html", form, user=None, min_password_length=MIN_PASSWORD_LENGTH)


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def edit_user(user_id: int):
    user = get_or_404(User, user_id)
    form = EditUserForm(data=EditUserForm.stored_values(user))
    form.groups.choices = group_choices()
    if form.validate_on_submit():
        revocations: list[CredentialRevocation] = []
        try:
            groups = groups_with_ids(form.groups.data or [])
            update_user(
                user,
                form.to_changes(),
                acting_user=current_user,
                revocations=revocations,
                actor_user_id=current_user.id,
            )
        except GroupError as error:
            show_errors(form, {"groups": [sentence(error)]})
        except AccountError as error:
            show_account_error(form, error)
        else:
            set_user_groups(user, groups, actor_user_id=current_user.id)
            flash(f"User {user.username} is saved.", "success")
            for revocation in revocations:
                flash(revocation.summary, "success" if revocation.outcome.completed else "error")
            return see_other("admin.users")
    is_self = user.id == current_user.id
    return render_form(
        "admin/user_form.html", form, user=user, is_self=is_self, min_password_length=MIN_PASSWORD_LENGTH
    )
