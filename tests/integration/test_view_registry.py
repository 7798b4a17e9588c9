"""The view registry end to end: a view added by one declaration, and rendered HTML shared safely.

The toy view below is everything a new view needs (besides its tests): a parameter struct,
a result schema, one pure function, one declaration and two templates. It is not part of
the product: the test serves it with `build_app(views=..., template_dirs=...)`.
"""

from __future__ import annotations

import calendar
from pathlib import Path
from typing import Annotated

import httpx
import msgspec
import polars as pl
import pytest
from msgspec import Meta

from app.lib.web.pages import RENDERED
from app.metrics.analytics import Dataset, money
from app.metrics.views import VIEWS, Scope, Table, View
from app.server.core import build_app
from tests.helpers import HTML, HTMX, bearer, browser_login, login, register

pytestmark = pytest.mark.usefixtures("empty_db")


# -- the toy view: revenue by weekday --------------------------------------------------------


class WeekdayParams(Scope, frozen=True, kw_only=True):
    top: Annotated[int, Meta(ge=1, le=7, description="How many weekdays, best first")] = 7


class WeekdayRow(msgspec.Struct):
    weekday: str
    revenue: float


class Weekdays(msgspec.Struct):
    currency: str
    days: list[WeekdayRow]


def weekdays(ds: Dataset, params: WeekdayParams, currency: str) -> Weekdays:
    sales = ds.sales if params.country is None else ds.sales.filter(pl.col("country") == ds.country(params.country))
    ranked = sales.group_by(pl.col("day").dt.weekday().alias("weekday")).agg(pl.col("revenue_milli").sum())
    rows = ranked.sort(["revenue_milli", "weekday"], descending=[True, False]).head(params.top).rows()
    return Weekdays(currency, [WeekdayRow(calendar.day_name[day - 1], money(milli)) for day, milli in rows])


WEEKDAYS = View(
    name="weekdays",
    path="/weekdays",
    summary="Revenue by weekday",
    params=WeekdayParams,
    result=Weekdays,
    compute=weekdays,
    template="weekdays",
    context_name="weekdays",
    tables=(Table("weekdays", WeekdayRow, lambda r: r.days, ("weekday", "revenue")),),
)

PAGE = """{% extends "base.html" %}{% block title %}Weekdays{% endblock %}
{% block main %}<h1>Revenue by weekday</h1>{% include "partials/weekdays.html" %}{% endblock %}
"""
PARTIAL = """<ul id="weekdays">{% for d in weekdays.days %}
<li>{{ d.weekday }}: {{ d.revenue|money(weekdays.currency) }}</li>{% endfor %}</ul>
"""

# ----------------------------------------------------------------------------------------------


