"""The web app: it starts on the embedded default (migrations applied) and serves its page."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, cli_env, free_port, stop_server

pytestmark = pytest.mark.usefixtures("empty_db")


async def test_litestar_run_serves_a_fresh_embedded_instance(tmp_path: Path) -> None:
    """`uv run litestar run --port N` on a machine with no database yet: SQLite is created and migrated."""
    port = free_port()
    data_dir = tmp_path / "fresh-var"
    litestar = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "litestar"
    server = subprocess.Popen(
        [str(litestar), "run", "--port", str(port)],
        cwd=ROOT,
        env=cli_env(DATABASE_URL="", DATA_DIR=str(data_dir), SECRET_KEY=""),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while True:
                assert server.poll() is None, server.communicate()[0]
                try:
                    page = await client.get(f"http://127.0.0.1:{port}/", headers={"accept": "text/html"})
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server did not answer within 60 s"
                    await asyncio.sleep(0.2)
            assert page.status_code == 303 and page.headers["location"] == "/login?next=%2F"
            base = f"http://127.0.0.1:{port}"
            account = {"username": "newcomer", "password": "first account"}
            assert (await client.post(f"{base}/auth/register", json=account)).status_code == 201
            token = (await client.post(f"{base}/auth/login", json=account)).json()["access_token"]
            page = await client.get(f"{base}/", headers={"accept": "text/html", "authorization": f"Bearer {token}"})
        assert page.status_code == 200 and "No transactions are loaded yet" in page.text
        assert (data_dir / "shop.sqlite3").exists()
        assert (data_dir / "secret_key").exists()
    finally:
        stop_server(server)
