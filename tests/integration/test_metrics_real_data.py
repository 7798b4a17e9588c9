"""Every figure of METRICS.md on the real data set, against an independent computation
(DuckDB over the file, tests/reference.py).

The file goes through the real path: imported into the database under test (the importer
maintains the shapes), the shapes read back by the app's loader, the figures computed from
them; the transactions page reads the stored lines. That the stored rows are exactly the
file's is checked in tests/integration/test_import_real_data.py.
"""

from __future__ import annotations

from datetime import date

import msgspec
import polars as pl
import pytest

from app.metrics import analytics, lines
from app.metrics.analytics import InvalidParameter, UnknownCountry
from app.metrics.schemas import Filters
from tests.helpers import clear_tables
from tests.reference import Reference

D = date
BACKWARDS = Filters(start=D(2011, 2, 2), end=D(2011, 2, 1))

# (start, end, country): at least ten combinations, as the issue asks
COMBOS = {
    "everything": (None, None, None),
    "EIRE": (None, None, "EIRE"),
    "Unspecified": (None, None, "Unspecified"),
    "germany lower-case": (None, None, "germany"),
    "UNITED KINGDOM upper-case": (None, None, "UNITED KINGDOM"),
    "one day (start = end)": (D(2011, 5, 5), D(2011, 5, 5), None),
    "a month": (D(2011, 3, 1), D(2011, 3, 31), None),
    "across new year": (D(2010, 12, 15), D(2011, 1, 20), None),
    "no sales (after the data)": (D(2012, 1, 1), D(2012, 2, 1), None),
    "no sales (shop closed)": (D(2010, 12, 24), D(2011, 1, 3), None),
    "France in summer": (D(2011, 6, 1), D(2011, 8, 31), "France"),
    "start only": (D(2011, 11, 1), None, None),
    "end only": (None, D(2010, 12, 31), None),
    "EIRE in a week": (D(2011, 9, 5), D(2011, 9, 11), "eire"),
}


def builtins(value: object) -> object:
    return msgspec.to_builtins(value)


@pytest.fixture(scope="module")
def reference(data_csv_gz) -> Reference:
    return Reference(data_csv_gz)


@pytest.fixture(scope="module")
async def dataset(data_csv_gz) -> analytics.Dataset:
    """The real file imported into the database under test, its shapes read back as the app reads them."""
    from app.ingest.service import import_file
    from app.lib.settings import get_settings
    from app.metrics.loader import load_dataset

    await clear_tables()
    await import_file(data_csv_gz)
    return await load_dataset(get_settings())


def filters(combo: str) -> Filters:
    start, end, country = COMBOS[combo]
    return Filters(start=start, end=end, country=country)


# -- the reference figures of METRICS.md ---------------------------------------------------


def test_full_data_matches_metrics_md(dataset, reference):
    kpis = builtins(analytics.kpis(dataset, Filters(), "GBP"))
    assert kpis["revenue"] == 10_655_622.48
    assert kpis["units_sold"] == 5_588_375
    assert kpis["orders"] == 19_959
    assert kpis["customers"] == 4_338
    assert kpis["average_order_value"] == 533.88
    assert kpis["first_sale"] == "2010-12-01T08:26:00"
    assert kpis["last_sale"] == "2011-12-09T12:50:00"
    assert dataset.sales_lines == 530_103
    assert reference.query("SELECT count(*) FROM sales")[0][0] == 530_103
    overall = analytics.top_products(dataset, Filters())
    assert (overall[0].stock_code, overall[0].description, overall[0].revenue) == (
        "22423",
        "REGENCY CAKESTAND 3 TIER",
        174_484.74,
    )
    assert len(dataset.countries) == 38


# -- KPIs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("combo", COMBOS)
def test_kpis(dataset, reference, combo):
    start, end, country = COMBOS[combo]
    assert builtins(analytics.kpis(dataset, filters(combo), "GBP")) == builtins(reference.kpis(start, end, country))


@pytest.mark.parametrize(
    ("start", "end", "country", "mode"),
    [
        (D(2011, 11, 1), D(2011, 11, 30), None, "previous_period"),  # ANALYTICS.md's reference
        (D(2011, 11, 1), D(2011, 11, 30), None, "previous_year"),
        (D(2010, 12, 1), D(2010, 12, 31), None, "previous_period"),  # the previous window is before the data
        (None, None, None, "previous_period"),  # the R1 defaults: the whole data against the days before it
        (None, None, None, "previous_year"),  # overlapping windows: the current one never clips the other
        (D(2011, 3, 1), D(2011, 5, 31), "germany", "previous_period"),
        (None, D(2011, 6, 30), "EIRE", "previous_year"),  # one date omitted: the country's first sale day
        (D(2012, 2, 29), D(2012, 3, 31), None, "previous_year"),  # 29 February: 28 February the year before
        (D(2012, 1, 1), D(2012, 1, 31), None, "previous_period"),  # no data in either window
        (D(2011, 12, 9), D(2011, 12, 9), "United Kingdom", "previous_period"),  # one day
        (D(2011, 5, 2), D(2011, 5, 8), None, "previous_period"),  # a week (Monday to Sunday)
        (D(2011, 12, 1), D(2011, 12, 9), None, "previous_period"),  # the 9-day December
        (D(2011, 12, 1), D(2011, 12, 9), None, "previous_year"),  # against December 2010's first 9 days
        (D(2010, 12, 15), D(2011, 1, 15), "FRANCE", "previous_year"),  # across the year boundary, any case
    ],
)
def test_kpis_compared_with_an_earlier_window(dataset, reference, start, end, country, mode):
    ours = builtins(analytics.kpis(dataset, Filters(start=start, end=end, country=country), "GBP", mode))
    expected = builtins(reference.compared(start, end, country, mode))
    theirs, mine = expected.pop("comparison"), ours.pop("comparison")
    assert ours == expected
    changes, expected_changes = mine.pop("change"), theirs.pop("change")
    assert set(changes) == set(expected_changes)
    for name, change in changes.items():
        assert change["abs"] == expected_changes[name]["abs"], name  # from the reported values: exact
        if change["pct"] is None or expected_changes[name]["pct"] is None:
            assert change["pct"] is expected_changes[name]["pct"], name
        else:
            assert change["pct"] == pytest.approx(expected_changes[name]["pct"], abs=0.0101), name  # R5
    assert mine == theirs


