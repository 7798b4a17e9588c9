"""The web app in this process: its vendored assets, and the figures precomputed on start.

(`litestar run` on a fresh machine is in tests/system/test_app.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from app import create_app
from app.ingest.service import import_file

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


async def test_the_embedded_app_precomputes_the_figures_on_start(tmp_path: Path) -> None:
    from app.metrics.service import get_metrics_service
    from app.metrics.views import COUNTRY, KPIS, CountryParams, KpisParams
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
        assert report is not None and (report.views, report.sales_lines) == (34, 4)
        hits, computed = service.cache.stats.hits, service.computed
        await service.answer(KPIS, KpisParams())
        await service.answer(COUNTRY, CountryParams(country_name="germany"))
        assert (service.computed - computed, service.cache.stats.hits - hits) == (0, 2)
