"""CSV of every table view (ANALYTICS.md F7), through the app: the rows are the JSON rows, the
format is RFC 4180 as a spreadsheet reads it, formula cells are defused, errors stay errors."""

from __future__ import annotations

import pytest

from app.ingest.service import import_file
from tests import small_data
from tests.helpers import HTML, bearer, csv_cell, csv_rows, login, register

pytestmark = pytest.mark.usefixtures("empty_db")

# awkward texts: a formula (CWE-1236), a comma, quotes, a pound sign, a leading minus and at-sign
AWKWARD = small_data.HEADER + (
    '200001,=1+1,"=HYPERLINK(""http://evil.example"",""click"")",2,4/2/2011 10:00,1.5,7,Germany\n'
    '200002,X1,"RECORD FRAME 7"" SINGLE SIZE ",1,4/3/2011 10:00,2.55,8,Germany\n'
    '200003,X2,"TEA, COFFEE & £ SUGAR",3,4/4/2011 11:00,0.85,9,France\n'
    "200004,@X3,-MINUS START,5,4/5/2011 12:00,1.25,,France\n"
)


@pytest.fixture
async def token(client, small, tmp_path) -> str:
    (tmp_path / "awkward.csv").write_text(AWKWARD)
    await import_file(tmp_path / "awkward.csv")
    await register(client)
    return await login(client)


async def csv_of(client, token: str, path: str, **headers: str):
    answer = await client.get(path, headers={**bearer(token), **headers})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    return answer


@pytest.mark.parametrize(
    ("path", "items"),
    [
        ("/metrics/series?freq=day", lambda j: j["points"]),
        ("/metrics/series?country=germany", lambda j: j["points"]),
        ("/metrics/top-countries?by=orders&order=asc", lambda j: j["items"]),
        ("/metrics/top-countries/Germany?table=series", lambda j: j["series"]),
        ("/metrics/top-countries/Germany?table=top_products", lambda j: j["top_products"]),
        ("/metrics/customers?start=2011-01-01", lambda j: j["months"]),
    ],
)
async def test_each_table_is_its_json_rows(client, token, path, items):
    expected = items((await client.get(path, headers=bearer(token))).json())
    joiner = "&" if "?" in path else "?"
    rows = csv_rows((await csv_of(client, token, f"{path}{joiner}format=csv")).text)
    assert rows == [{name: csv_cell(value) for name, value in item.items()} for item in expected]
    assert rows and list(rows[0]) == list(expected[0])  # the JSON fields, in JSON order


async def test_paginated_and_limited_views_export_every_row_unless_a_limit_is_set(client, token):
    everything = (await client.get("/metrics/page?size=500", headers=bearer(token))).json()
    exported = csv_rows((await csv_of(client, token, "/metrics/page?format=csv&page=2&size=1")).text)
    assert len(exported) == everything["total"] == 8  # page and size are ignored
    assert exported == [{name: csv_cell(value) for name, value in item.items()} for item in everything["items"]]
    countries = csv_rows((await csv_of(client, token, "/metrics/top-countries?format=csv")).text)
    assert len(countries) == 3  # the whole table, not the page's default limit
    one = csv_rows((await csv_of(client, token, "/metrics/top-countries?format=csv&limit=1")).text)
    assert [row["country"] for row in one] == ["Germany"]


async def test_the_text_round_trips_and_formulas_are_defused(client, token):
    answer = await csv_of(client, token, "/metrics/page?format=csv&start=2011-04-01")
    raw = answer.content
    assert raw.startswith(b"invoice_no,stock_code,description,") and b"\r\n" in raw and b"\n\n" not in raw
    rows = {row["invoice_no"]: row for row in csv_rows(answer.text)}
    assert rows["200001"]["stock_code"] == "'=1+1"
    assert rows["200001"]["description"] == '\'=HYPERLINK("http://evil.example","click")'
    assert rows["200002"]["description"] == 'RECORD FRAME 7" SINGLE SIZE '  # quotes and the trailing space kept
    assert rows["200003"]["description"] == "TEA, COFFEE & £ SUGAR"
    assert rows["200004"]["stock_code"] == "'@X3" and rows["200004"]["description"] == "'-MINUS START"
    assert rows["200004"]["customer_id"] == ""  # null: an empty field
    assert "TEA, COFFEE & £ SUGAR".encode() in raw  # UTF-8
    series = csv_rows((await csv_of(client, token, "/metrics/series?format=csv")).text)
    assert any(row["growth_pct"].startswith("-") for row in series)  # a number is never altered


async def test_accept_and_format_choose_and_the_file_is_named_by_its_filters(client, token):
    by_accept = await csv_of(client, token, "/metrics/page?country=germany&end=2011-03-31", accept="text/csv")
    assert by_accept.headers["content-disposition"] == (
        'attachment; filename="transactions_2011-01-03_2011-03-31_germany.csv"'
    )  # the omitted start is Germany's first sale day
    json_wins = await client.get("/metrics/page?format=json", headers={**bearer(token), "accept": "text/csv"})
    assert json_wins.headers["content-type"].startswith("application/json")
    excel = await csv_of(client, token, "/metrics/top-countries?format=csv&bom=true")
    assert excel.content.startswith("\ufeff".encode()) and not by_accept.content.startswith(b"\xef\xbb\xbf")
    empty = await csv_of(client, token, "/metrics/page?format=csv&start=2012-01-01")
    header = "invoice_no,stock_code,description,quantity,invoice_date,unit_price,customer_id,country,line_revenue"
    assert empty.text == header + "\r\n"  # no line: the header alone


async def test_errors_stay_errors_in_plain_text(client, token):
    for path, status, words in [
        ("/metrics/page?format=csv&start=2011-03-01&end=2011-01-01", 400, "swap them"),
        ("/metrics/page?format=csv&country=Atlantis", 404, "Atlantis"),
        ("/metrics/top-countries?format=csv&limit=0", 400, "limit"),
        ("/metrics/top-countries/Germany?format=csv&table=secrets", 400, "series, top_products"),
        ("/metrics/page?format=xml", 400, "format"),
    ]:
        answer = await client.get(path, headers=bearer(token))
        assert answer.status_code == status, (path, answer.text)
        assert words in answer.text, path
        if "format=csv" in path:
            assert answer.headers["content-type"].startswith("text/plain"), path
    anonymous = await client.get("/metrics/page?format=csv")
    assert anonymous.status_code == 401 and anonymous.headers["content-type"].startswith("text/plain")


async def test_every_table_on_the_pages_has_a_download_link(client, token):
    from tests.helpers import browser_login

    await browser_login(client)
    for path, links in [
        ("/?country=Germany", ["/metrics/series?country=Germany", "/metrics/top-countries?country=Germany"]),
        ("/metrics/top-countries/Germany", ["table=series", "table=top_products"]),
        ("/metrics/page?q=mug", ["/metrics/page?q=mug&amp;format=csv&amp;bom=true"]),
    ]:
        page = await client.get(path, headers=HTML)
        downloads = [part.split('"', 1)[0] for part in page.text.split('class="download" href="')[1:]]
        assert len(downloads) == len(links), (path, downloads)
        for link, words in zip(downloads, links, strict=True):
            assert words in link and "format=csv" in link and "bom=true" in link, (path, link)