def test_the_reference_comparison_figures(dataset):
    nov = analytics.kpis(dataset, Filters(start=D(2011, 11, 1), end=D(2011, 11, 30)), "GBP", "previous_period")
    c = nov.comparison
    assert (c.previous_start, c.previous_end) == (D(2011, 10, 2), D(2011, 10, 31))
    assert (c.previous.revenue, c.change["revenue"].abs, c.change["revenue"].pct) == (1154979.30, 354517.03, 30.69)
    assert (c.change["orders"].pct, c.change["customers"].pct) == (35.74, 21.99)
    assert (c.change["average_order_value"].abs, c.change["average_order_value"].pct) == (-21.03, -3.71)
    assert (c.change["cancelled_revenue"].abs, c.change["cancelled_revenue"].pct) == (-36534.55, -43.35)
    dec = analytics.kpis(dataset, Filters(start=D(2010, 12, 1), end=D(2010, 12, 31)), "GBP", "previous_period")
    assert dec.comparison.previous.revenue == 0 and dec.comparison.previous.average_order_value is None
    assert all(change.pct is None for change in dec.comparison.change.values())
    assert analytics.kpis(dataset, Filters(), "GBP").comparison is None  # compare=none


def test_partial_periods_are_marked(dataset):
    months = analytics.series(dataset, Filters(), "month", "GBP").points
    assert [p.period for p in months if p.partial] == [D(2011, 12, 1)]  # 9 days of December 2011
    years = analytics.series(dataset, Filters(), "year", "GBP").points
    assert [(p.period.year, p.partial) for p in years] == [(2010, True), (2011, True)]  # one month; to 9 Dec
    window = analytics.series(dataset, Filters(start=D(2011, 3, 15), end=D(2011, 6, 30)), "month", "GBP").points
    assert [(p.period.month, p.partial) for p in window] == [(3, True), (4, False), (5, False), (6, False)]
    weeks = analytics.series(dataset, Filters(start=D(2011, 5, 4), end=D(2011, 5, 31)), "week", "GBP").points
    assert weeks[0].partial and weeks[-1].partial and not any(p.partial for p in weeks[1:-1])
    assert not any(p.partial for p in analytics.series(dataset, Filters(), "day", "GBP").points)
    eire = analytics.country_detail(dataset, Filters(), "EIRE", "GBP").series
    assert eire[-1].partial and not eire[0].partial


def test_kpis_without_sales_are_zeros_and_nulls(dataset):
    kpis = analytics.kpis(dataset, filters("no sales (after the data)"), "GBP")
    assert (kpis.revenue, kpis.units_sold, kpis.orders, kpis.customers) == (0, 0, 0, 0)
    assert kpis.average_order_value is None and kpis.units_per_order is None
    assert kpis.first_sale is None and kpis.last_sale is None


# -- series --------------------------------------------------------------------------------


@pytest.mark.parametrize("freq", analytics.FREQS)
@pytest.mark.parametrize("combo", COMBOS)
def test_series(dataset, reference, combo, freq):
    start, end, country = COMBOS[combo]
    ours = analytics.series(dataset, filters(combo), freq, "GBP")
    assert ours.freq == freq
    assert builtins(ours.points) == builtins(reference.series(freq, start, end, country))


def test_series_shape_on_full_data(dataset):
    points = {freq: analytics.series(dataset, Filters(), freq, "GBP").points for freq in analytics.FREQS}
    # 2010-12-01 .. 2011-12-09: 374 days, the weeks of Mondays 2010-11-29 .. 2011-12-05, 13 months, 2 years
    assert {freq: len(p) for freq, p in points.items()} == {"day": 374, "week": 54, "month": 13, "year": 2}
    assert all(p.period.weekday() == 0 for p in points["week"])
    assert points["week"][0].period == D(2010, 11, 29)
    assert all(p.period.day == 1 for p in points["month"])
    # the shop is closed over Christmas: the days are there, with zeros, and growth after a zero is null
    days = {p.period: p for p in points["day"]}
    closed = days[D(2010, 12, 25)]
    assert (closed.revenue, closed.units_sold, closed.orders) == (0, 0, 0)
    assert days[D(2011, 1, 4)].growth_pct is None  # the previous day (3 January) sold nothing
    assert points["day"][0].growth_pct is None
    month = points["month"]
    expected = round((month[1].revenue - month[0].revenue) / month[0].revenue * 100, 2)
    assert month[1].growth_pct == pytest.approx(expected, abs=0.01)


def test_series_of_a_range_without_sales_is_empty(dataset):
    assert analytics.series(dataset, filters("no sales (after the data)"), "day", "GBP").points == []


# -- top countries -------------------------------------------------------------------------


@pytest.mark.parametrize("by", analytics.RANK_BY)
@pytest.mark.parametrize("order", ["desc", "asc"])
def test_top_countries(dataset, reference, by, order):
    ours = analytics.top_countries(dataset, Filters(), by, 10, order, "GBP")
    assert builtins(ours.items) == builtins(reference.top_countries(by, 10, order))


@pytest.mark.parametrize("combo", ["a month", "across new year", "France in summer", "EIRE", "no sales (shop closed)"])
@pytest.mark.parametrize("limit", [1, 7, 100])
def test_top_countries_filtered(dataset, reference, combo, limit):
    start, end, country = COMBOS[combo]
    ours = analytics.top_countries(dataset, filters(combo), "revenue", limit, "desc", "GBP")
    assert builtins(ours.items) == builtins(reference.top_countries("revenue", limit, "desc", start, end, country))


