"""The home page: what data is loaded (the dashboard arrives with the web issue)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.response import Template

from app.ingest.service import dataset_status


class HomeController(Controller):
    path = "/"

    @get(name="home", include_in_schema=False)
    async def home(self) -> Template:
        status = await dataset_status(limit=5)
        return Template(template_name="home.html", context={"status": status})
