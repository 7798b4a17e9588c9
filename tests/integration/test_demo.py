"""The demo data set: shipped in the package, loaded by an ordinary import from the CLI or from
the empty dashboard's button (admins), and its figures are those of the file (DuckDB's sums)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import duckdb
import pytest

from app.ingest.demo import DEMO_FILE
from app.ingest.tables import Import, Transaction
from tests.helpers import HTML, bearer, browser_login, follow_import, form_token, invoke_cli, login, register
from tests.reference import Reference

pytestmark = pytest.mark.usefixtures("empty_db")

DEMO_LINES = 191_404


def test_the_demo_file_is_small_and_cited():
    assert DEMO_FILE.stat().st_size < 2_000_000
    readme = (DEMO_FILE.parent / "README.md").read_text()
    assert "CC BY 4.0" in readme and "10.24432/C5BW33" in readme
    assert duckdb.sql(f"SELECT count(*) FROM '{DEMO_FILE}'").fetchall() == [(DEMO_LINES,)]


@pytest.fixture(scope="module")
def demo_reference(tmp_path_factory) -> Reference:
    """The independent figures of the demo file: its rows as the reference CSV, summed by DuckDB."""
    csv = tmp_path_factory.mktemp("demo") / "demo.csv"
    duckdb.sql(
        f"""COPY (SELECT InvoiceNo, StockCode, Description, Quantity,
                         strftime(InvoiceDate, '%m/%d/%Y %H:%M') AS InvoiceDate, UnitPrice, CustomerID, Country
                  FROM '{DEMO_FILE}') TO '{csv}' (HEADER)"""
    )
    return Reference(csv)


async def test_data_demo_loads_it_by_an_ordinary_import_and_refuses_a_second_time():
    done = await asyncio.to_thread(invoke_cli, "data", "demo")
    assert done.returncode == 0, done.stderr
    assert f"{DEMO_LINES:,}" in done.stdout
    assert await Transaction.count() == DEMO_LINES
    again = await asyncio.to_thread(invoke_cli, "data", "demo")
    assert again.returncode == 1 and "already" in again.stderr
    assert await Transaction.count() == DEMO_LINES  # nothing doubled
    replaced = await asyncio.to_thread(invoke_cli, "data", "demo", "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert await Transaction.count() == DEMO_LINES
    assert [row["status"] for row in await Import.select(Import.status).order_by(Import.id)] == ["replaced", "loaded"]


async def test_the_empty_dashboard_loads_the_demo_for_an_admin(client, demo_reference, tmp_path: Path):
    await register(client, "alice")
    await register(client, "bob", "bobs words!")
    member = await login(client, "bob", "bobs words!")
    await browser_login(client, "alice")
    empty = await client.get("/", headers=HTML)
    assert empty.status_code == 200 and "Load the demo data" in empty.text and 'action="/data/demo"' in empty.text
    refused = await client.post("/data/demo", data={}, headers=HTML)  # no form token
    assert refused.status_code == 403
    as_member = await client.post("/data/demo", headers=bearer(member))
    assert as_member.status_code == 403
    assert await Transaction.count() == 0
    csrf = await form_token(client, "/")
    started = await client.post("/data/demo", data={"_csrf": csrf}, headers=HTML)
    assert started.status_code == 303 and started.headers["location"].startswith("/data/jobs/")
    result = await follow_import(client, started)
    assert result.status_code == 200 and "Imported online_retail_demo.parquet" in result.text, result.text[-2000:]
    assert await Transaction.count() == DEMO_LINES
    figures = (await client.get("/metrics/kpis", headers=bearer(member))).json()
    expected = demo_reference.kpis()
    for name in ("revenue", "units_sold", "orders", "customers", "cancelled_orders", "cancelled_revenue"):
        assert figures[name] == expected[name], name
    assert figures["revenue"] > 0
    dashboard = await client.get("/", headers=HTML)
    assert "Load the demo data" not in dashboard.text


async def test_a_member_sees_who_to_ask_on_the_empty_dashboard(client):
    await register(client, "alice")
    await register(client, "bob", "bobs words!")
    await browser_login(client, "bob", "bobs words!")
    empty = await client.get("/", headers=HTML)
    assert "ask them to import" in empty.text and "/data/demo" not in empty.text
