"""``flask api-keys`` commands: create, list and revoke the API keys of internal services.

A new key is printed once, on standard output, and is never stored in plain text.
Changes made here are audited with no acting user, which the audit pages show as the system.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.api_keys import ApiKeyError, create_api_key, find_api_key, list_api_keys, revoke_api_key

api_keys_cli = AppGroup("api-keys", help="Create and revoke API keys of internal services.")


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


@api_keys_cli.command("create")
@click.option("--service", required=True, help="Name of the service that uses the key, for example ticket-bot.")
@click.option(
    "--integration",
    "integrations",
    multiple=True,
    required=True,
    help="Name or id of an integration the key may read. Repeat the option for several integrations.",
)
def create_command(service: str, integrations: tuple[str, ...]) -> None:
    """Create an API key and print it once."""
    try:
        api_key, raw_key = create_api_key(service, list(integrations))
    except ApiKeyError as error:
        raise click.ClickException(str(error)) from None

    names = ", ".join(integration.name for integration in api_key.integrations)
    click.echo(f"Created API key {api_key.id} for {api_key.service}, limited to: {names}.", err=True)
    click.echo("Store it now; it cannot be shown again:", err=True)
    click.echo(raw_key)


@api_keys_cli.command("list")
def list_command() -> None:
    """List API keys with their integrations. The keys themselves are never shown."""
    from app.cli import echo_table

    rows = [
        (
            str(api_key.id),
            api_key.display_prefix,
            api_key.service,
            ", ".join(sorted(integration.name for integration in api_key.integrations)) or "-",
            _when(api_key.created_at),
            _when(api_key.last_used_at),
            f"revoked {_when(api_key.revoked_at)}" if api_key.revoked_at else "active",
        )
        for api_key in list_api_keys()
    ]
    if not rows:
        click.echo("No API keys yet. Create one with `flask api-keys create`.")
        return
    echo_table(("ID", "KEY", "SERVICE", "INTEGRATIONS", "CREATED", "LAST USED", "STATUS"), rows)


@api_keys_cli.command("revoke")
@click.argument("key")
def revoke_command(key: str) -> None:
    """Revoke the API key KEY, given by id or prefix as `flask api-keys list` shows them."""
    api_key = find_api_key(key)
    if api_key is None:
        raise click.ClickException(f"no API key with id or prefix {key!r}: run `flask api-keys list` to see them")
    if api_key.revoked_at is not None:
        click.echo(f"API key {api_key.id} of {api_key.service} was already revoked. Nothing changed.")
        return
    revoke_api_key(api_key)
    click.echo(f"API key {api_key.id} of {api_key.service} is revoked.")