def test_top_countries_ties_are_broken_by_name(dataset):
    # on one quiet day several countries have the same number of customers
    ranked = analytics.top_countries(
        dataset, Filters(start=D(2011, 2, 1), end=D(2011, 2, 1)), "customers", 100, "desc", "GBP"
    )
    for first, second in zip(ranked.items, ranked.items[1:], strict=False):
        assert first.customers > second.customers or (
            first.customers == second.customers and first.country < second.country
        )
    assert any(a.customers == b.customers for a, b in zip(ranked.items, ranked.items[1:], strict=False))
    assert [i.rank for i in ranked.items] == list(range(1, len(ranked.items) + 1))


# -- country drilldown ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "start", "end"),
    [
        ("United Kingdom", None, None),
        ("eire", None, None),
        ("Unspecified", None, None),
        ("GERMANY", D(2011, 1, 1), D(2011, 6, 30)),
        ("Saudi Arabia", None, None),
        ("Brazil", D(2011, 6, 1), D(2011, 6, 30)),  # no sales in that month: rank and figures empty
    ],
)
def test_country_detail(dataset, reference, name, start, end):
    ours = analytics.country_detail(dataset, Filters(start=start, end=end), name, "GBP")
    assert builtins(ours) == builtins(reference.country_detail(name, start, end))


@pytest.mark.parametrize("combo", ["everything", "a month", "across new year", "no sales (after the data)"])
def test_top_products_overall(dataset, reference, combo):
    start, end, _ = COMBOS[combo]
    ours = analytics.top_products(dataset, Filters(start=start, end=end))
    assert builtins(ours) == builtins(reference.top_products(None, start, end))


def test_every_country_detail_at_once_equals_one_by_one(dataset):
    every = analytics.country_details(dataset, Filters(), "GBP")
    assert len(every) == 38
    for detail in every[::5]:
        assert builtins(detail) == builtins(analytics.country_detail(dataset, Filters(), detail.country, "GBP"))


# -- transactions page ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "size", "q", "combo"),
    [
        (1, 50, None, "everything"),
        (2, 50, None, "everything"),
        (10_000, 50, None, "everything"),  # deep page
        (1_061, 500, None, "everything"),  # the last page: 530,103 = 1,060 x 500 + 103
        (1_062, 500, None, "everything"),  # past the end
        (1, 1, None, "everything"),
        (1, 50, "cake", "everything"),
        (40, 50, "CAKESTAND", "everything"),
        (3, 20, "c54", "everything"),  # matches invoice numbers and stock codes
        (1, 50, "regency", "germany lower-case"),
        (2, 100, None, "France in summer"),
        (1, 50, None, "no sales (after the data)"),
        (1, 500, None, "one day (start = end)"),
        (5, 10, "bag", "across new year"),
        # searches: invoice numbers and stock codes at once (lines matching both counted once),
        # postage (not a product, still a line), a lower-case code, LIKE's wildcards taken literally
        (1, 50, "5363", "everything"),
        (3, 20, "2242", "everything"),
        (200, 50, "2242", "everything"),
        (2, 50, "post", "EIRE"),
        (1, 50, "85123a", "a month"),
        (1, 50, "%", "everything"),
        (1, 50, "_", "everything"),
        (1, 50, "no such thing", "everything"),
        (300, 100, "heart", "everything"),  # deep in a search
    ],
)
async def test_page(dataset, reference, page, size, q, combo):
    start, end, country = COMBOS[combo]
    ours = await lines.page(dataset, filters(combo), q, page, size)
    answer = builtins(ours)
    del answer["next_after"]  # not in METRICS.md: checked below by following it
    assert answer == builtins(reference.page(page, size, q, start, end, country))
    # the next page through its key (what the page's Next link carries) is the next page by number
    if ours.next_after is not None:
        by_key = builtins(await lines.page(dataset, filters(combo), q, page + 1, size, after=ours.next_after))
        assert by_key["items"] == builtins(reference.page(page + 1, size, q, start, end, country))["items"]
    else:  # the last page, or a search (whose pages are found from the shapes, without a key)
        assert page >= ours.pages or q


@pytest.mark.parametrize(
    ("sort", "page", "size", "q", "combo"),
    [
        ("-line_revenue", 1, 50, None, "everything"),
        ("line_revenue", 3, 100, None, "a month"),
        ("-quantity", 2, 50, None, "germany lower-case"),
        ("quantity", 1, 20, "heart", "everything"),
        ("-unit_price", 1, 50, None, "France in summer"),
        ("unit_price", 40, 50, None, "everything"),
        ("-invoice_date", 1, 50, None, "everything"),
        ("-invoice_date", 3, 50, "cakestand", "EIRE"),
    ],
)
async def test_sorted_pages(dataset, reference, sort, page, size, q, combo):
    start, end, country = COMBOS[combo]
    ours = await lines.page(dataset, filters(combo), q, page, size, sort=sort)
    answer = builtins(ours)
    assert answer.pop("next_after") is None  # another order than the default: pages by number only
    assert answer == builtins(reference.page(page, size, q, start, end, country, sort=sort))


async def test_page_facts(dataset):
    first = await lines.page(dataset, Filters(), None, 1, 500)
    assert (first.total, first.pages) == (530_103, 1_061)
    dates = [line.invoice_date for line in first.items]
    assert dates == sorted(dates)
    last = await lines.page(dataset, Filters(), None, 1_061, 500)
    assert len(last.items) == 103
    assert last.items[-1].invoice_date.isoformat() == "2011-12-09T12:50:00"
    past = await lines.page(dataset, Filters(), None, 5_000, 500)
    assert (past.items, past.total, past.pages) == ([], 530_103, 1_061)
    found = await lines.page(dataset, Filters(), "  Regency CAKESTAND ", 1, 500)
    assert found.total > 0 and all("regency cakestand" in (line.description or "").lower() for line in found.items)


