"""Print how dashboard render time and SQL query count grow with the number of integrations.

Run with ``.venv/bin/python bench/dashboard.py``. It builds throwaway SQLite databases in
a temporary folder, signs in one user, and times ``GET /`` with 10 and with 200 personal
integrations (half of them connected). A ratio near 1 for queries and near 20 or below
for time means the page stays linear or better; the query ratio must be exactly 1.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from flask_migrate import upgrade
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app
from app.accounts import create_user
from app.extensions import db
from app.models import ROLE_USER, Credential, utcnow
from app.registry import IntegrationInput, ProviderInput, save_integration, save_provider

PASSWORD = "benchmark password"
REPEATS = 20


def build_app(folder: Path, integrations: int):
    app = create_app(
        {
            "ENV": "testing",
            "DATABASE_URL": f"sqlite:///{folder / f'bench-{integrations}.db'}",
            "SECRET_KEY": "benchmark-secret-key-" + "x" * 32,
            "ENCRYPTION_KEYS": "bench:" + "A" * 43,
            "WTF_CSRF_ENABLED": False,
        }
    )
    with app.app_context():
        upgrade()
        user = create_user("bench", PASSWORD, roles=(ROLE_USER,))
        provider = save_provider(
            ProviderInput(
                name="Bench",
                client_id="id",
                client_secret="secret",
                authorization_url="https://127.0.0.1/authorize",
                token_url="https://127.0.0.1/token",
            )
        )
        for number in range(integrations):
            integration = save_integration(IntegrationInput(name=f"Integration {number:03}", provider_id=provider.id))
            if number % 2 == 0:
                credential = Credential(user_id=user.id, integration_id=integration.id)
                credential.access_token = f"access-{number}"
                credential.refresh_token = f"refresh-{number}"
                credential.access_token_expires_at = utcnow() + timedelta(hours=1)
                db.session.add(credential)
        db.session.commit()
    return app


def measure(app) -> tuple[float, int]:
    client = app.test_client()
    client.post("/login", data={"username": "bench", "password": PASSWORD})
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def count(*args):
        statements.append(args[2])

    client.get("/")
    timings = []
    for _ in range(REPEATS):
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        started = time.perf_counter()
        response = client.get("/")
        timings.append(time.perf_counter() - started)
        event.remove(engine, "before_cursor_execute", count)
        assert response.status_code == 200, response.status_code
    return statistics.median(timings), len(statements)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        small_time, small_queries = measure(build_app(Path(folder), 10))
        large_time, large_queries = measure(build_app(Path(folder), 200))
    print(f"dashboard, 10 integrations:  {small_time * 1000:.1f} ms median, {small_queries} SQL queries")
    print(f"dashboard, 200 integrations: {large_time * 1000:.1f} ms median, {large_queries} SQL queries")
    print(f"time ratio 200/10: {large_time / small_time:.2f} (20 would be linear in the integration count)")
    print(f"query ratio 200/10: {large_queries / small_queries:.2f} (must be 1.00)")


if __name__ == "__main__":
    main()
