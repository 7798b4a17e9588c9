"""The product views through the app (issue 16): JSON, page, htmx partial and CSV of each; the
unknown product's 404, a fee code's page, the login on every route, every stock code linking to
its product's page.

The figures themselves are checked on the real data against DuckDB in test_metrics_real_data.py.
Small data: tests/small_data.py FIRST (A1 twice, once as a1; POST; a cancelled A1; B2) and the
baskets below.
"""

from __future__ import annotations

import pytest

from app.ingest.service import import_file
from tests import small_data
from tests.helpers import HTML, bearer, browser_login, csv_cell, csv_rows, login, register

pytestmark = pytest.mark.usefixtures("empty_db")

BASKETS = small_data.HEADER + (
    "100010,A1,RED MUG,1,2/7/2011 10:00,1.25,1,Germany\n"
    "100010,B2,BLUE BOWL,1,2/7/2011 10:00,3.5,1,Germany\n"
    "100011,a1,RED MUG,2,2/8/2011 11:00,1.25,4,Germany\n"
    "100011,B2,BLUE BOWL,1,2/8/2011 11:00,3.5,4,Germany\n"
    "100011,C3,GREEN CUP,1,2/8/2011 11:00,2,4,Germany\n"
    "100011,C3,GREEN CUP,1,2/8/2011 11:00,2,4,Germany\n"  # twice in one basket: counted once
    "100012,C3,GREEN CUP,5,2/9/2011 12:00,2,,Germany\n"  # alone in its basket: no pair
)
HTMX = {**HTML, "hx-request": "true"}


@pytest.fixture
async def token(client, small, tmp_path) -> str:
    (tmp_path / "baskets.csv").write_text(BASKETS)
    await import_file(tmp_path / "baskets.csv")
    await register(client)
    return await login(client)


async def test_the_small_figures(client, token):
    listing = (await client.get("/metrics/products?limit=100", headers=bearer(token))).json()
    assert [(p["stock_code"], p["units_sold"], p["orders"], p["returned_units"]) for p in listing["items"]] == [
        ("C3", 7, 2, 0),  # 2 + 2 + 10 (100011 holds it twice: one order)
        ("A1", 9, 4, 1),  # 2.50 + 5.00 (a1) + 1.25 + 2.50; one returned
        ("B2", 3, 3, 0),  # 3.333 + 3.5 + 3.5
    ]
    assert listing["products"] == 3 and "POST" not in {p["stock_code"] for p in listing["items"]}
    pairs = (await client.get("/metrics/product-pairs", headers=bearer(token))).json()
    assert pairs["baskets"] == 6  # 100001, 100002, 100004, 100010, 100011, 100012
    assert [(p["stock_code_a"], p["stock_code_b"], p["orders"]) for p in pairs["items"]] == [
        ("A1", "B2", 2),
        ("A1", "C3", 1),
        ("B2", "C3", 1),
    ]
    a1_b2 = pairs["items"][0]
    assert (a1_b2["orders_with_a"], a1_b2["orders_with_b"], a1_b2["lift"]) == (4, 3, 1.0)  # 2 x 6 / (4 x 3)
    mug = (await client.get("/metrics/products/a1", headers=bearer(token))).json()
    assert (mug["stock_code"], mug["orders"], mug["customers"], mug["returned_units"]) == ("A1", 4, 2, 1)
    assert [(p["stock_code_b"], p["orders"]) for p in mug["bought_with"]] == [("B2", 2), ("C3", 1)]
    post = (await client.get("/metrics/products/POST", headers=bearer(token))).json()
    assert (post["is_product"], post["revenue"], post["bought_with"]) == (False, 15.0, [])


# one invoice whose lines are two rows of the invoice grain (two timestamps, two customers)
SPLIT = small_data.HEADER + (
    "100020,A1,RED MUG,1,2/7/2011 10:00,1.25,5,Germany\n"
    "100020,A1,RED MUG,1,2/7/2011 10:01,1.25,5,Germany\n"
    "100020,B2,BLUE BOWL,1,2/7/2011 10:01,3.5,6,Germany\n"
)


