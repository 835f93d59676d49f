"""Admin forms. They parse and render input, and app.registry and app.accounts validate
it, so the CLI gets the same checks and messages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.validators import Optional
from wtforms.validators import ValidationError as WTFormsValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from app.accounts import UserChanges
from app.models import ROLE_ADMIN, ROLE_USER, ClientAuthMethod, GrantType, Integration, IntegrationType, Provider, User
from app.registry import IntegrationInput, ProviderInput
from app.revocation_adapters import ADAPTERS

GRANT_TYPE_CHOICES = [
    SelectChoice(GrantType.AUTHORIZATION_CODE.value, "authorization_code: users sign in at the provider"),
    SelectChoice(GrantType.PASSWORD.value, "password: users type their provider password here"),
]
CLIENT_AUTH_CHOICES = [
    SelectChoice(ClientAuthMethod.CLIENT_SECRET_BASIC.value, "client_secret_basic: HTTP Basic authentication"),
    SelectChoice(
        ClientAuthMethod.CLIENT_SECRET_POST.value, "client_secret_post: client ID and secret in the request body"
    ),
]
INTEGRATION_TYPE_CHOICES = [
    SelectChoice(IntegrationType.PERSONAL.value, "Personal: users connect their own account on the dashboard"),
    SelectChoice(IntegrationType.SYSTEM.value, "System: not shown on the dashboard"),
]
SCOPE_SEPARATOR_CHOICES = [
    SelectChoice(" ", "space: scope=read write (the standard)"),
    SelectChoice(",", "comma: scope=read,write (Slack)"),
]
ROTATION_CHOICES = [
    SelectChoice("", "unknown"),
    SelectChoice("yes", "yes: every refresh returns a new refresh token"),
    SelectChoice("no", "no: the refresh token stays the same"),
]
REVOCATION_CHOICES = [
    SelectChoice("rfc7009", "rfc7009: the standard revocation endpoint"),
    SelectChoice("none", "none: the provider cannot revoke; tokens are only deleted here"),
    *(SelectChoice(name, f"{name}: the {name} revocation adapter") for name in ADAPTERS),
]
ROLE_CHOICES = [
    SelectChoice(ROLE_USER, "personal_auth_user: uses the dashboard"),
    SelectChoice(ROLE_ADMIN, "admin: manages providers, integrations and users"),
]


def parse_parameter_lines(text: str) -> dict[str, str]:
    """Read ``name=value`` lines into a dict; lines without ``=`` are left to the form validator."""
    params = {}
    for line in text.splitlines():
        name, separator, value = line.partition("=")
        if separator:
            params[name.strip()] = value.strip()
    return params


def format_parameter_lines(params: dict[str, str]) -> str:
    return "\n".join(f"{name}={value}" for name, value in params.items())


def optional_int(value: object) -> int | None:
    """Coerce a select value to an int, or None when it is empty or not a number."""
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


class MultiCheckboxField(SelectMultipleField):
    """A multiple choice shown as one checkbox per option."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ProviderForm(FlaskForm):
    name = StringField("Name")
    client_id = StringField("Client ID")
    # PasswordField never renders its value, so the stored secret cannot reach the page.
    client_secret = PasswordField("Client secret")
    authorization_url = URLField("Authorization URL")
    token_url = URLField("Token URL")
    revocation_url = URLField("Revocation URL (optional)")
    default_scopes = StringField("Default scopes (optional)")
    grant_type = SelectField("Grant type", choices=GRANT_TYPE_CHOICES, validate_choice=False)
    use_pkce = BooleanField("Use PKCE (S256)", default=True)
    client_auth_method = SelectField("Client authentication", choices=CLIENT_AUTH_CHOICES, validate_choice=False)
    issuer = URLField("Issuer (optional)")
    issuer_parameter_required = BooleanField("Require the iss parameter on authorization responses")
    extra_authorization_params = TextAreaField("Extra authorization parameters (optional)")
    scope_separator = SelectField("Scope separator", choices=SCOPE_SEPARATOR_CHOICES, validate_choice=False)
    default_token_lifetime = IntegerField("Default token lifetime in seconds (optional)", validators=[Optional()])
    refresh_token_rotates = SelectField(
        "Refresh tokens rotate", choices=ROTATION_CHOICES, validate_choice=False, default=""
    )
    revocation_method = SelectField("Revocation method", choices=REVOCATION_CHOICES, validate_choice=False)

    def validate_extra_authorization_params(self, field: TextAreaField) -> None:
        for number, line in enumerate((field.data or "").splitlines(), start=1):
            if line.strip() and "=" not in line:
                raise WTFormsValidationError(f"Line {number} has no '=': write one name=value per line.")

    @staticmethod
    def stored_values(provider: Provider) -> dict:
        """Return the provider's values to fill the edit form, without the client secret."""
        rotates = provider.refresh_token_rotates
        return {
            "issuer": provider.issuer,
            "issuer_parameter_required": provider.issuer_parameter_required,
            "extra_authorization_params": format_parameter_lines(provider.extra_authorization_params or {}),
            "scope_separator": provider.scope_separator,
            "default_token_lifetime": provider.default_token_lifetime,
            "refresh_token_rotates": "" if rotates is None else ("yes" if rotates else "no"),
            "revocation_method": provider.revocation_method,
            "name": provider.name,
            "client_id": provider.client_id,
            "authorization_url": provider.authorization_url,
            "token_url": provider.token_url,
            "revocation_url": provider.revocation_url,
            "default_scopes": provider.default_scopes,
            "grant_type": provider.grant_type.value,
            "use_pkce": provider.use_pkce,
            "client_auth_method": provider.client_auth_method.value,
        }

    def to_input(self) -> ProviderInput:
        return ProviderInput(
            name=self.name.data or "",
            client_id=self.client_id.data or "",
            token_url=self.token_url.data or "",
            grant_type=self.grant_type.data or "",
            authorization_url=self.authorization_url.data,
            revocation_url=self.revocation_url.data,
            default_scopes=self.default_scopes.data or "",
            use_pkce=self.use_pkce.data,
            client_auth_method=self.client_auth_method.data or "",
            client_secret=self.client_secret.data or None,
            issuer=self.issuer.data,
            issuer_parameter_required=self.issuer_parameter_required.data,
            extra_authorization_params=parse_parameter_lines(self.extra_authorization_params.data or ""),
            scope_separator=self.scope_separator.data or " ",
            default_token_lifetime=self.default_token_lifetime.data,
            refresh_token_rotates={"yes": True, "no": False}.get(self.refresh_token_rotates.data or ""),
            revocation_method=self.revocation_method.data or "rfc7009",
        )


