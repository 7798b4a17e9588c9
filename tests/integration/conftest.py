"""Integration tests: the app (through httpx.ASGITransport), the services and the importer in this
process, on the database under test; Redis where a test starts a private redis-server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests import small_data


@pytest.fixture(scope="session", autouse=True)
def _database(schema: None) -> None:
    """Every test here runs on the migrated database under test (`schema`, tests/conftest.py)."""


@pytest.fixture
async def client():
    """The web app in this process, with no accounts and a fresh login rate limiter."""
    from app import create_app
    from app.auth.deps import get_accounts
    from app.auth.tables import RevokedToken, User

    await User.delete(force=True).run()
    await RevokedToken.delete(force=True).run()
    get_accounts.cache_clear()  # a fresh login rate limiter per test
    app = create_app()
    # no lifespan here: pytest-asyncio tears fixtures down in another task than anyio's
    # scope was entered in; the schema is ready (conftest) and the app needs nothing else.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        yield http


@pytest.fixture
async def small(tmp_path: Path) -> None:
    """The small export of tests/small_data.py, imported."""
    from app.ingest.service import import_file

    (tmp_path / "first.csv").write_text(small_data.FIRST)
    await import_file(tmp_path / "first.csv")