async def test_an_invoice_over_two_grain_rows_is_one_basket(client, tmp_path):
    (tmp_path / "split.csv").write_text(SPLIT)
    await import_file(tmp_path / "split.csv")
    await register(client)
    token = await login(client)
    listing = (await client.get("/metrics/products", headers=bearer(token))).json()
    assert [(p["stock_code"], p["units_sold"], p["orders"], p["customers"]) for p in listing["items"]] == [
        ("B2", 1, 1, 1),
        ("A1", 2, 1, 1),  # one order, though in two rows
    ]
    pairs = (await client.get("/metrics/product-pairs", headers=bearer(token))).json()
    assert pairs["baskets"] == 1
    assert [(p["stock_code_a"], p["stock_code_b"], p["orders"]) for p in pairs["items"]] == [("A1", "B2", 1)]
    mug = (await client.get("/metrics/products/A1", headers=bearer(token))).json()
    assert (mug["orders"], mug["customers"], [p["stock_code_b"] for p in mug["bought_with"]]) == (1, 1, ["B2"])


@pytest.mark.parametrize(
    ("path", "rows"),
    [
        ("/metrics/products", lambda j: j["items"]),
        ("/metrics/products?by=return_rate_pct&order=asc", lambda j: j["items"]),
        ("/metrics/product-pairs", lambda j: j["items"]),
        ("/metrics/products/A1?table=product_months", lambda j: j["series"]),
        ("/metrics/products/A1?table=product_countries", lambda j: j["countries"]),
        ("/metrics/products/A1?table=bought_with", lambda j: j["bought_with"]),
    ],
)
async def test_csv_equals_json(client, token, path, rows):
    expected = rows((await client.get(path, headers=bearer(token))).json())
    joiner = "&" if "?" in path else "?"
    answer = await client.get(f"{path}{joiner}format=csv", headers=bearer(token))
    assert answer.status_code == 200 and answer.headers["content-type"] == "text/csv; charset=utf-8"
    got = csv_rows(answer.text)
    assert got == [{name: csv_cell(value) for name, value in row.items()} for row in expected] and got


async def test_errors(client, token):
    for path, status, words in [
        ("/metrics/products/NOPE", 404, "unknown product 'NOPE'"),
        ("/metrics/products?by=price", 400, "by"),
        ("/metrics/products?min_units=-1", 400, "min_units"),
        ("/metrics/product-pairs?limit=0", 400, "limit"),
        ("/metrics/products?country=Atlantis", 404, "Atlantis"),
    ]:
        answer = await client.get(path, headers=bearer(token))
        assert answer.status_code == status and words in answer.text, (path, answer.text)
    await browser_login(client)
    page = await client.get("/metrics/products/NOPE", headers=HTML)
    assert page.status_code == 404 and "unknown product" in page.text


async def test_every_route_needs_a_login(client, token):
    for path in ("/metrics/products", "/metrics/product-pairs", "/metrics/products/A1"):
        assert (await client.get(path)).status_code == 401, path
        assert (await client.get(path + "?format=csv")).status_code == 401, path


async def test_pages_links_and_the_return_rate_floor(client, token):
    await browser_login(client)
    for path in ("/metrics/products", "/metrics/product-pairs", "/metrics/products/A1", "/metrics/products/POST"):
        page = await client.get(path + "?country=Germany", headers=HTML)
        assert page.status_code == 200, path
        partial = await client.get(path + "?country=Germany", headers=HTMX)
        assert partial.status_code == 200 and "<html" not in partial.text, path
    listing = (await client.get("/metrics/products?country=Germany", headers=HTML)).text
    assert 'href="/metrics/products/A1?country=Germany"' in listing
    assert 'href="/metrics/products?country=Germany&amp;by=return_rate_pct&amp;min_units=100"' in listing
    floor = (await client.get("/metrics/products?by=return_rate_pct&min_units=100", headers=HTML)).text
    assert "at least 100 units sold" in floor
    post = (await client.get("/metrics/products/POST", headers=HTML)).text
    assert "postage, a fee or a voucher" in post
    lines = (await client.get("/metrics/page", headers=HTML)).text
    assert 'href="/metrics/products/a1?"' in lines  # every stock code shown links to its product
    country = (await client.get("/metrics/top-countries/Germany", headers=HTML)).text
    assert 'href="/metrics/products/A1?country=Germany"' in country and "/metrics/products/POST" not in country
    dashboard = (await client.get("/", headers=HTML)).text
    assert 'id="top-products"' in dashboard and 'href="/metrics/products/B2?"' in dashboard