# -- bad parameters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (
            lambda ds: analytics.kpis(ds, BACKWARDS, "GBP"),
            InvalidParameter,
            "after",
        ),
        (lambda ds: analytics.kpis(ds, Filters(country="Atlantis"), "GBP"), UnknownCountry, "Atlantis"),
        (lambda ds: analytics.country_detail(ds, Filters(), "Narnia", "GBP"), UnknownCountry, "Narnia"),
        (lambda ds: analytics.series(ds, Filters(), "hour", "GBP"), InvalidParameter, "freq"),
        (lambda ds: analytics.top_countries(ds, Filters(), "revenue", 0, "desc", "GBP"), InvalidParameter, "limit"),
        (lambda ds: analytics.top_countries(ds, Filters(), "revenue", 101, "desc", "GBP"), InvalidParameter, "limit"),
        (lambda ds: analytics.top_countries(ds, Filters(), "profit", 10, "desc", "GBP"), InvalidParameter, "by"),
        (lambda ds: analytics.top_countries(ds, Filters(), "revenue", 10, "up", "GBP"), InvalidParameter, "order"),
    ],
)
def test_bad_parameters_raise_typed_errors(dataset, call, error, words):
    with pytest.raises(error, match=words):
        call(dataset)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((Filters(), None, 0, 50), "page"),
        ((Filters(), None, 1, 0), "size"),
        ((Filters(), None, 1, 501), "size"),
        ((BACKWARDS, None, 1, 5), "end"),
    ],
)
async def test_bad_page_parameters_raise_typed_errors(dataset, args, words):
    with pytest.raises(InvalidParameter, match=words):
        await lines.page(dataset, *args)


# -- CSV export (F7): every matching line, streamed ----------------------------------------


