"""``flask`` commands for scripted deployments: users, providers, integrations and keys.

Secrets never come from command-line options, which end up in shell history and in
``ps`` output: passwords and client secrets are read from an environment variable or
a hidden prompt. The only secrets printed are a generated password, once, and the
output of ``flask keys generate``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from typing import NoReturn

import click
from flask import Flask
from flask.cli import AppGroup

from app.accounts import (
    AccountError,
    create_user,
    ensure_admin,
    find_enabled_admin,
    find_user,
    generate_password,
    list_users,
    set_enabled,
    set_password,
    set_roles,
)
from app.api_keys_cli import api_keys_cli
from app.crypto import generate_key, generate_key_id
from app.key_rotation import RotationError, current_key_id, key_status, rotate_keys
from app.models import ROLE_ADMIN, ROLE_USER, ROLES, User
from app.registry import (
    IntegrationInput,
    ProviderInput,
    ValidationError,
    find_provider_by_name,
    list_integrations,
    list_providers,
    save_integration,
    save_provider,
)
from app.tokens_cli import tokens_cli

NEW_USER_PASSWORD_VARIABLE = "PERSONAL_AUTH_NEW_USER_PASSWORD"
ADMIN_PASSWORD_VARIABLE = "PERSONAL_AUTH_ADMIN_PASSWORD"
CLIENT_SECRET_VARIABLE = "PERSONAL_AUTH_CLIENT_SECRET"

users_cli = AppGroup("users", help="Create and manage local user accounts.")
providers_cli = AppGroup("providers", help="Register OAuth providers.")
integrations_cli = AppGroup("integrations", help="Register integrations that use a provider.")
# In production, create_app raises ConfigError while either key is unset, so `flask` cannot
# load the app's commands. pyproject.toml therefore also registers this group as a
# `flask.commands` entry point, which runs without the app.
keys_cli = AppGroup("keys", help="Generate encryption and session keys.")


def register_commands(app: Flask) -> None:
    for group in (users_cli, providers_cli, integrations_cli, keys_cli):
        app.cli.add_command(group)
    app.cli.add_command(api_keys_cli)
    app.cli.add_command(tokens_cli)


# Output helpers ------------------------------------------------------------------------


def fail(message: str) -> NoReturn:
    """Print ``Error: message`` to stderr and exit with status 1."""
    raise click.ClickException(message)


def fail_validation(error: ValidationError) -> NoReturn:
    """Print one ``Error: <field>: <message>`` line per message and exit with status 1."""
    for field, messages in error.errors.items():
        for message in messages:
            click.echo(f"Error: {field}: {message}", err=True)
    raise click.exceptions.Exit(1)


def echo_table(headers: Sequence[str], rows: list[Sequence[str]]) -> None:
    """Print rows in columns padded to the widest value."""
    widths = [max(len(str(value)) for value in column) for column in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        click.echo("  ".join(str(value).ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


def require_user(username: str) -> User:
    user = find_user(username)
    if user is None:
        fail(f"no user named {username!r}: run `flask users list` to see the usernames")
    return user


def read_new_password(generate: bool) -> str:
    """Return a generated password, else PERSONAL_AUTH_NEW_USER_PASSWORD, else ask for one."""
    if generate and os.environ.get(NEW_USER_PASSWORD_VARIABLE):
        fail(f"--generate-password and {NEW_USER_PASSWORD_VARIABLE} are both set: use one of them")
    if generate:
        return generate_password()
    return read_secret_from_env_or_prompt(NEW_USER_PASSWORD_VARIABLE, "Password")


def read_secret_from_env_or_prompt(variable: str, prompt: str) -> str:
    """Return the value of ``variable``, or ask for it twice without echoing it."""
    value = os.environ.get(variable)
    if value:
        return value
    try:
        return click.prompt(prompt, hide_input=True, confirmation_prompt=True)
    except click.Abort:
        # click raises Abort on end of input (no terminal) and on Ctrl-C.
        fail(f"{prompt.lower()} is missing: set {variable}, or run the command in a terminal to type it")


def warn_if_no_admin() -> None:
    if find_enabled_admin() is None:
        click.echo("Warning: no enabled user has the admin role now; `flask users ensure-admin` creates one.", err=True)


# Users ---------------------------------------------------------------------------------


@users_cli.command("create")
@click.argument("username")
@click.option(
    "--role",
    "roles",
    multiple=True,
    help=f"Role to grant. Repeat the option for several roles. Choices: {', '.join(ROLES)}. Default: {ROLE_USER}.",
)
@click.option("--display-name", default="", help="Name shown in the app instead of the username.")
@click.option("--email", default=None, help="Email address of the user.")
@click.option("--generate-password", "generate", is_flag=True, help="Generate a random password and print it once.")
def create_user_command(
    username: str, roles: tuple[str, ...], display_name: str, email: str | None, generate: bool
) -> None:
    """Create a local user.

    The password comes from --generate-password, else from PERSONAL_AUTH_NEW_USER_PASSWORD,
    else from a hidden prompt.
    """
    password = read_new_password(generate)

    try:
        user = create_user(username, password, roles=roles or (ROLE_USER,), display_name=display_name, email=email)
    except AccountError as error:
        fail(str(error))

    role_names = ", ".join(sorted(role.name for role in user.roles)) or "none"
    if generate:
        click.echo(f"Created user {user.username!r} with roles {role_names} and password: {password}")
    else:
        click.echo(f"Created user {user.username!r} with roles {role_names}.")


@users_cli.command("ensure-admin")
@click.option("--username", default="admin", show_default=True, help="Username of the admin to create.")
def ensure_admin_command(username: str) -> None:
    """Create an admin unless an enabled user already has the admin role.

    The new user gets the roles admin and personal_auth_user. Its password comes from
    PERSONAL_AUTH_ADMIN_PASSWORD. Without it, a generated password is printed once.
    Running the command again changes nothing.
    """
    password = os.environ.get(ADMIN_PASSWORD_VARIABLE)
    generated = not password
    if generated:
        password = generate_password()

    try:
        user, created = ensure_admin(username, password)
    except AccountError as error:
        if error.field == "username":
            fail(
                f"{error}. Grant it the role with `flask users set-roles {username} --role {ROLE_ADMIN} "
                f"--role {ROLE_USER}` and `flask users activate {username}`, or pass another --username"
            )
        if error.field == "password" and not generated:
            fail(f"{ADMIN_PASSWORD_VARIABLE}: {error}")
        fail(str(error))

    if not created:
        click.echo(f"An enabled admin already exists: {user.username!r}. Nothing changed.")
    elif generated:
        click.echo(f"Created admin user {user.username!r} with password: {password}")
    else:
        click.echo(f"Created admin user {user.username!r} with the password from {ADMIN_PASSWORD_VARIABLE}.")


@users_cli.command("list")
def list_users_command() -> None:
    """List local users with their roles and whether they can sign in."""
    rows = [
        (
            user.username,
            user.display_name,
            ",".join(sorted(role.name for role in user.roles)) or "-",
            "yes" if user.is_enabled else "no",
        )
        for user in list_users()
    ]
    if not rows:
        click.echo("No users yet. Create the first admin with `flask users ensure-admin`.")
        return
    echo_table(("USERNAME", "DISPLAY NAME", "ROLES", "ENABLED"), rows)


@users_cli.command("set-roles")
@click.argument("username")
@click.option(
    "--role",
    "roles",
    multiple=True,
    help=f"Role the user keeps or gets. Repeat the option for several roles. Choices: {', '.join(ROLES)}.",
)
def set_roles_command(username: str, roles: tuple[str, ...]) -> None:
    """Replace the roles of USERNAME with the given ones."""
    if not roles:
        fail("give at least one --role; to stop a user from signing in, run `flask users deactivate`")
    user = require_user(username)
    try:
        set_roles(user, roles)
    except AccountError as error:
        fail(str(error))
    click.echo(f"User {user.username!r} now has the roles {', '.join(sorted(set(roles)))}.")
    warn_if_no_admin()


@users_cli.command("deactivate")
@click.argument("username")
def deactivate_command(username: str) -> None:
    """Stop USERNAME from signing in, end their login sessions and revoke their tokens.

    Prints the outcome per integration. Exits with status 1 when a provider did not
    confirm a revocation; that credential stays in revocation pending.
    """
    user = require_user(username)
    revocations: list = []
    set_enabled(user, False, revocations=revocations)
    click.echo(f"User {user.username!r} is deactivated and signed out.")
    for revocation in revocations:
        click.echo(revocation.summary)
    warn_if_no_admin()
    if any(not revocation.outcome.completed for revocation in revocations):
        raise SystemExit(1)


@users_cli.command("activate")
@click.argument("username")
def activate_command(username: str) -> None:
    """Let USERNAME sign in again."""
    user = require_user(username)
    set_enabled(user, True)
    click.echo(f"User {user.username!r} is activated.")


@users_cli.command("set-password")
@click.argument("username")
@click.option("--generate-password", "generate", is_flag=True, help="Generate a random password and print it once.")
def set_password_command(username: str, generate: bool) -> None:
    """Set a new password for USERNAME and sign them out everywhere.

    The password comes from --generate-password, else from PERSONAL_AUTH_NEW_USER_PASSWORD,
    else from a hidden prompt.
    """
    user = require_user(username)
    password = read_new_password(generate)

    try:
        set_password(user, password)
    except AccountError as error:
        fail(str(error))
    if generate:
        click.echo(f"New password of {user.username!r}: {password}")
    else:
        click.echo(f"Password of {user.username!r} is changed.")


# Providers -----------------------------------------------------------------------------


@providers_cli.command("add")
@click.option("--name", required=True, help="Name shown to users, for example GitHub.")
@click.option("--client-id", required=True, help="Client ID issued by the provider.")
@click.option("--token-url", required=True, help="Token endpoint URL.")
@click.option("--authorization-url", help="Authorization endpoint URL, required for the authorization_code grant.")
@click.option("--revocation-url", help="RFC 7009 revocation endpoint URL.")
@click.option("--scopes", default="", help="Default scopes, separated by spaces.")
@click.option(
    "--grant-type",
    default="authorization_code",
    show_default=True,
    help="authorization_code or password.",
)
@click.option("--pkce/--no-pkce", default=True, show_default=True, help="Send a PKCE S256 code challenge.")
@click.option(
    "--client-auth",
    default="client_secret_basic",
    show_default=True,
    help="How the client authenticates: client_secret_basic or client_secret_post.",
)
def add_provider_command(
    name: str,
    client_id: str,
    token_url: str,
    authorization_url: str | None,
    revocation_url: str | None,
    scopes: str,
    grant_type: str,
    pkce: bool,
    client_auth: str,
) -> None:
    """Register an OAuth provider.

    The client secret comes from PERSONAL_AUTH_CLIENT_SECRET, else from a hidden prompt.
    """
    client_secret = read_secret_from_env_or_prompt(CLIENT_SECRET_VARIABLE, "Client secret")
    data = ProviderInput(
        name=name,
        client_id=client_id,
        token_url=token_url,
        grant_type=grant_type,
        authorization_url=authorization_url,
        revocation_url=revocation_url,
        default_scopes=scopes,
        use_pkce=pkce,
        client_auth_method=client_auth,
        client_secret=client_secret,
    )
    try:
        provider = save_provider(data)
    except ValidationError as error:
        fail_validation(error)
    click.echo(f"Created provider {provider.name!r} (id {provider.id}).")


@providers_cli.command("list")
def list_providers_command() -> None:
    """List providers. Client secrets are never shown."""
    rows = [
        (
            provider.name,
            provider.grant_type.value,
            provider.client_id,
            provider.token_url,
            ", ".join(sorted(integration.name for integration in provider.integrations)) or "-",
        )
        for provider in list_providers()
    ]
    if not rows:
        click.echo("No providers yet. Add one with `flask providers add`.")
        return
    echo_table(("NAME", "GRANT TYPE", "CLIENT ID", "TOKEN URL", "INTEGRATIONS"), rows)


# Integrations --------------------------------------------------------------------------


@integrations_cli.command("add")
@click.option("--name", required=True, help="Name shown on the dashboard card.")
@click.option("--provider", "provider_name", required=True, help="Name of the provider it uses.")
@click.option("--description", default="", help="Text shown on the dashboard card.")
@click.option("--scopes", default=None, help="Scopes, separated by spaces. Default: the provider's default scopes.")
@click.option(
    "--type",
    "integration_type",
    default="personal",
    show_default=True,
    help="personal (on the dashboard) or system (not on the dashboard).",
)
@click.option("--api-base-url", default=None, help="Base URL of the API that the tokens are for.")
def add_integration_command(
    name: str,
    provider_name: str,
    description: str,
    scopes: str | None,
    integration_type: str,
    api_base_url: str | None,
) -> None:
    """Register an integration, enabled at once."""
    provider = find_provider_by_name(provider_name)
    if provider is None:
        fail(f"provider: no provider named {provider_name!r}: run `flask providers list` to see the names")
    data = IntegrationInput(
        name=name,
        provider_id=provider.id,
        description=description,
        scopes=scopes,
        integration_type=integration_type,
        api_base_url=api_base_url,
    )
    try:
        integration = save_integration(data)
    except ValidationError as error:
        fail_validation(error)
    click.echo(f"Created {integration.integration_type.value} integration {integration.name!r} (id {integration.id}).")


@integrations_cli.command("list")
def list_integrations_command() -> None:
    """List integrations with their type, provider and scopes."""
    rows = [
        (
            integration.name,
            integration.integration_type.value,
            integration.provider.name,
            "yes" if integration.is_enabled else "no",
            integration.requested_scopes or "-",
        )
        for integration in list_integrations()
    ]
    if not rows:
        click.echo("No integrations yet. Add one with `flask integrations add`.")
        return
    echo_table(("NAME", "TYPE", "PROVIDER", "ENABLED", "SCOPES"), rows)


# Keys ----------------------------------------------------------------------------------


@keys_cli.command("generate", with_appcontext=False)
def generate_keys_command() -> None:
    """Print a new encryption key entry and a new secret key as NAME=value lines.

    To rotate the encryption key, put the new entry first in PERSONAL_AUTH_ENCRYPTION_KEYS
    and keep the old entries after it, separated by commas: the first key encrypts, all
    of them decrypt.
    """
    click.echo(f"PERSONAL_AUTH_ENCRYPTION_KEYS={generate_key_id()}:{generate_key()}")
    click.echo(f"PERSONAL_AUTH_SECRET_KEY={secrets.token_urlsafe(48)}")


@keys_cli.command("rotate")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Rows re-encrypted and committed per transaction.",
)
def rotate_keys_command(batch_size: int) -> None:
    """Re-encrypt every token, client secret and PKCE verifier under the first key.

    Rows already under the first key are skipped, so the command can be run again after
    an interruption. When it finishes, the other keys can be removed from
    PERSONAL_AUTH_ENCRYPTION_KEYS.
    """
    try:
        counts = rotate_keys(batch_size)
    except RotationError as error:
        fail(str(error))
    for label, count in counts.items():
        click.echo(f"Re-encrypted {count} {label} values.")
    click.echo(f"Every ciphertext now uses key {current_key_id()!r}.")


@keys_cli.command("status")
def keys_status_command() -> None:
    """Count the stored ciphertexts per encryption key id."""
    rows = [(label, key_id, str(count)) for label, key_id, count in key_status()]
    if not rows:
        click.echo("Nothing is encrypted yet.")
        return
    echo_table(("FIELD", "KEY ID", "COUNT"), rows)
    click.echo(f"Current key: {current_key_id()!r}.")
