"""System tests: the app as real processes (the CLI, `litestar run`, uvicorn, taskiq), the browser,
and faults injected into private PostgreSQL and Redis servers. Slow: minutes."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _database(schema: None) -> None:
    """Every test here runs on the migrated database under test (`schema`, tests/conftest.py)."""
