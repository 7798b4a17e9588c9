"""The customer views through the app (issue 15): JSON, page, htmx partial and CSV of each; the
errors (unknown segment, unknown customer, a mistyped customer id) as a client would meet them;
every route behind the login; every customer id shown linking to the customer's page.

The figures themselves are checked on the real data against DuckDB in test_metrics_real_data.py.
Small data (tests/small_data.py FIRST, and one more file here): customers 1 (Germany), 3 (UK),
2 (a cancellation only, so no customer), and a guest's order.
"""

from __future__ import annotations

import pytest

from app.ingest.service import import_file
from tests import small_data
from tests.helpers import HTML, bearer, browser_login, csv_cell, csv_rows, login, register

pytestmark = pytest.mark.usefixtures("empty_db")

# a second month for customer 1 and a new customer 4 in Germany
MORE = small_data.HEADER + (
    "100010,A1,RED MUG,6,2/7/2011 10:00,1.25,1,Germany\n"
    "100011,B2,BLUE BOWL,2,2/8/2011 11:00,3.5,4,Germany\n"
    "100011,DOT,DOTCOM POSTAGE,1,2/8/2011 11:00,9.99,4,Germany\n"
)
HTMX = {**HTML, "hx-request": "true"}
SEGMENTS = (
    "champions",
    "loyal_customers",
    "potential_loyalists",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose",
    "hibernating",
)


@pytest.fixture
async def token(client, small, tmp_path) -> str:
    (tmp_path / "more.csv").write_text(MORE)
    await import_file(tmp_path / "more.csv")
    await register(client)
    return await login(client)


def long_cohorts(answer: dict) -> list[dict]:
    return [
        {"cohort": row["cohort"], "cohort_customers": row["customers"]}
        | {name: month[name] for name in ("month_index", "period", "active_customers", "retention_pct", "revenue")}
        for row in answer["cohorts"]
        for month in row["months"]
    ]


@pytest.mark.parametrize(
    ("path", "rows"),
    [
        ("/metrics/cohorts", long_cohorts),
        ("/metrics/cohorts?country=germany", long_cohorts),
        ("/metrics/rfm", lambda j: j["segments"]),
        ("/metrics/rfm/customers", lambda j: j["items"]),
        ("/metrics/rfm/customers?sort=customer_id", lambda j: j["items"]),
        ("/metrics/customers/1?table=customer_months", lambda j: j["months"]),
        ("/metrics/customers/1?table=customer_products", lambda j: j["top_products"]),
    ],
)
async def test_csv_equals_json(client, token, path, rows):
    expected = rows((await client.get(path, headers=bearer(token))).json())
    joiner = "&" if "?" in path else "?"
    answer = await client.get(f"{path}{joiner}format=csv", headers=bearer(token))
    assert answer.status_code == 200 and answer.headers["content-type"] == "text/csv; charset=utf-8"
    got = csv_rows(answer.text)
    assert got == [{name: csv_cell(value) for name, value in row.items()} for row in expected]
    assert got, path


async def test_the_customer_list_exports_every_row_whatever_the_page(client, token):
    everyone = (await client.get("/metrics/rfm/customers", headers=bearer(token))).json()
    assert [c["customer_id"] for c in everyone["items"]] == [1, 4, 3]  # monetary descending: 25.00, 16.99, 3.33
    exported = csv_rows(
        (await client.get("/metrics/rfm/customers?format=csv&page=2&size=1", headers=bearer(token))).text
    )
    assert [int(row["customer_id"]) for row in exported] == [1, 4, 3]


async def test_the_small_figures(client, token):
    rfm = (await client.get("/metrics/rfm", headers=bearer(token))).json()
    assert (rfm["reference_date"], rfm["customers"]) == ("2011-03-02", 3)  # the last sale (1 March) + 1
    assert [s["segment"] for s in rfm["segments"]] == list(SEGMENTS)
    one = (await client.get("/metrics/customers/1", headers=bearer(token))).json()
    assert (one["orders"], one["revenue"], one["units_sold"], one["countries"]) == (2, 25.0, 9, ["Germany"])
    # postage is revenue, never a product: 15.00 of customer 1's 25.00
    assert [(p["stock_code"], p["revenue"], p["orders"]) for p in one["top_products"]] == [("A1", 10.0, 2)]
    cohorts = (await client.get("/metrics/cohorts", headers=bearer(token))).json()
    assert [
        (c["cohort"], c["customers"], [m["active_customers"] for m in c["months"]]) for c in cohorts["cohorts"]
    ] == [
        ("2011-01", 1, [1, 1, 0]),
        ("2011-02", 1, [1, 0]),
        ("2011-03", 1, [1]),
    ]


