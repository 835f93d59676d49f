"""Single flight across processes: many workers, one refresh request at the provider.

The provider is the Authlib server of ``tests.support.authlib_server``, which rotates
refresh tokens and rejects a refresh token that was used once.
"""

import multiprocessing
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import create_app
from app.accounts import create_user
from app.connections import password_grant
from app.extensions import db
from app.models import ROLE_USER, Credential, utcnow
from app.registry import IntegrationInput, ProviderInput, save_integration, save_provider
from tests.conftest import (
    PASSWORD,
    PASSWORD_CLIENT_ID,
    PASSWORD_CLIENT_SECRET,
    PROVIDER_PASSWORD,
    PROVIDER_USERNAME,
    base_config,
    reset_postgres,
)
from tests.support import refresh_workers

PROCESSES = 5
THREADS_PER_PROCESS = 4


@pytest.fixture
def postgres_app(postgres_database):
    """The app on PostgreSQL only; a missing server fails the test when every test is required."""
    reset_postgres(postgres_database)
    app = create_app(base_config(postgres_database))
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def connect_users(server, count: int) -> list[Credential]:
    """Connect ``count`` users at ``server`` and make their access tokens expired."""
    provider = save_provider(
        ProviderInput(
            name="Rotating",
            client_id=PASSWORD_CLIENT_ID,
            client_secret=PASSWORD_CLIENT_SECRET,
            grant_type="password",
            token_url=server.token_endpoint,
            default_scopes="useraccount",
        )
    )
    integration = save_integration(IntegrationInput(name="Service Desk", provider_id=provider.id))
    credentials = []
    for number in range(count):
        user = create_user(f"user{number}", PASSWORD, roles=(ROLE_USER,))
        credential = password_grant(user, integration, PROVIDER_USERNAME, PROVIDER_PASSWORD)
        credential.access_token_expires_at = utcnow() - timedelta(seconds=1)
        credentials.append(credential)
    db.session.commit()
    server.clear_requests()
    return credentials


def refresh_grants(server) -> list[dict]:
    return [entry for entry in server.requests if entry["grant_type"] == "refresh_token"]


def test_concurrent_refresh_sends_one_request(postgres_app, password_server):
    [credential] = connect_users(password_server, 1)
    old_access = credential.access_token
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES * THREADS_PER_PROCESS)
    results = context.Queue()
    url = postgres_app.config["SQLALCHEMY_DATABASE_URI"]
    processes = [
        context.Process(
            target=refresh_workers.refresh_concurrently,
            args=(url, credential.id, THREADS_PER_PROCESS, barrier, results),
        )
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    tokens = [results.get(timeout=120) for _ in range(PROCESSES * THREADS_PER_PROCESS)]
    for process in processes:
        process.join(timeout=30)

    assert len(refresh_grants(password_server)) == 1
    assert len(set(tokens)) == 1
    assert tokens[0] != old_access
    assert password_server.is_active(tokens[0])
    db.session.expire_all()
    assert db.session.get(Credential, credential.id).access_token == tokens[0]


def test_parallel_jobs_refresh_each_once(app, password_server):
    """Runs on SQLite too, where the job takes the database write lock."""
    credentials = connect_users(password_server, 3)
    old_refresh_tokens = sorted(credential.refresh_token for credential in credentials)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    processes = [context.Process(target=refresh_workers.run_job, args=(url, barrier, results)) for _ in range(2)]
    for process in processes:
        process.start()
    summaries = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    assert sorted(entry["token"] for entry in refresh_grants(password_server)) == old_refresh_tokens
    assert sum(refreshed for refreshed, _, _ in summaries) == 3
    assert sum(failed for _, _, failed in summaries) == 0
    db.session.expire_all()
    stored = db.session.scalars(select(Credential)).all()
    assert all(password_server.is_active(credential.access_token) for credential in stored)
