import pytest

from app import create_app
from app.config import ConfigError


def production(monkeypatch, tmp_path, **values):
    for name in ("PERSONAL_AUTH_SECRET_KEY", "PERSONAL_AUTH_ENCRYPTION_KEYS", "PERSONAL_AUTH_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PERSONAL_AUTH_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")
    for name, value in values.items():
        monkeypatch.setenv(f"PERSONAL_AUTH_{name}", value)
    return create_app()


def test_production_requires_secret_key(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="PERSONAL_AUTH_SECRET_KEY"):
        production(monkeypatch, tmp_path, ENCRYPTION_KEYS="k1:" + "A" * 43)


def test_production_requires_encryption_keys(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="PERSONAL_AUTH_ENCRYPTION_KEYS"):
        production(monkeypatch, tmp_path, SECRET_KEY="s" * 40)


def test_production_rejects_short_secret(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="too short"):
        production(monkeypatch, tmp_path, SECRET_KEY="short", ENCRYPTION_KEYS="k1:" + "A" * 43)


def test_production_rejects_invalid_keys(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="ENCRYPTION_KEYS is invalid"):
        production(monkeypatch, tmp_path, SECRET_KEY="s" * 40, ENCRYPTION_KEYS="k1:short")


def test_production_starts_with_settings(monkeypatch, tmp_path):
    app = production(
        monkeypatch,
        tmp_path,
        SECRET_KEY="s" * 40,
        ENCRYPTION_KEYS="k1:" + "A" * 43,
        BASE_URL="https://auth.example.com/",
    )
    assert app.config["BASE_URL"] == "https://auth.example.com"
    assert app.config["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize("base_url", ["auth.example.com", "ftp://auth.example.com", "https://auth.example.com/sub"])
def test_invalid_base_url(monkeypatch, tmp_path, base_url):
    with pytest.raises(ConfigError, match="BASE_URL"):
        production(monkeypatch, tmp_path, SECRET_KEY="s" * 40, ENCRYPTION_KEYS="k1:" + "A" * 43, BASE_URL=base_url)


def test_development_generates_and_keeps_secrets(monkeypatch, tmp_path):
    monkeypatch.setenv("PERSONAL_AUTH_INSTANCE_PATH", str(tmp_path / "instance"))
    first = production(monkeypatch, tmp_path, ENV="development")
    second = production(monkeypatch, tmp_path, ENV="development")
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert first.config["ENCRYPTION_KEYS"] == second.config["ENCRYPTION_KEYS"]
    assert (tmp_path / "instance" / "dev-secrets.json").stat().st_mode & 0o777 == 0o600


def test_non_numeric_timeout(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="HTTP_READ_TIMEOUT"):
        production(monkeypatch, tmp_path, ENV="development", HTTP_READ_TIMEOUT="soon")