class IntegrationForm(FlaskForm):
    name = StringField("Name")
    description = TextAreaField("Description (optional)")
    provider_id = SelectField("Provider", coerce=optional_int, validate_choice=False)
    scopes = StringField("Scopes (optional)")
    integration_type = SelectField("Type", choices=INTEGRATION_TYPE_CHOICES, validate_choice=False)
    api_base_url = URLField("API base URL (optional)")
    is_enabled = BooleanField("Enabled", default=True)
    #: Choices are set by the view from the stored groups.
    allowed_groups = MultiCheckboxField("Allowed groups", coerce=int, validate_choice=False)

    def __init__(self, providers: list[Provider], **kwargs):
        super().__init__(**kwargs)
        self.provider_id.choices = [SelectChoice("", "Choose a provider")] + [
            SelectChoice(str(provider.id), provider.name) for provider in providers
        ]

    @staticmethod
    def stored_values(integration: Integration) -> dict:
        return {
            "name": integration.name,
            "description": integration.description,
            "provider_id": integration.provider_id,
            "scopes": integration.scopes or "",
            "integration_type": integration.integration_type.value,
            "api_base_url": integration.api_base_url,
            "is_enabled": integration.is_enabled,
            "allowed_groups": [group.id for group in integration.allowed_groups],
        }

    def to_input(self) -> IntegrationInput:
        return IntegrationInput(
            name=self.name.data or "",
            provider_id=self.provider_id.data,
            description=self.description.data or "",
            scopes=self.scopes.data,
            integration_type=self.integration_type.data or "",
            api_base_url=self.api_base_url.data,
            is_enabled=self.is_enabled.data,
        )


class NewUserForm(FlaskForm):
    username = StringField("Username")
    display_name = StringField("Display name (optional)")
    email = EmailField("Email (optional)")
    password = PasswordField("Password")
    roles = MultiCheckboxField("Roles", choices=ROLE_CHOICES, default=[ROLE_USER], validate_choice=False)


class EditUserForm(FlaskForm):
    display_name = StringField("Display name (optional)")
    email = EmailField("Email (optional)")
    roles = MultiCheckboxField("Roles", choices=ROLE_CHOICES, validate_choice=False)
    is_enabled = BooleanField("Account enabled")
    password = PasswordField("New password (optional)")
    #: Choices are set by the view from the stored groups.
    groups = MultiCheckboxField("Groups", coerce=int, validate_choice=False)

    @staticmethod
    def stored_values(user: User) -> dict:
        return {
            "display_name": user.display_name,
            "email": user.email,
            "roles": [role.name for role in user.roles],
            "is_enabled": user.is_enabled,
            "groups": [group.id for group in user.groups],
        }

    def to_changes(self) -> UserChanges:
        return UserChanges(
            display_name=self.display_name.data or "",
            email=self.email.data,
            roles=list(self.roles.data or []),
            is_enabled=self.is_enabled.data,
            password=self.password.data or None,
        )


class ConfirmDeleteForm(FlaskForm):
    """The confirmation step of a delete: a CSRF token and nothing else."""
