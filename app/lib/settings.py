"""Settings: read once from the environment (and `.env` in the working folder), validated at start-up.

Two run modes:
- embedded (no DATABASE_URL, or a sqlite:/// one): a SQLite file under DATA_DIR,
  in-process cache and broker, a random SECRET_KEY created once and kept in DATA_DIR;
- production (DATABASE_URL=postgresql://...): a real SECRET_KEY is required.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from dotenv import find_dotenv, load_dotenv

PLACEHOLDER_SECRET = "change-me"  # noqa: S105 - the value .env.example ships with; refused in production
MIN_SECRET_LENGTH = 32


class SettingsError(Exception):
    """A setting is missing or invalid; the message says which and how to fix it."""


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean: use true or false")


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    secret_key: str
    jwt_algorithm: str
    jwt_expiry_minutes: int
    cookie_secure: bool
    redis_url: str
    currency: str
    port: int
    log_level: str
    cache_ttl_seconds: int = 86400
    refresh_cron: str = "*/10 * * * *"
    refresh_interval_seconds: int = 0  # when set, replaces refresh_cron
    registration_open: bool = False  # after the first account (the admin), admins create accounts
    max_upload_mb: int = 200
    max_import_rows: int = 50_000_000  # lines per import (CLI and upload): a cap against bombs
    log_format: str = "text"  # or "json": one JSON object per line
    access_log: bool = True  # one line per request
    template_reload: bool = False  # re-read edited templates (development)
    task_redeliver_seconds: int = 60  # a task unacknowledged this long (its worker died) is run again

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file of the embedded mode."""
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return self.data_dir / "shop.sqlite3"


def _embedded_secret(data_dir: Path) -> str:
    """A random key made on first start and kept, so sessions survive restarts."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key)
    return key


def load_settings() -> Settings:
    """Build the settings from the environment; raises SettingsError with one clear line."""
    load_dotenv(find_dotenv(usecwd=True), override=False)  # the .env of the folder you run from
    database_url = os.environ.get("DATABASE_URL", "").strip()
    if database_url and not database_url.startswith(("postgresql://", "postgres://", "sqlite:///")):
        raise SettingsError(
            "DATABASE_URL must start with postgresql:// or sqlite:/// (leave it unset for the embedded SQLite file)"
        )
    data_dir = Path(os.environ.get("DATA_DIR", "").strip() or "var")
    production = database_url.startswith(("postgresql://", "postgres://"))
    secret_key = os.environ.get("SECRET_KEY", "").strip()
    if production:
        if not secret_key or secret_key == PLACEHOLDER_SECRET:
            raise SettingsError(
                "SECRET_KEY is not set: production (a PostgreSQL DATABASE_URL) needs a random key, "
                'e.g. SECRET_KEY=$(python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        if len(secret_key) < MIN_SECRET_LENGTH:
            raise SettingsError(f"SECRET_KEY is too short: use at least {MIN_SECRET_LENGTH} random characters")
    elif not secret_key or secret_key == PLACEHOLDER_SECRET:
        secret_key = _embedded_secret(data_dir)

    algorithm = os.environ.get("JWT_ALGORITHM", "").strip() or "HS256"
    if algorithm not in {"HS256", "HS384", "HS512"}:
        raise SettingsError(f"JWT_ALGORITHM={algorithm!r} is not supported: use HS256, HS384 or HS512")
    currency = (os.environ.get("CURRENCY", "").strip() or "GBP").upper()
    if len(currency) != 3 or not currency.isalpha():
        raise SettingsError(f"CURRENCY={currency!r} must be a 3-letter ISO 4217 code such as GBP or EUR")

    log_level = (os.environ.get("LOG_LEVEL", "").strip() or "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise SettingsError(f"LOG_LEVEL={log_level!r} is not a level: use DEBUG, INFO, WARNING or ERROR")

    log_format = (os.environ.get("LOG_FORMAT", "").strip() or "text").lower()
    if log_format not in {"text", "json"}:
        raise SettingsError(f"LOG_FORMAT={log_format!r} is not a log format: use text or json")

    refresh_cron = " ".join((os.environ.get("REFRESH_CRON", "").strip() or "*/10 * * * *").split())
    if len(refresh_cron.split()) != 5:
        raise SettingsError(
            f"REFRESH_CRON={refresh_cron!r} is not a cron expression: give 5 fields, e.g. '*/10 * * * *'"
        )

    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        secret_key=secret_key,
        jwt_algorithm=algorithm,
        jwt_expiry_minutes=_int("JWT_EXPIRY_MINUTES", 60),
        cookie_secure=_bool("COOKIE_SECURE", False),
        redis_url=os.environ.get("REDIS_URL", "").strip(),
        currency=currency,
        port=_int("PORT", 8000),
        log_level=log_level,
        cache_ttl_seconds=_int("CACHE_TTL_SECONDS", 86400),
        refresh_cron=refresh_cron,
        refresh_interval_seconds=_int("REFRESH_INTERVAL_SECONDS", 0, minimum=0),
        registration_open=_bool("REGISTRATION_OPEN", False),
        template_reload=_bool("TEMPLATE_RELOAD", False),
        max_upload_mb=_int("MAX_UPLOAD_MB", 200),
        max_import_rows=_int("MAX_IMPORT_ROWS", 50_000_000),
        log_format=log_format,
        access_log=_bool("ACCESS_LOG", True),
        task_redeliver_seconds=_int("TASK_REDELIVER_SECONDS", 60),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