async def test_an_unknown_segment_is_a_400_naming_the_ten(client, token):
    answer = await client.get("/metrics/rfm/customers?segment=whales", headers=bearer(token))
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("application/json")
    assert "whales" in answer.json()["detail"] and all(name in answer.json()["detail"] for name in SEGMENTS)
    await browser_login(client)
    page = await client.get("/metrics/rfm/customers?segment=whales", headers=HTML)
    assert page.status_code == 400 and "text/html" in page.headers["content-type"]
    assert "champions" in page.text and "hibernating" in page.text
    # the names as written: another spelling is refused the same way
    upper = await client.get("/metrics/rfm/customers?segment=Champions", headers=bearer(token))
    assert upper.status_code == 400 and "hibernating" in upper.json()["detail"]


@pytest.mark.parametrize("customer", ["999", "abc", "0", "12345678901234567890123", "1%2F2"])
async def test_an_unknown_customer_is_a_404_naming_it(client, token, customer):
    answer = await client.get(f"/metrics/customers/{customer}", headers=bearer(token))
    assert answer.status_code == 404, answer.text
    assert "unknown customer" in answer.json()["detail"]
    await browser_login(client)
    page = await client.get(f"/metrics/customers/{customer}", headers=HTML)
    assert page.status_code == 404 and "unknown customer" in page.text


async def test_a_customer_known_elsewhere_has_an_empty_page_in_another_country(client, token):
    away = (await client.get("/metrics/customers/1?country=france", headers=bearer(token))).json()
    assert (away["orders"], away["revenue"], away["rfm"], away["countries"]) == (0, 0.0, None, ["Germany"])


async def test_the_transactions_of_one_customer(client, token):
    theirs = (await client.get("/metrics/page?customer=1", headers=bearer(token))).json()
    assert theirs["total"] == 3 and {line["customer_id"] for line in theirs["items"]} == {1}
    four = (await client.get("/metrics/page?q=4", headers=bearer(token))).json()  # customer 4, and invoice 100004
    assert sorted((line["invoice_no"], line["customer_id"]) for line in four["items"]) == [
        ("100004", 3),
        ("100011", 4),
        ("100011", 4),
    ]
    blank = await client.get("/metrics/page?customer=", headers=bearer(token))  # a form's empty field
    assert blank.status_code == 200 and blank.json()["total"] == 7
    nobody = (await client.get("/metrics/page?customer=99999999999", headers=bearer(token))).json()
    assert nobody["total"] == 0  # beyond a 32-bit id: no lines, no database error
    typo = await client.get("/metrics/page?customer=12a", headers=bearer(token))
    assert typo.status_code == 400 and "digits only" in typo.json()["detail"]
    exported = csv_rows((await client.get("/metrics/page?customer=1&format=csv", headers=bearer(token))).text)
    assert [row["invoice_no"] for row in exported] == ["100001", "100001", "100010"]


async def test_every_route_needs_a_login(client, token):
    for path in ("/metrics/cohorts", "/metrics/rfm", "/metrics/rfm/customers", "/metrics/customers/1"):
        assert (await client.get(path)).status_code == 401, path
        assert (await client.get(path + "?format=csv")).status_code == 401, path
        page = await client.get(path, headers=HTML)
        assert page.status_code == 303 and page.headers["location"].startswith("/login?next="), path


async def test_pages_partials_tabs_and_links(client, token):
    await browser_login(client)
    for path, tab in [("/metrics/customers", "customers"), ("/metrics/cohorts", "cohorts"), ("/metrics/rfm", "rfm")]:
        page = await client.get(path + "?country=Germany", headers=HTML)
        assert page.status_code == 200, path
        assert f'id="tab-{tab}" href="{path}?country=Germany" aria-current="page"' in page.text, path
        for other in ("/metrics/customers?country=Germany", "/metrics/cohorts?country=Germany"):
            assert f'href="{other}"' in page.text  # the tabs keep the filters
        partial = await client.get(path + "?country=Germany", headers=HTMX)
        assert partial.status_code == 200 and "<html" not in partial.text
    rfm = (await client.get("/metrics/rfm?start=2011-01-01", headers=HTML)).text
    assert 'href="/metrics/rfm/customers?start=2011-01-01&amp;segment=champions"' in rfm
    assert "Too few customers for quintiles" in rfm  # 3 customers
    listing = (await client.get("/metrics/rfm/customers?start=2011-01-01", headers=HTML)).text
    assert 'href="/metrics/customers/1?start=2011-01-01"' in listing  # the id links, with the filters
    lines = (await client.get("/metrics/page?country=Germany", headers=HTML)).text
    assert 'href="/metrics/customers/1?country=Germany"' in lines and "guest" not in lines
    one = (await client.get("/metrics/customers/1?end=2011-02-28", headers=HTML)).text
    assert 'href="/metrics/page?end=2011-02-28&amp;customer=1"' in one  # their transactions
    cohorts = (await client.get("/metrics/cohorts", headers=HTML)).text
    assert 'title="Jan 2011: 1 of 1 customers bought (100.00 %)' in cohorts
