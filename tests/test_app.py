"""The web app: it starts on the embedded default (migrations applied) and serves its page."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from app import create_app
from app.ingest.service import import_file
from tests.conftest import ROOT, cli_env, free_port, stop_server

pytestmark = pytest.mark.usefixtures("empty_db")


async def test_static_assets_are_vendored(tmp_path: Path) -> None:
    app = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        css = await client.get("/static/app.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        htmx = await client.get("/static/htmx.min.js")
        assert htmx.status_code == 200 and 'version:"2.0.' in htmx.text
        chart = await client.get("/static/uplot.min.js")
        assert chart.status_code == 200 and "uPlot" in chart.text
        login = await client.get("/login", headers={"accept": "text/html"})
        assert "doi:10.24432/C5BW33" in login.text  # the data set is cited where figures are shown


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


async def test_the_embedded_app_precomputes_the_figures_on_start(tmp_path: Path) -> None:
    from app.metrics.service import get_metrics_service
    from app.metrics.views import (
        COUNTRY,
        KPIS,
        CountryParams,
        Scope,
    )
    from tests import small_data

    (tmp_path / "first.csv").write_text(small_data.FIRST)
    await import_file(tmp_path / "first.csv")
    app = create_app()
    async with app.lifespan():
        service = get_metrics_service()
        for _ in range(200):  # the refresh runs in the background, on taskiq's in-process broker
            if await service.last_refresh() is not None:
                break
            await asyncio.sleep(0.05)
        report = await service.last_refresh()
        assert report is not None and (report.views, report.sales_lines) == (13, 4)
        hits, computed = service.cache.stats.hits, service.computed
        await service.answer(KPIS, Scope())
        await service.answer(COUNTRY, CountryParams(country_name="germany"))
        assert (service.computed - computed, service.cache.stats.hits - hits) == (0, 2)