@pytest.mark.parametrize(
    ("flt", "q", "sort", "count"),
    [
        (Filters(), None, "invoice_date", 530_103),  # ANALYTICS.md F7's counts
        (Filters(country="germany"), None, "invoice_date", 9_040),
        (Filters(start=D(2011, 11, 1), end=D(2011, 11, 30)), None, "invoice_date", 83_369),
        (Filters(country="EIRE"), None, "-line_revenue", None),
        (Filters(start=D(2011, 3, 1), end=D(2011, 3, 31)), "heart", "quantity", None),
        (Filters(country="France"), None, "-invoice_date", None),
    ],
)
async def test_the_export_streams_every_line_in_the_pages_order(dataset, reference, flt, q, sort, count):
    from app.metrics import lines as listing

    streamed, sizes = [], []
    async for chunk in listing.stream(dataset, flt, q, sort, chunk=2_000):
        sizes.append(len(chunk))
        streamed.extend(builtins(chunk))
    assert all(size == 2_000 for size in sizes[:-1])  # one chunk at a time, whatever the size
    start, end, country = flt.start, flt.end, flt.country
    total = reference.page(1, 1, q, start, end, country)["total"]
    assert len(streamed) == total and (count is None or total == count)
    if total <= 20_000:  # the order and every value, against the reference's pages
        expected = reference.page(1, max(total, 1), q, start, end, country, sort=sort)["items"]
        assert streamed == builtins(expected)
    else:
        first = reference.page(1, 500, q, start, end, country, sort=sort)["items"]
        last = reference.page(-(-total // 500), 500, q, start, end, country, sort=sort)["items"]
        assert streamed[:500] == builtins(first) and streamed[-len(last) :] == builtins(last)


@pytest.mark.parametrize(("q", "lines_at_least"), [('"', 1_233), (",", 4_718), ("£", 32)])
async def test_real_descriptions_round_trip_through_the_csv_byte_for_byte(dataset, q, lines_at_least):
    """ANALYTICS.md F7: descriptions with double quotes, commas and £ come back exactly."""
    import csv
    import io

    from app.metrics import export
    from app.metrics import lines as listing
    from app.metrics.views import PAGE

    streamed = [line async for chunk in listing.stream(dataset, Filters(), q) for line in chunk]
    text = export.encode_rows(PAGE.tables[0].columns, streamed, header=True).decode()
    parsed = list(csv.DictReader(io.StringIO(text, newline="")))
    with_it = [line.description for line in streamed if q in (line.description or "")]
    assert len(with_it) >= lines_at_least
    assert [row["description"] for row in parsed] == [line.description or "" for line in streamed]


def test_the_whole_countries_table_at_the_largest_limit(dataset):
    assert len(analytics.top_countries(dataset, Filters(), "revenue", 100, "desc", "GBP").items) == 38


# -- customers (F2) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "country"),
    [
        (None, None, None),  # the whole data: everyone is new
        (D(2011, 11, 1), D(2011, 11, 30), None),  # ANALYTICS.md's reference month
        (D(2011, 3, 15), D(2011, 6, 10), None),  # months cut by the window at both ends
        (D(2011, 1, 1), D(2011, 12, 31), "germany"),  # a country's own histories, any case
        (None, D(2011, 6, 30), "EIRE"),  # an omitted start: the country's first sale day
        (None, None, "Hong Kong"),  # no identified customer: zeros, null rates, months of zeros
        (D(2012, 1, 1), D(2012, 2, 29), None),  # no sales at all
    ],
)
def test_customers_against_the_reference(dataset, reference, start, end, country):
    from app.metrics import customers

    ours = builtins(customers.customers(dataset, Filters(start=start, end=end, country=country), "GBP"))
    expected = builtins(reference.customers(start, end, country))
    assert ours.pop("currency") == "GBP" and ours.pop("history_start") == "2010-12-01"
    assert ours == expected
    assert sum(month["new_customers"] for month in ours["months"]) == ours["new_customers"]  # F2's invariant


def test_the_reference_customer_figures(dataset):
    from app.metrics import customers

    whole = customers.customers(dataset, Filters(), "GBP")
    assert (whole.customers, whole.new_customers, whole.returning_customers) == (4338, 4338, 0)
    assert (whole.repeat_customers, whole.repeat_purchase_rate_pct, whole.orders_per_customer) == (2845, 65.58, 4.27)
    assert [m.new_customers for m in whole.months] == [885, 417, 380, 452, 300, 284, 242, 188, 169, 299, 358, 323, 41]
    nov = customers.customers(dataset, Filters(start=D(2011, 11, 1), end=D(2011, 11, 30)), "GBP")
    assert (nov.customers, nov.new_customers, nov.returning_customers, nov.returning_customer_pct) == (
        1664,
        323,
        1341,
        80.59,
    )
    assert (nov.repeat_customers, nov.repeat_purchase_rate_pct) == (540, 32.45)
    assert (nov.multi_order_customers, nov.multi_order_customer_rate_pct, nov.orders_per_customer) == (1397, 83.95, 1.6)


# -- cohorts (F3), RFM (F4), a customer's page, the transactions of one customer -----------

# at least eight filter combinations across the three views, as issue 15 asks
CUSTOMER_COMBOS = [
    (None, None, None),  # everything
    (D(2011, 3, 1), D(2011, 3, 31), None),  # a month
    (D(2011, 4, 1), D(2011, 6, 30), None),  # a quarter
    (D(2011, 5, 5), D(2011, 5, 5), None),  # a single day
    (D(2010, 12, 1), D(2011, 2, 14), None),  # starts on the first data day: nobody returning
    (None, None, "Saudi Arabia"),  # a single customer
    (None, None, "Hong Kong"),  # guests only
    (D(2011, 1, 1), D(2011, 12, 31), "united kingdom"),  # a country in any case
    (D(2012, 1, 1), D(2012, 3, 1), None),  # no sales
    (D(2011, 2, 10), D(2011, 9, 20), "EIRE"),  # months cut at both ends
]


@pytest.mark.parametrize(("start", "end", "country"), CUSTOMER_COMBOS)
def test_customers_on_the_customer_combinations(dataset, reference, start, end, country):
    from app.metrics import customers

    ours = builtins(customers.customers(dataset, Filters(start=start, end=end, country=country), "GBP"))
    del ours["currency"], ours["history_start"]
    assert ours == builtins(reference.customers(start, end, country))
    months = ours["months"]
    assert sum(m["new_customers"] for m in months) == ours["new_customers"]  # F2's invariants
    identified = reference.query(
        "SELECT coalesce(sum(revenue), 0) FROM sales WHERE customer_id IS NOT NULL AND "
        + reference._where(start, end, country)[0],
        reference._where(start, end, country)[1],
    )[0][0]
    total = sum(round((m["new_customer_revenue"] + m["returning_customer_revenue"]) * 100) for m in months)
    assert total == pytest.approx(float(identified) * 100, abs=len(months))  # each month rounded once
    if start == D(2010, 12, 1):
        assert ours["returning_customers"] == 0


@pytest.mark.parametrize(("start", "end", "country"), CUSTOMER_COMBOS)
def test_cohorts(dataset, reference, start, end, country):
    from app.metrics import customers

    ours = builtins(customers.cohorts(dataset, Filters(start=start, end=end, country=country), "GBP"))
    assert ours.pop("currency") == "GBP"
    assert ours == builtins(reference.cohorts(start, end, country))
    for row in ours["cohorts"]:  # k = 0 is the cohort itself; every row complete to the last month
        assert row["months"][0]["active_customers"] == row["customers"] and row["months"][0]["retention_pct"] == 100
        assert [cell["month_index"] for cell in row["months"]] == list(range(len(row["months"])))
        assert row["months"][-1]["period"].startswith(ours["end_month"])


def test_the_reference_cohorts_zero_cells_and_the_partial_month(dataset):
    from app.metrics import customers

    whole = customers.cohorts(dataset, Filters(), "GBP")
    assert (whole.start_month, whole.end_month) == ("2010-12", "2011-12")
    first, second = whole.cohorts[0], whole.cohorts[1]
    assert first.customers == 885 and first.months[0].revenue == 572713.89
    assert [m.active_customers for m in first.months] == [
        885,
        324,
        286,
        340,
        321,
        352,
        321,
        309,
        313,
        350,
        331,
        445,
        235,
    ]
    assert [m.active_customers for m in second.months] == [417, 92, 111, 96, 134, 120, 103, 101, 125, 136, 152, 49]
    # 2011-12 ends on the 9th: the last cell of every row, and only it, is partial
    assert all(row.months[-1].partial and not any(m.partial for m in row.months[:-1]) for row in whole.cohorts)
    # a cohort with a month of no activity has that cell, with zeros (Saudi Arabia: one customer, one order)
    saudi = customers.cohorts(dataset, Filters(end=D(2011, 12, 9), country="saudi arabia"), "GBP")
    (row,) = saudi.cohorts
    assert (row.cohort, len(row.months)) == ("2011-02", 11)
    assert all(cell.active_customers == 0 and cell.revenue == 0 and cell.retention_pct == 0 for cell in row.months[1:])
    assert customers.cohorts(dataset, Filters(country="Hong Kong"), "GBP").cohorts == []
    # whole months: a window inside one month gives that month's cohort, activity counted in all of it
    mid = customers.cohorts(dataset, Filters(start=D(2011, 1, 10), end=D(2011, 1, 12)), "GBP")
    assert [(row.cohort, row.customers, row.months[0].active_customers) for row in mid.cohorts] == [
        ("2011-01", 417, 417)
    ]


@pytest.mark.parametrize(("start", "end", "country"), CUSTOMER_COMBOS)
def test_rfm(dataset, reference, start, end, country):
    from app.metrics import customers

    flt = Filters(start=start, end=end, country=country)
    ours = builtins(customers.rfm(dataset, flt, "GBP"))
    assert ours.pop("currency") == "GBP"
    assert ours == builtins(reference.rfm(start, end, country))
    assert [row["segment"] for row in ours["segments"]] == list(customers.SEGMENTS)  # all ten, in order
    _, expected = reference.rfm_customers(start, end, country)
    listed = customers.rfm_customers(dataset, flt, None, 1, 500, "-monetary", "GBP")
    assert listed.total == len(expected)
    assert builtins(listed.items) == [{k: v for k, v in row.items() if k != "exact"} for row in expected[:500]]


def test_the_reference_rfm_figures(dataset):
    from app.metrics import customers

    whole = customers.rfm(dataset, Filters(), "GBP")
    assert (whole.reference_date, whole.customers, whole.revenue) == (D(2011, 12, 10), 4338, 8911407.90)
    assert [(s.segment, s.customers, s.revenue) for s in whole.segments] == [
        ("champions", 632, 4339953.67),
        ("loyal_customers", 819, 2346102.10),
        ("potential_loyalists", 481, 499562.56),
        ("new_customers", 42, 16304.94),
        ("promising", 91, 27216.23),
        ("need_attention", 187, 169895.80),
        ("about_to_sleep", 350, 164381.03),
        ("at_risk", 596, 645932.23),
        ("cant_lose", 63, 176157.82),
        ("hibernating", 1077, 525901.52),
    ]
    _, people = customers.scored(dataset, Filters())
    for score in ("r_score", "f_score", "m_score"):  # groups differ by one at most: not NTILE's 868/868/868/867/867
        sizes = people.group_by(score).len().sort(score).get_column("len").to_list()
        assert sizes == [868, 868, 867, 868, 867], score
    ones = people.filter(people["frequency"] == 1).group_by("f_score").len().sort("f_score").rows()
    assert ones == [(1, 868), (2, 625)]  # the 1,493 one-order customers split by customer id
    everyone = customers.rfm_customers(dataset, Filters(), None, 1, 500, "-monetary", "GBP")
    (c12347,) = [
        c
        for page in range(1, 10)
        for c in customers.rfm_customers(dataset, Filters(), "champions", page, 100, "customer_id", "GBP").items
        if c.customer_id == 12347
    ]
    assert (c12347.recency_days, c12347.frequency, c12347.monetary, c12347.rfm_score, c12347.segment) == (
        3,
        7,
        4310.00,
        "555",
        "champions",
    )
    assert everyone.items[0].monetary >= everyone.items[1].monetary


def test_rfm_edges(dataset):
    from app.metrics import customers

    saudi = customers.rfm(dataset, Filters(country="Saudi Arabia"), "GBP")
    (only,) = customers.rfm_customers(dataset, Filters(country="Saudi Arabia"), None, 1, 50, "-monetary", "GBP").items
    assert saudi.customers == 1 and (only.customer_id, only.rfm_score, only.segment) == (12565, "111", "hibernating")
    hong_kong = customers.rfm(dataset, Filters(country="hong kong"), "GBP")
    assert (hong_kong.customers, hong_kong.reference_date) == (0, D(2011, 11, 15))  # guests' last sale, + 1
    assert all(s.customers == 0 and s.customers_pct is None and s.avg_monetary is None for s in hong_kong.segments)
    nothing = customers.rfm(dataset, Filters(start=D(2012, 1, 1), end=D(2012, 1, 31)), "GBP")
    assert (nothing.customers, nothing.reference_date, len(nothing.segments)) == (0, None, 10)


@pytest.mark.parametrize(
    "sort",
    [
        "-monetary",
        "monetary",
        "frequency",
        "-frequency",
        "recency_days",
        "-recency_days",
        "customer_id",
        "-customer_id",
    ],
)
def test_rfm_customer_lists_are_ordered_and_paged(dataset, reference, sort):
    from app.metrics import customers

    flt = Filters(start=D(2011, 6, 1), end=D(2011, 11, 30))
    _, expected = reference.rfm_customers(flt.start, flt.end)
    expected = [row for row in expected if row["segment"] == "at_risk"]
    column = sort.removeprefix("-")
    expected.sort(key=lambda row: row["customer_id"])  # ties by customer id ascending, whichever way
    expected.sort(key=lambda row: row[column], reverse=sort.startswith("-"))
    if column == "customer_id":
        expected.sort(key=lambda row: row["customer_id"], reverse=sort.startswith("-"))
    pages = [customers.rfm_customers(dataset, flt, "at_risk", page, 37, sort, "GBP") for page in (1, 2, 3)]
    assert pages[0].total == len(expected) and pages[0].pages == -(-len(expected) // 37)
    got = [c.customer_id for page in pages for c in page.items]
    assert got == [row["customer_id"] for row in expected[: 3 * 37]]


def test_an_unknown_segment_lists_the_ten(dataset):
    from app.metrics import customers

    with pytest.raises(customers.UnknownSegment) as raised:
        customers.rfm_customers(dataset, Filters(), "vip", 1, 50, "-monetary", "GBP")
    assert raised.value.status_code == 400
    assert all(name in str(raised.value) for name in customers.SEGMENTS)


@pytest.mark.parametrize(
    ("customer", "start", "end", "country"),
    [
        (12347, None, None, None),  # a champion, in Iceland
        (17841, D(2011, 1, 1), D(2011, 6, 30), None),  # the most orders, half a year
        (12370, None, None, "cyprus"),  # bought in two countries: one of them (R3)
        (14911, D(2011, 11, 1), D(2011, 11, 30), "EIRE"),
    ],
)
async def test_a_customer_page(dataset, reference, customer, start, end, country):
    from app.metrics import views

    flt = dict(start=start, end=end, country=country)
    ours = builtins(await views.CUSTOMER.fetch(dataset, views.CustomerParams(customer_id=str(customer), **flt), "GBP"))
    expected = reference.customer(customer, start, end, country)
    for name, value in expected.items():
        assert ours[name] == builtins(value), name
    _, people = reference.rfm_customers(start, end, country)
    (theirs,) = [{k: v for k, v in p.items() if k != "exact"} for p in people if p["customer_id"] == customer]
    assert ours["rfm"] == theirs
    assert sum(round(m["revenue"] * 100) for m in ours["months"]) == pytest.approx(ours["revenue"] * 100, abs=13)


async def test_unknown_customers_and_guests(dataset):
    from app.metrics import customers, views

    for missing in ("99999", "abc", "0", "1" * 30):
        with pytest.raises(customers.UnknownCustomer) as raised:
            await views.CUSTOMER.fetch(dataset, views.CustomerParams(customer_id=missing), "GBP")
        assert raised.value.status_code == 404 and repr(missing) in str(raised.value)
    # a guest's sale is nobody's: no customer is made of the null id, and none has guest revenue
    _, people = customers.scored(dataset, Filters(country="Hong Kong"))
    assert people.is_empty()
    whole = customers.rfm(dataset, Filters(), "GBP")
    kpis = analytics.kpis(dataset, Filters(), "GBP")
    assert round(kpis.revenue - whole.revenue, 2) == 1744214.58  # exactly the guests' revenue is left out
    # a customer known elsewhere but not in the country: zeros, not a 404
    away = await views.CUSTOMER.fetch(dataset, views.CustomerParams(customer_id="12347", country="France"), "GBP")
    assert (away.orders, away.revenue, away.rfm, away.countries) == (0, 0, None, ["Iceland"])


@pytest.mark.parametrize(
    ("customer", "q", "sort", "page", "combo"),
    [
        (12347, None, "invoice_date", 1, "everything"),
        (17841, None, "invoice_date", 20, "everything"),
        (17841, "heart", "-line_revenue", 1, "everything"),
        (14911, None, "-invoice_date", 2, "a month"),
        (12370, None, "invoice_date", 1, "everything"),
        (99999, None, "invoice_date", 1, "everything"),
    ],
)
async def test_the_transactions_of_one_customer(dataset, reference, customer, q, sort, page, combo):
    start, end, country = COMBOS[combo]
    ours = builtins(await lines.page(dataset, filters(combo), q, page, 50, sort=sort, customer=customer))
    assert ours.pop("next_after") is None
    assert ours == builtins(reference.page(page, 50, q, start, end, country, sort=sort, customer=customer))
    streamed = [line async for chunk in lines.stream(dataset, filters(combo), q, sort, customer) for line in chunk]
    assert len(streamed) == ours["total"]


@pytest.mark.parametrize(("q", "combo"), [("12347", "everything"), ("17841", "a month"), ("536365", "everything")])
async def test_a_search_for_a_customer_id_matches_it_exactly(dataset, reference, q, combo):
    start, end, country = COMBOS[combo]
    ours = builtins(await lines.page(dataset, filters(combo), q, 1, 100))
    del ours["next_after"]
    assert ours == builtins(reference.page(1, 100, q, start, end, country))
    if q == "12347":
        assert ours["total"] == 182 and all(line["customer_id"] == 12347 for line in ours["items"])


# -- products (F5), pairs (F6), a product's page (issue 16) -----------------------------------

PRODUCT_COMBOS = [
    (None, None, None),  # everything
    (D(2011, 3, 1), D(2011, 3, 31), None),  # a month
    (D(2011, 7, 1), D(2011, 9, 30), None),  # a quarter
    (None, None, "germany"),  # a country, any case
    (None, None, "Saudi Arabia"),  # few baskets
    (D(2011, 11, 1), D(2011, 11, 30), "France"),
    (D(2012, 1, 1), D(2012, 1, 31), None),  # no sales
    (D(2010, 12, 24), D(2011, 1, 3), None),  # the shop closed: no sales either
]


def _products(dataset, by="revenue", order="desc", limit=10, min_units=0, start=None, end=None, country=None):
    from app.metrics import products

    answer = builtins(products.products(dataset, Filters(start, end, country), by, order, limit, min_units, "GBP"))
    for name in ("currency", "by", "order", "limit", "min_units"):
        del answer[name]
    return answer


@pytest.mark.parametrize(("start", "end", "country"), PRODUCT_COMBOS)
@pytest.mark.parametrize(
    ("by", "order", "limit", "min_units"),
    [  # each `by` in both orders is checked on the full data below
        ("units_sold", "asc", 1, 0),
        ("customers", "desc", 100, 0),
        ("return_rate_pct", "desc", 10, 100),
    ],
)
def test_products(dataset, reference, start, end, country, by, order, limit, min_units):
    ours = _products(dataset, by, order, limit, min_units, start, end, country)
    assert ours == builtins(reference.products(by, order, limit, min_units, start, end, country))


@pytest.mark.parametrize("by", ["revenue", "units_sold", "orders", "customers", "return_rate_pct"])
@pytest.mark.parametrize("order", ["desc", "asc"])
def test_products_every_order_on_the_full_data(dataset, reference, by, order):
    assert _products(dataset, by, order, 100) == builtins(reference.products(by, order, 100))


def test_the_reference_product_figures(dataset, reference):
    whole = _products(dataset, limit=3)
    assert (whole["products"], whole["revenue"]) == (3798, 10271433.06)
    cakestand, birdie, heart = whole["items"]
    assert cakestand == {
        "rank": 1,
        "stock_code": "22423",
        "description": "REGENCY CAKESTAND 3 TIER",
        "revenue": 174484.74,
        "units_sold": 13879,
        "orders": 1988,
        "customers": 881,
        "revenue_share_pct": 1.7,
        "returned_units": 857,
        "returned_revenue": 9722.55,
        "return_rate_pct": 6.17,
    }
    assert (birdie["stock_code"], birdie["description"], birdie["revenue"], birdie["return_rate_pct"]) == (
        "23843",
        "PAPER CRAFT , LITTLE BIRDIE",
        168469.60,
        100.0,
    )
    assert (heart["stock_code"], heart["revenue"]) == ("85123A", 106471.28)  # with its 85123a lines
    lower = reference.query("SELECT sum(revenue) FROM sales WHERE stock_code = '85123a'")[0][0]
    assert lower > 0  # the twin exists, and is merged rather than listed
    every = _products(dataset, limit=100, min_units=0, by="revenue")
    codes = {row["stock_code"] for row in _products(dataset, "units_sold", "asc", 100)["items"]} | {
        row["stock_code"] for row in every["items"]
    }
    assert not codes & {"POST", "DOT", "M", "BANK CHARGES", "AMAZONFEE", "C2", "D", "S", "CRUK", "PADS", "B"}
    assert not any(code.startswith("GIFT_") or code != code.upper() for code in codes)
    # non-product lines are not products, but they are revenue: the KPIs less the products
    kpis = analytics.kpis(dataset, Filters(), "GBP")
    others = reference.query(f"SELECT sum(revenue) FROM sales WHERE NOT ({reference._is_product()})")[0][0]
    assert kpis.revenue - whole["revenue"] == pytest.approx(float(others), abs=0.01)  # two figures rounded


def test_return_rates_may_pass_100_and_returns_only_products_are_left_out(dataset, reference):
    rates = _products(dataset, "return_rate_pct", "desc", 100, 0, D(2011, 12, 1), D(2011, 12, 9))
    assert rates["items"][0]["return_rate_pct"] > 100  # a December return of an earlier sale
    listed = {
        row["stock_code"]
        for row in _products(dataset, "revenue", "asc", 100, 0, D(2011, 12, 1), D(2011, 12, 9))["items"]
    }
    only_returned = reference.query(
        """SELECT DISTINCT upper(stock_code) FROM cancels WHERE d BETWEEN '2011-12-01' AND '2011-12-09'
           EXCEPT SELECT upper(stock_code) FROM sales WHERE d BETWEEN '2011-12-01' AND '2011-12-09'"""
    )
    assert only_returned and not listed & {code for (code,) in only_returned}


@pytest.mark.parametrize(
    ("start", "end", "country"),
    [
        (None, None, None),
        (D(2011, 11, 1), D(2011, 11, 30), None),
        (None, None, "germany"),
        (D(2011, 4, 1), D(2011, 6, 30), "France"),
        (None, None, "Saudi Arabia"),  # one basket: no pairs at all
        (D(2012, 1, 1), D(2012, 1, 31), None),
    ],
)
def test_pairs(dataset, reference, start, end, country):
    from app.metrics import products

    ours = builtins(products.product_pairs(dataset, Filters(start, end, country), 10, "GBP"))
    assert ours.pop("currency") == "GBP" and ours.pop("limit") == 10
    assert ours == builtins(reference.pairs(10, start, end, country))


def test_the_reference_pairs_and_the_pruning(dataset):
    from app.metrics import products

    whole = products.product_pairs(dataset, Filters(), 10, "GBP")
    assert whole.baskets == 19773
    top = whole.items[0]
    assert (top.stock_code_a, top.stock_code_b, top.orders, top.orders_with_a, top.orders_with_b) == (
        "22386",
        "85099B",
        825,
        1218,
        2089,
    )
    assert (top.support_pct, top.confidence_a_to_b_pct, top.confidence_b_to_a_pct, top.lift) == (
        4.17,
        67.73,
        39.49,
        6.41,
    )
    assert (whole.items[1].stock_code_a, whole.items[1].orders, whole.items[1].lift) == ("22697", 767, 14.06)
    assert (whole.items[2].stock_code_a, whole.items[2].stock_code_b, whole.items[2].orders) == ("21931", "85099B", 724)
    # the two passes give exactly the brute force's top pairs, at every limit, on a small window
    window = Filters(start=D(2011, 2, 1), end=D(2011, 2, 14))
    items = products.baskets_of(dataset, window)
    brute = products._top(products.naive_pair_counts(items), 10**6)
    assert products._top(products._pair_counts(items), 10**6).rows() == brute.rows()  # the join's counts (wide)
    baskets = products.Baskets.of(dataset, analytics.shape_in(dataset, "baskets", window))
    for limit in (1, 3, 10, 25, 100):
        pruned, _ = products.top_pairs(baskets, limit)
        assert pruned.rows() == brute.head(limit).rows(), limit


@pytest.mark.parametrize("block", [1, 7, 1000])
def test_the_matrix_counts_in_blocks_of_baskets_equal_the_brute_force(dataset, monkeypatch, block):
    from app.metrics import products

    items = products.baskets_of(dataset, Filters(start=D(2011, 3, 1), end=D(2011, 3, 7)))
    chosen = items.group_by("product").len().sort(["len", "product"], descending=[True, False]).head(60)
    items = items.filter(pl.col("product").is_in(chosen.get_column("product").implode()))
    monkeypatch.setattr(products, "DENSE_BYTES", 4 * 60 * block)  # `block` baskets per product
    brute = products._top(products.naive_pair_counts(items), 10**6)
    assert products._top(products._pair_counts(items), 10**6).rows() == brute.rows() and brute.height > 100


@pytest.mark.parametrize(
    ("code", "start", "end", "country"),
    [
        ("22423", None, None, None),
        ("85123a", D(2011, 1, 1), D(2011, 6, 30), None),  # any case: the key is upper-cased
        ("23166", None, None, "united kingdom"),
        ("85099B", D(2011, 11, 1), D(2011, 11, 30), "France"),
    ],
)
def test_a_product_page(dataset, reference, code, start, end, country):
    from app.metrics import products

    ours = builtins(products.product(dataset, Filters(start, end, country), code, "GBP"))
    expected = reference.product(code, start, end, country)
    for name, value in expected.items():
        assert ours[name] == builtins(value), name
    assert (
        ours["is_product"] and ours["description"] == reference.product_descriptions(start, end, country)[code.upper()]
    )
    assert [
        (p["stock_code_a"] if p["stock_code_b"] == code.upper() else p["stock_code_b"], p["orders"])
        for p in ours["bought_with"]
    ] == [tuple(row) for row in reference.bought_with(code, 10, start, end, country)]
    assert sum(point["units_sold"] for point in ours["series"]) == ours["units_sold"]


def test_a_fee_code_and_an_unknown_code(dataset, reference):
    from app.metrics import products

    post = products.product(dataset, Filters(), "post", "GBP")
    revenue = reference.query("SELECT sum(revenue) FROM sales WHERE upper(stock_code) = 'POST'")[0][0]
    assert (post.is_product, post.revenue, post.bought_with) == (False, float(round(revenue, 2)), [])
    with pytest.raises(products.UnknownProduct) as raised:
        products.product(dataset, Filters(), "NO-SUCH", "GBP")
    assert raised.value.status_code == 404 and "'NO-SUCH'" in str(raised.value)


def test_the_country_pages_top_products_are_products(dataset):
    for name in dataset.countries.values():
        detail = analytics.country_detail(dataset, Filters(), name, "GBP")
        assert not {p.stock_code for p in detail.top_products} & {"POST", "DOT", "M", "C2", "D", "S", "PADS"}, name
