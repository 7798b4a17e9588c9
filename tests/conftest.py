"""Test set-up: one engine per run, chosen before the app is imported.

- Default: the embedded SQLite engine, in a fresh temporary DATA_DIR.
- TEST_DATABASE_URL=postgresql://...: that PostgreSQL database (it is emptied: use a
  throwaway one; `.ci/run` creates a fresh one per run).

The tests are split by cost: tests/unit (no database, no process, no network),
tests/integration (the database under test, Redis, the app in this process) and
tests/system (subprocesses, the browser, fault injection). The database fixtures below
(`schema`, `empty_db`) are only used there: the conftest files of those two folders make
`schema` apply to each of their tests. Shared code is in tests/helpers.py.

Tests that need the real data set read it from ../shared/data; where it is absent
they skip with the reason, except under CI=1, where they fail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers import DATA_CSV_GZ, DATA_PARQUET, ENGINE, TEST_DATABASE_URL, RedisServer, clear_tables

_TMP = Path(tempfile.mkdtemp(prefix="shop-test-"))
if TEST_DATABASE_URL:
    os.environ["DATABASE_URL"] = TEST_DATABASE_URL
    os.environ.setdefault("SECRET_KEY", "test-secret-key-" + "x" * 32)
else:
    os.environ["DATABASE_URL"] = ""  # wins over a developer's .env (load_dotenv does not override)
os.environ["DATA_DIR"] = str(_TMP / "var")
os.environ.pop("REDIS_URL", None)
# Most tests sign up several users; the closed default (admins create accounts) has its own tests.
os.environ["REGISTRATION_OPEN"] = "true"


def pytest_report_header() -> str:
    return f"database engine under test: {ENGINE}"


@pytest.fixture(scope="session")
def engine_name() -> str:
    return ENGINE


@pytest.fixture(scope="session")
def tmp_root() -> Path:
    return _TMP


def pytest_sessionfinish() -> None:
    shutil.rmtree(_TMP, ignore_errors=True)  # the SQLite database and secret of this run


def _need(path: Path) -> Path:
    if not path.exists():
        message = f"{path} not found: the real data set lives in ../shared/data beside the project"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run these tests)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def data_csv_gz() -> Path:
    return _need(DATA_CSV_GZ)


@pytest.fixture(scope="session")
def data_parquet() -> Path:
    return _need(DATA_PARQUET)


@pytest.fixture(scope="session")
async def schema() -> None:
    """The database under test, migrated (tests/integration and tests/system use it for every test)."""
    from app.lib.db import apply_migrations, prepare_schema
    from app.lib.settings import get_settings

    if ENGINE == "postgres":
        await apply_migrations()
    await prepare_schema(get_settings())


@pytest.fixture
async def empty_db(schema: None) -> None:
    """Every test that imports starts from empty tables."""
    await clear_tables()


@pytest.fixture
def redis_server(tmp_path: Path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: the tests need a real Redis")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process is not None:
        server.resume()
    server.stop()
