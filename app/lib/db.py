"""Database engine (SQLite embedded or PostgreSQL) and schema migrations."""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import socket
import sqlite3
import warnings

import asyncpg
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine

from app.lib.settings import Settings

logger = logging.getLogger(__name__)

APP_NAME = "shop"  # the Piccolo app that owns every table and piccolo_migrations/
COMMAND_TIMEOUT_SECONDS = 4  # a request on a hung database gets its 503 within 5 s


def make_engine(settings: Settings) -> Engine:
    # Piccolo warns in colour when its start-up version check cannot reach the server; the
    # app reports an unreachable database itself, in one line (database_error_message).
    warnings.filterwarnings("ignore", message=r".*Unable to (connect to database|fetch server version)")
    if settings.is_postgres:
        return PostgresEngine(
            config={
                "dsn": settings.database_url,
                "timeout": 3,  # connect timeout: an unreachable server fails fast
                # no query of the app takes seconds: a hung server fails the request (503) instead of
                # hanging it; the importer gives its long statements (COPY, index build) their own
                "command_timeout": COMMAND_TIMEOUT_SECONDS,
                "server_settings": {"application_name": "shop-analytics"},
            }
        )
    path = settings.sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    # timeout: wait for a writer (an import) instead of failing with "database is locked"
    return SQLiteEngine(path=str(path), timeout=30)


def postgres_pool() -> asyncpg.Pool | None:
    """The running asyncpg pool of a PostgreSQL engine (web processes start one), else None.

    The hottest reads (the dataset tag, the token's user) use it directly: Piccolo's query
    building costs more than the query itself.
    """
    db = engine()
    return getattr(db, "pool", None) if isinstance(db, PostgresEngine) else None


def engine() -> Engine:
    """The engine piccolo_conf.py configured (one per process)."""
    from piccolo.engine.finder import engine_finder

    found = engine_finder()
    if found is None:  # pragma: no cover - piccolo_conf.py is part of the project
        raise RuntimeError("piccolo_conf.py not found: run from the project root")
    return found


async def pending_migrations() -> list[str]:
    """IDs of the migrations of every registered app (ours in piccolo_migrations/) not run yet."""
    # imported here: Piccolo's migration machinery costs a third of a second to import
    from piccolo.apps.migrations.commands.base import BaseMigrationManager
    from piccolo.apps.migrations.tables import Migration

    manager = BaseMigrationManager()
    known: dict[str, set[str]] = {}
    for app_config in manager.get_app_registry().app_configs.values():
        modules = manager.get_migration_modules(app_config.resolved_migrations_folder_path)
        known[app_config.app_name] = set(manager.get_migration_ids(modules))
    if not await Migration.table_exists().run():
        return sorted(i for ids in known.values() for i in ids)
    pending: list[str] = []
    for app_name, ids in known.items():
        ran = await Migration.get_migrations_which_ran(app_name=app_name)
        pending.extend(ids - set(ran))
    return sorted(pending)


async def apply_migrations() -> list[str]:
    """Run the pending migrations (embedded mode does this on start); returns their IDs."""
    pending = await pending_migrations()
    if pending:
        with contextlib.redirect_stdout(io.StringIO()) as output:
            from piccolo.apps.migrations.commands.forwards import run_forwards

            result = await run_forwards(app_name="all", migration_id="all")
        if not result.success:
            raise RuntimeError(f"migrations failed: {result.message}\n{output.getvalue()}")
        logger.info("applied %d migration(s): %s", len(pending), ", ".join(pending))
    return pending


async def prepare_schema(settings: Settings) -> None:
    """Embedded: apply migrations. Production: refuse to run on an out-of-date schema."""
    if not settings.is_postgres:
        await apply_migrations()
        if isinstance(engine(), SQLiteEngine):
            # WAL lets the dashboard read while an import writes.
            await engine().run_ddl("PRAGMA journal_mode=WAL")
        return
    pending = await pending_migrations()
    if pending:
        raise SchemaOutOfDate(
            f"the database schema is missing {len(pending)} migration(s): "
            "run `uv run piccolo migrations forwards all` first"
        )


class SchemaOutOfDate(Exception):
    pass


_UNREACHABLE = {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT}


def database_error_message(error: BaseException) -> str | None:
    """One line for a database that cannot be used (down, missing, locked); None if it is something else."""
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return f"the database does not exist ({error}); create it or fix DATABASE_URL"
    if isinstance(error, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError):
        return f"the database refused the login ({error}); check DATABASE_URL"
    if isinstance(error, asyncpg.UndefinedTableError):
        return f"the database schema is missing ({error}); run `uv run piccolo migrations forwards all`"
    if isinstance(error, ConnectionError | asyncpg.CannotConnectNowError | TimeoutError | socket.gaierror) or (
        isinstance(error, OSError) and error.errno in _UNREACHABLE
    ):
        return f"cannot reach the database ({error}); is PostgreSQL running and DATABASE_URL right?"
    if isinstance(error, asyncpg.InterfaceError) and any(word in str(error) for word in ("closed", "closing")):
        # a pooled connection the server ended (PostgreSQL stopping), or the pool shutting down
        return f"lost the connection to the database ({error}); is PostgreSQL running?"
    if isinstance(error, asyncpg.PostgresError):
        return f"the database refused the operation: {str(error).splitlines()[0]}"
    if type(error).__module__.startswith("adbc_driver_manager") and isinstance(error, Exception):
        # the shapes' reader (ADBC): the server is down, restarting or refused the read
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"cannot read from the database ({first}); is PostgreSQL running and DATABASE_URL right?"
    if isinstance(error, sqlite3.OperationalError):
        return f"the SQLite database cannot be used ({error})"
    return None
