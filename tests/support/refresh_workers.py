"""Process entry points for the concurrency tests; each process builds its own app.

They live in an importable module because ``multiprocessing`` with the spawn start
method imports the target function by name in the new process.
"""

from __future__ import annotations

import threading


def refresh_concurrently(database_url: str, credential_id: int, threads: int, barrier, results) -> None:
    """Call ``ensure_fresh_token`` from ``threads`` threads, all released by ``barrier`` at once.

    Each thread loads the expired credential before the barrier, so every one of them
    decides that a refresh is due. ``results`` receives the access token each thread
    got, or ``error: <message>``.
    """
    from app import create_app
    from app.extensions import db
    from app.models import Credential
    from app.refresh import RefreshError, ensure_fresh_token
    from tests.conftest import base_config

    app = create_app(base_config(database_url, REFRESH_RETRY_DELAY=0, LOG_LEVEL="WARNING"))

    def call() -> None:
        with app.app_context():
            credential = db.session.get(Credential, credential_id)
            barrier.wait(timeout=60)
            try:
                results.put(ensure_fresh_token(credential).access_token)
            except RefreshError as error:
                results.put(f"error: {error.message}")
            finally:
                db.session.remove()

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def run_job(database_url: str, barrier, results) -> None:
    """Run one pass of the background job once ``barrier`` releases every process."""
    from app import create_app
    from app.token_jobs import run_once
    from tests.conftest import base_config

    app = create_app(base_config(database_url, REFRESH_RETRY_DELAY=0, LOG_LEVEL="WARNING"))
    with app.app_context():
        barrier.wait(timeout=60)
        summary = run_once()
        results.put((summary.refreshed, summary.skipped, summary.refresh_failed))
