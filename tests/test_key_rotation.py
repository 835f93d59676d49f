"""``flask keys rotate`` and ``flask keys status``: moving every ciphertext to the newest key."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from app import create_app
from app.crypto import DecryptionError, Keyring
from app.extensions import db
from app.key_rotation import RotationError, key_status, rotate_keys
from app.models import AuthorizationRequest, Credential, LoginSession, Provider, hash_token, utcnow
from tests.conftest import ENCRYPTION_KEYS, base_config

KEY_A = ENCRYPTION_KEYS
KEY_B = "test2:" + "B" * 43
USERS = 5


@pytest.fixture
def stored(make_user, make_provider, make_integration) -> dict:
    """Secrets of every kind encrypted with key A; returns the plaintexts by row."""
    provider = make_provider("Example", client_secret="client-secret-1")
    integration = make_integration("GitHub", provider)
    tokens = {}
    for number in range(USERS):
        user = make_user(f"user{number}")
        credential = Credential(user_id=user.id, integration_id=integration.id, connected_at=utcnow())
        db.session.add(credential)
        db.session.flush()
        credential.access_token = f"access-{number}"
        credential.refresh_token = f"refresh-{number}"
        tokens[credential.id] = (f"access-{number}", f"refresh-{number}")

    login_session = LoginSession(
        token_hash=hash_token("session"), user_id=user.id, expires_at=utcnow() + timedelta(hours=1)
    )
    db.session.add(login_session)
    db.session.flush()
    request = AuthorizationRequest(
        state_hash=hash_token("state"),
        login_session_id=login_session.id,
        user_id=user.id,
        integration_id=integration.id,
        expires_at=utcnow() + timedelta(minutes=10),
    )
    request.set_code_verifier("verifier-1")
    db.session.add(request)
    db.session.commit()
    return {"tokens": tokens, "provider_id": provider.id, "request_id": request.id}


def app_with_keys(app, keys: str):
    return create_app(base_config(app.config["SQLALCHEMY_DATABASE_URI"], ENCRYPTION_KEYS=keys))


def read_all(stored: dict) -> dict:
    """Decrypt every stored secret with the current app's keys."""
    tokens = {
        credential.id: (credential.access_token, credential.refresh_token)
        for credential in db.session.scalars(select(Credential))
    }
    return {
        "tokens": tokens,
        "client_secret": db.session.get(Provider, stored["provider_id"]).client_secret,
        "code_verifier": db.session.get(AuthorizationRequest, stored["request_id"]).code_verifier,
    }


def expected(stored: dict) -> dict:
    return {"tokens": stored["tokens"], "client_secret": "client-secret-1", "code_verifier": "verifier-1"}


def key_ids() -> set[str]:
    return {key_id for _, key_id, _ in key_status()}


def run_in(app, callback):
    with app.app_context():
        try:
            return callback()
        finally:
            db.session.remove()
            db.engine.dispose()


def test_rotation_lets_old_key_go(app, stored):
    run_in(app_with_keys(app, f"{KEY_B},{KEY_A}"), lambda: rotate_keys(batch_size=2))
    assert run_in(app_with_keys(app, KEY_B), lambda: read_all(stored)) == expected(stored)


def test_rotation_reports_counts(app, stored):
    counts = run_in(app_with_keys(app, f"{KEY_B},{KEY_A}"), lambda: rotate_keys(batch_size=2))
    assert counts == {
        "credential access token": USERS,
        "credential refresh token": USERS,
        "provider client secret": 1,
        "PKCE code verifier": 1,
    }


def test_old_key_removed_before_rotation_fails(app, stored):
    with pytest.raises(DecryptionError):
        run_in(app_with_keys(app, KEY_B), lambda: read_all(stored))


def test_status_counts_per_key(app, runner, stored):
    result = runner.invoke(args=["keys", "status"])
    assert result.exit_code == 0, result.output
    assert "credential access token   test1   5" in result.output
    assert key_ids() == {"test1"}


def test_rotate_command_moves_everything(app, stored):
    rotating = app_with_keys(app, f"{KEY_B},{KEY_A}")
    result = run_in(rotating, lambda: rotating.test_cli_runner().invoke(args=["keys", "rotate", "--batch-size", "3"]))
    assert result.exit_code == 0, result.output
    assert "Every ciphertext now uses key 'test2'." in result.output
    assert run_in(rotating, key_ids) == {"test2"}


def test_rerun_changes_nothing(app, stored):
    rotating = app_with_keys(app, f"{KEY_B},{KEY_A}")
    run_in(rotating, lambda: rotate_keys(batch_size=2))
    assert set(run_in(rotating, lambda: rotate_keys(batch_size=2)).values()) == {0}


def test_crash_mid_rotation_is_resumable(app, stored, monkeypatch):
    rotating = app_with_keys(app, f"{KEY_B},{KEY_A}")
    original_encrypt = Keyring.encrypt
    calls = []

    def encrypt_then_crash(self, plaintext, context):
        calls.append(context)
        if len(calls) == 3:
            raise RuntimeError("injected crash in the second batch")
        return original_encrypt(self, plaintext, context)

    monkeypatch.setattr(Keyring, "encrypt", encrypt_then_crash)
    with pytest.raises(RuntimeError, match="injected crash"):
        run_in(rotating, lambda: rotate_keys(batch_size=2))
    monkeypatch.setattr(Keyring, "encrypt", original_encrypt)

    status = run_in(rotating, key_status)
    assert ("credential access token", "test2", 2) in status
    assert ("credential access token", "test1", USERS - 2) in status
    assert run_in(rotating, lambda: read_all(stored)) == expected(stored)

    run_in(rotating, lambda: rotate_keys(batch_size=2))
    assert run_in(app_with_keys(app, KEY_B), lambda: read_all(stored)) == expected(stored)


def test_unknown_key_stops_rotation(app, stored):
    credential = db.session.scalar(select(Credential))
    credential.access_token_ciphertext = "pa1.gone." + "x" * 40
    db.session.commit()

    with pytest.raises(RotationError, match="Add the key that made it"):
        run_in(app_with_keys(app, f"{KEY_B},{KEY_A}"), lambda: rotate_keys(batch_size=10))


def test_copied_ciphertext_fails_in_other_row(app, stored):
    first, second = db.session.scalars(select(Credential).order_by(Credential.id).limit(2))
    second.access_token_ciphertext = first.access_token_ciphertext
    db.session.commit()

    with pytest.raises(DecryptionError, match="failed authentication"):
        _ = second.access_token


def test_copied_ciphertext_fails_in_other_field(app, stored):
    credential = db.session.scalar(select(Credential))
    credential.refresh_token_ciphertext = credential.access_token_ciphertext
    db.session.commit()

    with pytest.raises(DecryptionError, match="failed authentication"):
        _ = credential.refresh_token