@pytest.fixture
async def toy_client(tmp_path: Path, client_reset):
    (tmp_path / "templates" / "metrics").mkdir(parents=True)
    (tmp_path / "templates" / "partials").mkdir()
    (tmp_path / "templates" / "metrics" / "weekdays.html").write_text(PAGE)
    (tmp_path / "templates" / "partials" / "weekdays.html").write_text(PARTIAL)
    app = build_app(views=(*VIEWS, WEEKDAYS), template_dirs=[tmp_path / "templates"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        yield http, app


@pytest.fixture
async def client_reset():
    from app.auth.deps import get_accounts
    from app.auth.tables import User

    await User.delete(force=True).run()
    get_accounts.cache_clear()


async def test_a_view_declared_once_answers_json_page_partial_and_openapi(toy_client, small):
    client, app = toy_client
    assert (await client.get("/metrics/weekdays")).status_code == 401  # signed out: refused before validation
    assert (await client.get("/metrics/weekdays?top=99")).status_code == 401
    await register(client)
    auth = bearer(await login(client))
    # by hand from small_data.FIRST: Monday 3 Jan 2.50 + 15.00 and Monday 10 Jan 5.00; Tuesday 1 Mar 3.333
    as_json = await client.get("/metrics/weekdays", headers=auth)
    assert as_json.status_code == 200
    assert as_json.json() == {
        "currency": "GBP",
        "days": [{"weekday": "Monday", "revenue": 22.5}, {"weekday": "Tuesday", "revenue": 3.33}],
    }
    top = await client.get("/metrics/weekdays?top=1&country=GERMANY", headers=auth)
    assert top.json()["days"] == [{"weekday": "Monday", "revenue": 17.5}]
    page = await client.get("/metrics/weekdays", headers={**auth, **HTML})
    assert page.text.startswith("<!doctype html>") and "Revenue by weekday" in page.text and "£22.50" in page.text
    partial = await client.get("/metrics/weekdays", headers={**auth, **HTMX})
    assert "<html" not in partial.text and 'id="weekdays"' in partial.text
    bad = await client.get("/metrics/weekdays?top=8", headers=auth)
    assert bad.status_code == 400 and "top" in bad.json()["detail"]
    unknown = await client.get("/metrics/weekdays?country=Atlantis", headers=auth)
    assert unknown.status_code == 404 and "Atlantis" in unknown.json()["detail"]
    operation = app.openapi_schema.to_schema()["paths"]["/metrics/weekdays"]["get"]
    top_parameter = next(p for p in operation["parameters"] if p["name"] == "top")
    assert top_parameter["schema"]["maximum"] == 7 and top_parameter["schema"]["default"] == 7
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("Weekdays")
    assert operation["security"] == [{"BearerToken": []}]


async def test_openapi_lists_the_allowed_values_and_bounds(toy_client):
    _, app = toy_client
    paths = app.openapi_schema.to_schema()["paths"]

    def schema(path: str, name: str) -> dict:
        return next(p["schema"] for p in paths[path]["get"]["parameters"] if p["name"] == name)

    assert schema("/metrics/series", "freq")["enum"] == ["day", "week", "month", "year"]
    assert schema("/metrics/top-countries", "by")["enum"] == ["revenue", "units_sold", "orders", "customers"]
    assert schema("/metrics/top-countries", "order")["enum"] == ["desc", "asc"]
    assert (
        schema("/metrics/top-countries", "limit")["minimum"],
        schema("/metrics/top-countries", "limit")["maximum"],
    ) == (1, 100)
    assert (schema("/metrics/page", "size")["minimum"], schema("/metrics/page", "size")["maximum"]) == (1, 500)
    assert schema("/metrics/page", "page")["minimum"] == 1
    assert {"type": "string", "format": "date"} in schema("/metrics/kpis", "start")["oneOf"]  # or empty
    assert schema("/metrics/page", "q")["oneOf"][0]["maxLength"] == 100


async def test_rendered_html_is_shared_by_users_and_the_nav_is_each_ones(toy_client, small):
    client, app = toy_client
    await register(client, "alice")
    await register(client, "bob", "another horse")
    pages = {}
    RENDERED.clear()
    for name, password in [("alice", "correct horse"), ("bob", "another horse")]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as browser:
            await browser_login(browser, name, password)
            pages[name] = (await browser.get("/metrics/kpis?country=germany", headers=HTML)).text
            dashboard = (await browser.get("/?country=germany", headers=HTML)).text
            assert f'title="Your account">{name}<' in dashboard
    # one rendered block for both: the second user was served the first one's main block
    entries = [key for key in RENDERED._items if key[0] == "metrics/kpis.html"]
    assert len(entries) == 1
    main = {
        name: text.split('<main id="main" tabindex="-1">', 1)[1].split("</main>", 1)[0] for name, text in pages.items()
    }
    assert main["alice"] == main["bob"] and "£17.50" in main["alice"]
    assert 'title="Your account">alice<' in pages["alice"] and "bob" not in pages["alice"]
    assert 'title="Your account">bob<' in pages["bob"] and "alice" not in pages["bob"]
    assert "alice" not in main["alice"] and "bob" not in main["bob"]


async def test_a_shared_block_refuses_a_context_with_the_user():
    from litestar import Litestar, Request

    from app.lib.web.pages import rendered

    scope = {"type": "http", "headers": [(b"accept", b"text/html")], "app": Litestar(), "query_string": b""}

    async def context() -> dict:
        return {"user": {"username": "alice"}}

    with pytest.raises(RuntimeError, match="per-user data"):
        await rendered(Request(scope), ("test", 1), "metrics/kpis.html", "partials/kpis.html", context)  # type: ignore[arg-type]
