"""Admin pages that fill in a provider for the admin: from a catalog template or from an
issuer's metadata, and the *Test* action on a saved provider."""

from __future__ import annotations

from flask import abort, flash, render_template
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, URLField

from app import catalog, discovery, provider_checks
from app.admin import bp
from app.admin.forms import ProviderForm
from app.admin.routes import get_or_404, render_form, see_other, show_errors
from app.auth.sessions import role_required
from app.connections import redirect_uri
from app.htmx import htmx
from app.models import ROLE_ADMIN, Provider
from app.registry import ValidationError, save_provider


class CredentialsForm(FlaskForm):
    name = StringField("Name")
    client_id = StringField("Client ID")
    client_secret = PasswordField("Client secret")


class DiscoveryForm(CredentialsForm):
    issuer = URLField("Issuer URL")
    default_scopes = StringField("Default scopes (optional)")


class TestProviderForm(FlaskForm):
    """The Test button: a CSRF token and nothing else."""


def catalog_form(template: catalog.Template, **kwargs) -> CredentialsForm:
    """Build the form of one template: its parameters, then name, client ID and secret."""

    class TemplateForm(CredentialsForm):
        pass

    for parameter in template.parameters:
        field = StringField(parameter.label, default=parameter.default)
        setattr(TemplateForm, f"parameter_{parameter.name}", field)
    return TemplateForm(**kwargs)


@bp.route("/providers/catalog")
@role_required(ROLE_ADMIN)
def provider_catalog():
    return render_template("admin/catalog.html", templates=catalog.templates())


@bp.route("/providers/catalog/<key>", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def new_provider_from_catalog(key: str):
    """Create a provider from a template: parameters, client ID and secret."""
    template = catalog.find_template(key)
    if template is None:
        abort(404, description=f"There is no catalog template {key!r}. Choose one from the catalog.")
    form = catalog_form(template, data={"name": template.name})
    if form.validate_on_submit():
        parameters = {parameter.name: form[f"parameter_{parameter.name}"].data for parameter in template.parameters}
        try:
            data = catalog.provider_input(
                template, form.name.data or "", form.client_id.data or "", form.client_secret.data or None, parameters
            )
            provider = save_provider(data, actor_user_id=current_user.id)
        except ValidationError as error:
            show_errors(form, error.errors)
        else:
            flash(f"Provider {provider.name} is created from the {template.name} template. Review it below.", "success")
            return see_other("admin.edit_provider", provider_id=provider.id)
    return render_form("admin/catalog_form.html", form, catalog_template=template, redirect_uri=redirect_uri())


@bp.route("/providers/discover", methods=["GET", "POST"])
@role_required(ROLE_ADMIN)
def new_provider_from_issuer():
    """Create a provider from the metadata that its issuer publishes."""
    form = DiscoveryForm()
    if form.validate_on_submit():
        try:
            metadata = discovery.fetch_metadata(form.issuer.data or "")
            data = discovery.provider_input(
                metadata,
                form.name.data or "",
                form.client_id.data or "",
                form.client_secret.data or None,
                default_scopes=form.default_scopes.data or "",
            )
            provider = save_provider(data, actor_user_id=current_user.id)
        except discovery.DiscoveryError as error:
            show_errors(form, {"issuer": [str(error)]})
        except ValidationError as error:
            show_errors(form, error.errors)
        else:
            flash(f"Provider {provider.name} is created from {metadata.source_url}. Review it below.", "success")
            return see_other("admin.edit_provider", provider_id=provider.id)
    return render_form("admin/discover.html", form, redirect_uri=redirect_uri())


@bp.route("/providers/<int:provider_id>/test", methods=["POST"])
@role_required(ROLE_ADMIN)
def test_provider(provider_id: int):
    """Run the provider checks and show their results."""
    provider: Provider = get_or_404(Provider, provider_id)
    form = TestProviderForm()
    if not form.validate_on_submit():
        abort(400, description="The form expired. Reload the page and run the test again.")

    results = provider_checks.run_checks(provider)
    if htmx():
        return render_template("admin/_provider_checks.html", provider=provider, results=results)
    edit_form = ProviderForm(formdata=None, data=ProviderForm.stored_values(provider))
    return render_template(
        "admin/provider_form.html",
        form=edit_form,
        provider=provider,
        redirect_uri=redirect_uri(),
        results=results,
    )
