"""``flask tokens`` commands: the background job and giving up a pending revocation."""

from __future__ import annotations

import logging
import signal
import threading

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import db
from app.models import Credential, Integration, User
from app.token_jobs import GiveUpError, give_up_revocation, run_once, run_safely

log = logging.getLogger(__name__)

tokens_cli = AppGroup("tokens", help="Refresh tokens in the background and retry pending revocations.")


@tokens_cli.command("refresh-due")
@click.option("--loop", is_flag=True, help="Keep running, one pass every --interval seconds, until SIGTERM or SIGINT.")
@click.option(
    "--interval",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Seconds between two passes with --loop.",
)
def refresh_due_command(loop: bool, interval: int) -> None:
    """Refresh every token that expires within REFRESH_MARGIN and retry due revocations.

    Safe to run on several hosts at once: each credential is locked in the database
    while one of them works on it.
    """
    if not loop:
        summary = run_once()
        click.echo(f"Token job finished: {summary}.")
        return

    stop = threading.Event()

    def request_stop(signal_number, frame) -> None:
        log.info("Token job stopping after the current credential: signal %s", signal_number)
        stop.set()

    previous = {number: signal.signal(number, request_stop) for number in (signal.SIGTERM, signal.SIGINT)}
    log.info("Token job started: one pass every %s s", interval)
    try:
        while not stop.is_set():
            run_safely(stop.is_set)
            stop.wait(interval)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    log.info("Token job stopped")
    click.echo("Token job stopped.")


@tokens_cli.command("give-up-revocation")
@click.option("--user", "username", required=True, help="Username whose pending revocation to give up.")
@click.option("--integration", "integration_name", required=True, help="Name of the integration.")
def give_up_revocation_command(username: str, integration_name: str) -> None:
    """Delete a credential waiting for revocation without the provider's confirmation.

    Use it when the provider will never confirm, for example after it was shut down.
    The tokens may still be live at the provider; revoke them there if you can.
    """
    credential = db.session.scalar(
        select(Credential)
        .join(User, Credential.user_id == User.id)
        .join(Integration, Credential.integration_id == Integration.id)
        .where(User.username == username, Integration.name == integration_name)
    )
    if credential is None:
        raise click.ClickException(
            f"user {username!r} has no credential for integration {integration_name!r}: "
            "check both names with `flask users list` and `flask integrations list`"
        )
    provider_name = credential.integration.provider.name
    try:
        give_up_revocation(credential)
    except GiveUpError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"Deleted the credential of {username!r} for {integration_name!r}. "
        f"Its tokens may still be live at {provider_name}: revoke them there if you can."
    )
