"""Settings: production refuses a missing secret; the embedded mode makes and keeps one.

(The CLI's refusal to start without a secret is in tests/system/test_cli.py.)"""

from __future__ import annotations

import stat

import pytest

from app.lib.settings import PLACEHOLDER_SECRET, SettingsError, load_settings

PG_URL = "postgresql://postgres@127.0.0.1:5432/nowhere"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path):
    for name in ("DATABASE_URL", "SECRET_KEY", "JWT_ALGORITHM", "JWT_EXPIRY_MINUTES", "COOKIE_SECURE", "CURRENCY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "var"))
    return monkeypatch


def test_embedded_mode_creates_and_keeps_a_private_secret(clean_env, tmp_path) -> None:
    first = load_settings()
    second = load_settings()
    key_file = tmp_path / "var" / "secret_key"
    assert first.secret_key == second.secret_key == key_file.read_text().strip()
    assert len(first.secret_key) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not first.is_postgres
    assert first.sqlite_path == tmp_path / "var" / "shop.sqlite3"


def test_defaults(clean_env) -> None:
    settings = load_settings()
    assert settings.jwt_algorithm == "HS256"
    assert settings.jwt_expiry_minutes == 60
    assert settings.cookie_secure is False
    assert settings.currency == "GBP"
    assert settings.port == 8000


@pytest.mark.parametrize("secret", [None, "", PLACEHOLDER_SECRET])
def test_production_refuses_a_missing_or_default_secret(clean_env, secret) -> None:
    clean_env.setenv("DATABASE_URL", PG_URL)
    if secret is not None:
        clean_env.setenv("SECRET_KEY", secret)
    with pytest.raises(SettingsError, match="SECRET_KEY is not set"):
        load_settings()


def test_production_refuses_a_short_secret(clean_env) -> None:
    clean_env.setenv("DATABASE_URL", PG_URL)
    clean_env.setenv("SECRET_KEY", "short")
    with pytest.raises(SettingsError, match="too short"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("COOKIE_SECURE", "maybe", "not a boolean"),
        ("JWT_EXPIRY_MINUTES", "soon", "not a whole number"),
        ("JWT_ALGORITHM", "none", "not supported"),
        ("CURRENCY", "pounds", "3-letter"),
        ("DATABASE_URL", "mysql://x", "must start with"),
        ("LOG_LEVEL", "verbose", "not a level"),
    ],
)
def test_invalid_values_say_what_to_fix(clean_env, name, value, message) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(SettingsError, match=message):
        load_settings()


def test_dotenv_in_the_working_folder_is_read_and_the_environment_wins(clean_env, tmp_path) -> None:
    (tmp_path / ".env").write_text("CURRENCY=eur\nJWT_EXPIRY_MINUTES=15\nPORT=9000\n")
    clean_env.setenv("PORT", "9100")
    clean_env.setenv("CURRENCY", "")  # so that monkeypatch restores what load_dotenv writes
    clean_env.delenv("CURRENCY")
    clean_env.setenv("JWT_EXPIRY_MINUTES", "")
    clean_env.delenv("JWT_EXPIRY_MINUTES")
    settings = load_settings()
    assert (settings.currency, settings.jwt_expiry_minutes, settings.port) == ("EUR", 15, 9100)


def test_a_database_lost_mid_query_or_by_the_shapes_reader_is_a_clear_line_not_a_500():
    import asyncpg
    from adbc_driver_manager import AdbcStatusCode, OperationalError

    from app.lib.db import database_error_message

    lost = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    assert "connection was closed" in (database_error_message(lost) or "")
    adbc = OperationalError(
        "IO: [libpq] could not connect to server: Connection refused", status_code=AdbcStatusCode.IO
    )
    assert "cannot read from the database" in (database_error_message(adbc) or "")
    closed = asyncpg.exceptions.InterfaceError("connection is closed")  # a pooled one the server ended
    assert "lost the connection" in (database_error_message(closed) or "")
    misuse = asyncpg.exceptions.InterfaceError("the server expects 2 arguments for this query, 1 was passed")
    assert database_error_message(misuse) is None  # a bug, not an outage
    assert database_error_message(ValueError("a bug")) is None  # anything else stays a 500, with its traceback
