"""Every figure of METRICS.md as a pure function of the data shapes and the filters.

Nothing here knows HTTP, Redis or the database. The figures come from the shapes the
importer keeps (app/ingest/shapes.py), never from the raw lines: the invoice grain (one row
per invoice) for KPIs, series and countries, the product grain (product x day x country)
for top products. Both are sorted by day, so a date range is a zero-copy slice found by
binary search.

Money is summed exactly: prices have at most 3 decimals, so every amount is held as an
integer number of thousandths (`*_milli`) and only the final figures are rounded, half away
from zero, to 2 places.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, NamedTuple, TypeVar

import numpy as np
import polars as pl

from app.lib.errors import AppError
from app.lib.lists import gathered
from app.metrics.schemas import (
    Change,
    Comparison,
    CountryDetail,
    CountryRow,
    Filters,
    Freq,
    Kpis,
    Order,
    PeriodKpis,
    Product,
    RankBy,
    Series,
    SeriesPoint,
    TopCountries,
)

T = TypeVar("T")

FREQS: tuple[Freq, ...] = ("day", "week", "month", "year")
RANK_BY: tuple[RankBy, ...] = ("revenue", "units_sold", "orders", "customers")
ORDERS: tuple[Order, ...] = ("desc", "asc")
LIMIT_RANGE = (1, 100)
SIZE_RANGE = (1, 500)
MAX_PAGE = 10**9
TOP_PRODUCTS = 10

# Postage, fees and vouchers: they count in revenue but are never listed as products.
NOT_PRODUCTS = frozenset({"POST", "DOT", "M", "BANK CHARGES", "AMAZONFEE", "C2", "D", "S", "CRUK", "PADS", "B"})


def not_a_product(key: pl.Expr) -> pl.Expr:
    """R4: a product key (an upper-cased stock code) of postage, a fee or a voucher."""
    return key.is_in(list(NOT_PRODUCTS)) | key.str.starts_with("GIFT_")


def is_product_key(key: str) -> bool:
    """R4 for one key (the same rule as `not_a_product`, negated)."""
    return key not in NOT_PRODUCTS and not key.startswith("GIFT_")


# The shapes as the loader reads them (app/ingest/shapes.py names each column).
INVOICE_SCHEMA: dict[str, pl.DataType] = {
    "invoice_no": pl.String(),
    "invoice_date": pl.Datetime("us"),
    "day": pl.Date(),
    "country": pl.String(),
    "customer_id": pl.Int64(),
    "cancelled": pl.Boolean(),
    "lines": pl.Int64(),
    "units": pl.Int64(),
    "revenue_milli": pl.Int64(),
    "products": pl.List(pl.Int32()),  # the basket: product_keys ids as stored (Shapes.invoices: their ranks)
}
RETURN_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "country": pl.String(),
    "product": pl.String(),
    "lines": pl.Int64(),
    "units": pl.Int64(),
    "revenue_milli": pl.Int64(),
}
KEY_SCHEMA: dict[str, pl.DataType] = {"id": pl.Int32(), "key": pl.String()}
PRODUCT_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "country": pl.String(),
    "product": pl.String(),
    "description": pl.String(),
    "lines": pl.Int64(),
    "units": pl.Int64(),
    "revenue_milli": pl.Int64(),
}


class MetricsError(AppError):
    """A request the figures cannot answer; the message says what to change."""

    status_code = 400


class InvalidParameter(MetricsError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class UnknownCountry(MetricsError):
    status_code = 404

    def __init__(self, country: str) -> None:
        super().__init__(f"unknown country {country!r}: no transaction names it")
        self.country = country


def tag_version(tag: str) -> int:
    """The dataset version a dataset tag (`version.started_at`, app.ingest.service.dataset_tag) names."""
    return int(tag.split(".")[0])


class Shapes(NamedTuple):
    """The shapes as stored (app/ingest/shapes.py), as the loader reads them."""

    invoices: pl.DataFrame  # INVOICE_SCHEMA, but `products` as ranks of the keys (`key_ranks`)
    products: pl.DataFrame  # PRODUCT_SCHEMA
    returns: pl.DataFrame  # RETURN_SCHEMA
    keys: pl.DataFrame  # KEY_SCHEMA


@dataclass(frozen=True)
class Dataset:
    """One dataset version's shapes, prepared once (METRICS.md "Sales lines")."""

    tag: str  # names the dataset version (app.ingest.service.dataset_tag)
    sales: pl.DataFrame  # the sales invoices (one row per invoice with sales lines), by invoice_date
    cancellations: pl.DataFrame  # the cancellation invoices, by day
    products: pl.DataFrame  # the product grain, by day: `code`, and `product` (null for postage, fees, vouchers)
    # `sales`' day, month, country, order_id and customer_id (the same buffers) and each
    # invoice's basket, `products`: the ranks in `keys` of its sales lines' product keys
    baskets: pl.DataFrame
    keys: pl.Series  # every product key, in code-point order: a rank's key
    key_is_product: pl.Series  # per rank, whether its key is a product (R4)
    returns: pl.DataFrame  # the cancellation lines per day, country and `code` (`product` as above), positive
    countries: dict[str, str]  # casefolded name -> stored name, over every stored row
    # what the transactions search matches against: the distinct stock codes and descriptions,
    # lower-cased once, and whether every invoice number is digits only (then a `q` with
    # another character matches no invoice, without looking at a million of them)
    codes: pl.DataFrame  # code, text
    descriptions: pl.DataFrame  # description, text
    numeric_invoices: bool
    # one country's rows of `sales` (and of `products`), cut once on first use: at 50x a
    # filter of the whole grain for one country cost more than the figure itself
    _by_country: dict[tuple[str, str], pl.DataFrame] = field(default_factory=dict, repr=False)
    # aggregates derived from the shapes that several views share (the customers' histories),
    # per name and stored country ("" for all): built once per dataset version, on first use
    _derived: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def derived(self, name: str, country: str | None, build: Callable[[], T]) -> T:
        """The aggregate `name` of this version (of one stored country, or of all), built once."""
        key = (name, country or "")
        found = self._derived.get(key)
        if found is None:  # two threads may both build it: the same value, one kept
            found = self._derived[key] = build()
        return found

    def of_country(self, shape: str, name: str) -> pl.DataFrame:
        """The rows of `shape` ("sales", "products", "baskets" or "returns") of the stored
        country `name`, in order."""
        key = (shape, name)
        rows = self._by_country.get(key)
        if rows is None:
            rows = self._by_country[key] = getattr(self, shape).filter(pl.col("country") == name)
        return rows

    @property
    def version(self) -> int:
        return tag_version(self.tag)

    @property
    def sales_lines(self) -> int:
        return int(self.sales.get_column("lines").sum() or 0)

    def country(self, name: str) -> str:
        """The stored name of a country given in any case; UnknownCountry if there is none."""
        stored = self.countries.get(name.strip().casefold())
        if stored is None:
            raise UnknownCountry(name)
        return stored


def _order_ids(invoices: pl.DataFrame) -> tuple[bool, pl.Expr]:
    """Whether every invoice number is a plain number, and the expression of an invoice's
    integer id: the number itself then (no leading zero), else a dense rank of the numbers.
    Integer ids make the distinct-order counts 4x faster than on the text."""
    plain = bool(invoices.get_column("invoice_no").str.contains(r"^[1-9][0-9]{0,17}$").all())
    number = pl.col("invoice_no")
    return plain, number.cast(pl.Int64) if plain else number.rank("dense").cast(pl.Int64)


def _countries(invoices: pl.DataFrame) -> tuple[list[str], pl.Enum]:
    names = sorted(invoices.get_column("country").unique().to_list())
    return names, pl.Enum(names)


def key_ranks(keys: pl.DataFrame) -> tuple[np.ndarray, pl.Series]:
    """Each stored key id's rank among the keys in code-point order (so a pair's a < b on ranks
    is a < b on the codes), as 16-bit integers while they fit; and the keys by rank."""
    ranked = keys.sort("key")
    ids = ranked.get_column("id").to_numpy()
    kind = np.uint16 if ranked.height <= 2**16 else np.uint32
    lookup = np.zeros(int(ids.max()) + 1 if ranked.height else 1, dtype=kind)
    lookup[ids] = np.arange(ranked.height, dtype=kind)
    return lookup, ranked.get_column("key")


def prepare(shapes: Shapes, tag: str = "0") -> Dataset:
    """The frames the figures read, from the shapes as stored."""
    # the baskets stay out of the casts, filter and sort below (a list column's copies are
    # large): the sales invoices' are gathered once, in their order
    lists, invoices = shapes.invoices.get_column("products"), shapes.invoices.drop("products")
    invoices = invoices.cast({name: kind for name, kind in INVOICE_SCHEMA.items() if name != "products"})
    products = shapes.products.cast(PRODUCT_SCHEMA)  # type: ignore[arg-type]  # Polars' stubs want a narrower mapping type
    _, keys = key_ranks(shapes.keys.cast(KEY_SCHEMA))  # type: ignore[arg-type]
    names, country = _countries(invoices)
    _, order_id = _order_ids(invoices)
    rows = (
        invoices.lazy().with_row_index("row").with_columns(pl.col("country").cast(country), order_id.alias("order_id"))
    )
    # rows already in invoice_date order are not sorted again (a copy of everything)
    in_order = invoices.get_column("invoice_date").is_sorted()
    sales = (
        rows.filter(~pl.col("cancelled") & (pl.col("lines") > 0))
        .with_columns(
            # the period of each series frequency, computed once (weeks start on Monday)
            pl.col("day").dt.truncate("1w").alias("week"),
            pl.col("day").dt.month_start().alias("month"),
            pl.date(pl.col("day").dt.year(), 1, 1).alias("year"),
        )
        .drop("cancelled")
    )
    if not in_order:
        sales = sales.sort("invoice_date", maintain_order=True)
    cancellations = (
        rows.filter(pl.col("cancelled"))
        .select("invoice_no", "day", "country", (-pl.col("revenue_milli")).alias("revenue_milli"))
        .sort("day")
    )
    code = pl.col("product")
    product_rows = (
        products.lazy()
        .with_columns(
            pl.col("country").cast(country),
            code.alias("code"),  # every sales line's key, for the transactions search
            pl.when(not_a_product(code)).then(None).otherwise(code).alias("product"),
        )
        .sort("day")
    )
    return_rows = (
        shapes.returns.cast(RETURN_SCHEMA)  # type: ignore[arg-type]
        .lazy()
        .with_columns(
            pl.col("country").cast(country),
            code.alias("code"),
            pl.when(not_a_product(code)).then(None).otherwise(code).alias("product"),
            -pl.col("units"),
            -pl.col("revenue_milli"),
        )
        .sort("day")
    )
    sales_frame, cancel_frame, product_frame, return_frame = pl.collect_all(
        [sales, cancellations, product_rows, return_rows]
    )
    baskets = gathered(lists, sales_frame.get_column("row").to_numpy())  # (ranks already: Shapes.invoices)
    sales_frame = sales_frame.drop("row")

    def texts(column: str) -> pl.DataFrame:
        distinct = product_frame.select(pl.col(column).drop_nulls().unique())
        return distinct.with_columns(pl.col(column).str.to_lowercase().alias("text"))

    return Dataset(
        tag=tag,
        sales=sales_frame,
        cancellations=cancel_frame,
        products=product_frame,
        baskets=sales_frame.select("day", "month", "country", "order_id", "customer_id").with_columns(baskets),
        keys=keys,
        key_is_product=~keys.to_frame().select(not_a_product(pl.col("key"))).to_series(),
        returns=return_frame,
        countries={name.casefold(): name for name in names},
        codes=texts("code"),
        descriptions=texts("description"),
        numeric_invoices=bool(sales_frame.get_column("invoice_no").str.contains(r"^[0-9]*$").all()),
    )


# -- filters -----------------------------------------------------------------------------


def day_slice(frame: pl.DataFrame, start: date | None, end: date | None) -> pl.DataFrame:
    """The rows of a frame sorted by `day` inside [start, end]: a zero-copy slice."""
    if start is None and end is None:
        return frame
    days = frame.get_column("day")
    lo = 0 if start is None else int(days.search_sorted(start, side="left"))
    hi = frame.height if end is None else int(days.search_sorted(end, side="right"))
    return frame.slice(lo, max(hi - lo, 0))


def check_dates(filters: Filters) -> None:
    if filters.start is not None and filters.end is not None and filters.start > filters.end:
        raise InvalidParameter(
            "start", f"start ({filters.start.isoformat()}) is after end ({filters.end.isoformat()}): swap them"
        )


def _scope(ds: Dataset, filters: Filters) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The sales and cancellation lines inside the filters."""
    check_dates(filters)
    cancellations = day_slice(ds.cancellations, filters.start, filters.end)
    if filters.country is None:
        return day_slice(ds.sales, filters.start, filters.end), cancellations
    name = ds.country(filters.country)
    sales = day_slice(ds.of_country("sales", name), filters.start, filters.end)
    return sales, cancellations.filter(pl.col("country") == name)


def in_range(name: str, value: int, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise InvalidParameter(name, f"{name} must be between {low} and {high}, not {value}")


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidParameter(name, f"{name} must be one of {', '.join(allowed)}, not {value!r}")


# -- exact rounding --------------------------------------------------------------------


def ratio2(numerator: int, denominator: int) -> float:
    """numerator / denominator rounded half away from zero to 2 places, computed on integers."""
    negative = (numerator < 0) != (denominator < 0)
    n, d = abs(numerator) * 100, abs(denominator)
    cents = (2 * n + d) // (2 * d)
    return (-cents if negative else cents) / 100


def money(milli: int) -> float:
    return ratio2(milli, 1000)


# -- KPIs ------------------------------------------------------------------------------

# The aggregates behind KPIs, series and country rows, over invoice rows; per frame and per group.
_TOTALS = (
    pl.col("revenue_milli").sum().alias("revenue"),
    pl.col("units").sum().alias("units"),
    pl.col("order_id").n_unique().alias("orders"),
    pl.col("customer_id").drop_nulls().n_unique().alias("customers"),
)
_SPAN = (pl.col("invoice_date").min().alias("first"), pl.col("invoice_date").max().alias("last"))
_CANCELLED = (
    pl.col("invoice_no").n_unique().alias("cancelled_orders"),
    pl.col("revenue_milli").sum().alias("cancelled_revenue"),
)
_SERIES = (
    pl.col("revenue_milli").sum().alias("revenue"),
    pl.col("units").sum().alias("units"),
    pl.col("order_id").n_unique().alias("orders"),
)


def _make_kpis(totals: dict | None, cancelled: dict | None, currency: str) -> Kpis:
    totals, cancelled = totals or {}, cancelled or {}
    revenue, units, orders = int(totals.get("revenue") or 0), int(totals.get("units") or 0), totals.get("orders") or 0
    return Kpis(
        currency=currency,
        revenue=money(revenue),
        units_sold=units,
        orders=orders,
        customers=totals.get("customers") or 0,
        average_order_value=ratio2(revenue, orders * 1000) if orders else None,
        units_per_order=ratio2(units, orders) if orders else None,
        cancelled_orders=cancelled.get("cancelled_orders") or 0,
        cancelled_revenue=money(int(cancelled.get("cancelled_revenue") or 0)),
        first_sale=totals.get("first"),
        last_sale=totals.get("last"),
    )


def kpis(ds: Dataset, filters: Filters, currency: str, compare: str = "none") -> Kpis:
    _one_of("compare", compare, COMPARES)
    sales, cancellations = _scope(ds, filters)
    totals = sales.select(*_TOTALS, *_SPAN).row(0, named=True)
    current = _make_kpis(totals, cancellations.select(*_CANCELLED).row(0, named=True), currency)
    if compare != "none":
        current.comparison = _comparison(ds, filters, current, compare)
    return current


# -- date presets -------------------------------------------------------------------------


def presets(last: date) -> list[tuple[str, str, date | None, date | None]]:
    """The filter form's date presets as (key, label, start, end), counted back from `last`,
    the last day with sales (the data is history: its "today"). "All time" sets no dates."""
    month = last.replace(day=1)
    previous_month_end = month - timedelta(days=1)
    quarter = date(last.year, 3 * ((last.month - 1) // 3) + 1, 1)
    return [
        ("7d", "Last 7 days", last - timedelta(days=6), last),
        ("30d", "Last 30 days", last - timedelta(days=29), last),
        ("90d", "Last 90 days", last - timedelta(days=89), last),
        ("month", "This month", month, last),
        ("last-month", "Last month", previous_month_end.replace(day=1), previous_month_end),
        ("quarter", "This quarter", quarter, last),
        ("year", "This year", date(last.year, 1, 1), last),
        ("last-year", "Last year", date(last.year - 1, 1, 1), date(last.year - 1, 12, 31)),
        ("all", "All time", None, None),
    ]


def last_sale_day(ds: Dataset) -> date | None:
    return ds.sales.get_column("day").max()  # type: ignore[return-value]  # a Date column's max is a date


# -- comparison with an earlier window (ANALYTICS.md F1) ---------------------------------

COMPARES = ("none", "previous_period", "previous_year")
# the fields compared, and whether each is an amount (2 places) or a count (a whole number)
_COMPARED = {
    "revenue": True,
    "units_sold": False,
    "orders": False,
    "customers": False,
    "average_order_value": True,
    "units_per_order": True,
    "cancelled_orders": False,
    "cancelled_revenue": True,
}


def previous_window(start: date, end: date, compare: str) -> tuple[date, date]:
    """The window a comparison reads: the `L` days before `start`, or both ends a year back
    (29 February becoming the 28th). Never clipped by the current window's dates."""
    if compare == "previous_period":
        length = (end - start).days + 1
        return start - timedelta(days=length), start - timedelta(days=1)
    return _year_back(start), _year_back(end)


def _year_back(day: date) -> date:
    return day.replace(year=day.year - 1, day=28 if (day.month, day.day) == (2, 29) else day.day)


def _comparison(ds: Dataset, filters: Filters, current: Kpis, compare: str) -> Comparison | None:
    """The comparison, or None when no window can be derived (dates omitted and no sales)."""
    start, end = filters.start, filters.end
    if start is None or end is None:  # R1: an omitted date is the first or last sale day in the country
        in_country, _ = _scope(ds, Filters(country=filters.country))
        days = in_country.select(pl.col("day").min(), pl.col("day").max().alias("last")).row(0)
        if days[0] is None or (start or days[0]) > (end or days[1]):
            return None
        start, end = start or days[0], end or days[1]
    previous_start, previous_end = previous_window(start, end, compare)
    before = kpis(ds, Filters(start=previous_start, end=previous_end, country=filters.country), current.currency)
    change = {}
    for name, amount in _COMPARED.items():
        now, then = getattr(current, name), getattr(before, name)
        delta = None if now is None or then is None else (round(now - then, 2) if amount else now - then)
        pct = None if delta is None or not then else round(100 * delta / then, 2)
        change[name] = Change(abs=delta, pct=pct)
    fields = {name: getattr(before, name) for name in PeriodKpis.__struct_fields__}
    return Comparison(
        mode=compare,  # type: ignore[arg-type]  # checked against COMPARES
        start=start,
        end=end,
        previous_start=previous_start,
        previous_end=previous_end,
        previous=PeriodKpis(**fields),
        change=change,
    )


# -- time series -----------------------------------------------------------------------


def _next_period(period: date, freq: str) -> date:
    if freq == "day":
        return period + timedelta(days=1)
    if freq == "week":
        return period + timedelta(weeks=1)
    if freq == "month":
        return date(period.year + 1, 1, 1) if period.month == 12 else date(period.year, period.month + 1, 1)
    return date(period.year + 1, 1, 1)


def _points(
    rows: list[tuple[date, int, int, int]], freq: str, window: tuple[date, date] | None = None
) -> list[SeriesPoint]:
    """Series points from (period, revenue, units, orders) rows sorted by period, gaps filled with
    zeros; a period the `window` (first and last day) covers only in part is marked partial."""
    if not rows:
        return []
    known = {row[0]: row for row in rows}
    points: list[SeriesPoint] = []
    period, last, previous = rows[0][0], rows[-1][0], None
    while period <= last:
        _, revenue, units, orders = known.get(period, (period, 0, 0, 0))
        growth = ratio2((revenue - previous) * 100, previous) if previous else None
        following = _next_period(period, freq)
        partial = window is not None and (period < window[0] or following - timedelta(days=1) > window[1])
        points.append(
            SeriesPoint(
                period=period,
                revenue=money(revenue),
                units_sold=units,
                orders=orders,
                growth_pct=growth,
                partial=partial,
            )
        )
        previous = revenue
        period = following
    return points


def window(ds: Dataset, filters: Filters) -> tuple[date, date] | None:
    """R1: the filters' dates, an omitted one being the first or last sale day in the country."""
    if filters.start is not None and filters.end is not None:
        return filters.start, filters.end
    sales = ds.sales if filters.country is None else ds.of_country("sales", ds.country(filters.country))
    first, last = sales.select(pl.col("day").min(), pl.col("day").max().alias("last")).row(0)
    if first is None:
        return None
    return filters.start or first, filters.end or last


def series(ds: Dataset, filters: Filters, freq: str, currency: str) -> Series:
    _one_of("freq", freq, FREQS)
    sales, _ = _scope(ds, filters)
    rows = sales.group_by(pl.col(freq).alias("period")).agg(*_SERIES).sort("period").rows()
    points = _points(rows, freq, window(ds, filters))
    return Series(currency=currency, freq=freq, points=points)  # type: ignore[arg-type]  # freq was checked against FREQS above


# -- countries -------------------------------------------------------------------------

_SORT_COLUMN = {"revenue": "revenue", "units_sold": "units", "orders": "orders", "customers": "customers"}


def _by_country(sales: pl.DataFrame, by: str = "revenue", order: str = "desc", span: bool = False) -> pl.DataFrame:
    """One row per country with sales, ordered by `by`, ties by country name ascending."""
    return (
        sales.group_by("country")
        .agg(*_TOTALS, *(_SPAN if span else ()))
        .with_columns(pl.col("country").cast(pl.String))
        .sort([_SORT_COLUMN[by], "country"], descending=[order == "desc", False])
    )


def top_countries(ds: Dataset, filters: Filters, by: str, limit: int, order: str, currency: str) -> TopCountries:
    _one_of("by", by, RANK_BY)
    _one_of("order", order, ORDERS)
    in_range("limit", limit, LIMIT_RANGE)
    sales, _ = _scope(ds, filters)
    ranked = _by_country(sales, by, order)
    total = int(ranked.get_column("revenue").sum() or 0)
    items = [
        CountryRow(
            rank=rank,
            country=country,
            revenue=money(revenue),
            units_sold=units,
            orders=orders,
            customers=customers,
            revenue_share_pct=ratio2(revenue * 100, total) if total else None,
        )
        for rank, (country, revenue, units, orders, customers) in enumerate(ranked.head(limit).iter_rows(), start=1)
    ]
    return TopCountries(currency=currency, by=by, order=order, limit=limit, items=items)  # type: ignore[arg-type]  # by and order were checked against RANK_BY and ORDERS above


def _top_products(rows: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The top products by revenue (ties by code) within each group of `keys`, with their
    description, from product grain rows."""
    products = rows.filter(pl.col("product").is_not_null())
    ranked = products.group_by(*keys, "product").agg(
        pl.col("revenue_milli").sum().alias("revenue"), pl.col("units").sum().alias("units")
    )
    ranked = ranked.sort([*keys, "revenue", "product"], descending=[*(False for _ in keys), True, False])
    top = ranked.group_by(keys, maintain_order=True).head(TOP_PRODUCTS) if keys else ranked.head(TOP_PRODUCTS)
    described = descriptions_of(products.join(top.select(*keys, "product"), on=[*keys, "product"], how="semi"), keys)
    return top.join(described, on=[*keys, "product"], how="left", maintain_order="left")


def descriptions_of(rows: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """R4: each product's description (within each group of `keys`), from product grain rows:
    its most frequent one among them, ties to the alphabetically first (code-point order)."""
    return (
        rows.filter(pl.col("description").is_not_null())
        .group_by(*keys, "product", "description")
        .agg(pl.col("lines").sum())
        .sort([*keys, "product", "lines", "description"], descending=[*(False for _ in keys), False, True, False])
        .group_by(*keys, "product", maintain_order=True)
        .first()
        .drop("lines")
    )


def top_products(ds: Dataset, filters: Filters) -> list[Product]:
    """The ten best-selling products in the filters (postage, fees and vouchers excluded)."""
    return [_product(row) for row in _top_products(shape_in(ds, "products", filters), []).iter_rows(named=True)]


def shape_in(ds: Dataset, shape: str, filters: Filters) -> pl.DataFrame:
    """A shape's rows in the filters (by day; one country's cut, held, with a country)."""
    check_dates(filters)
    rows = getattr(ds, shape) if filters.country is None else ds.of_country(shape, ds.country(filters.country))
    return day_slice(rows, filters.start, filters.end)


def _product(row: dict) -> Product:
    return Product(
        stock_code=row["product"],
        description=row["description"],
        revenue=money(row["revenue"]),
        units_sold=row["units"],
    )


def country_detail(
    ds: Dataset, filters: Filters, country_name: str, currency: str, compare: str = "none"
) -> CountryDetail:
    """One country's figures in the date filters (a `country` filter is replaced by the name);
    its KPIs compared with an earlier window if asked (F1)."""
    name = ds.country(country_name)
    detail = _details(ds, filters, [name], currency)[0]
    if compare != "none":
        in_country = Filters(start=filters.start, end=filters.end, country=name)
        detail.kpis.comparison = kpis(ds, in_country, currency, compare).comparison
    return detail


def country_details(
    ds: Dataset, filters: Filters, currency: str, names: list[str] | None = None
) -> list[CountryDetail]:
    """The detail of these countries (default: every one; what a refresh precomputes), from one
    group-by per figure."""
    stored = list(ds.countries.values()) if names is None else [ds.country(name) for name in names]
    return _details(ds, filters, stored, currency)


def _details(ds: Dataset, filters: Filters, names: list[str], currency: str) -> list[CountryDetail]:
    dates = Filters(start=filters.start, end=filters.end)
    sales, cancellations = _scope(ds, dates)
    products = shape_in(ds, "products", dates)
    ranked = _by_country(sales, span=True)  # rank among all countries, by revenue
    if len(names) < len(ds.countries):
        sales = sales.filter(pl.col("country").is_in(names))
        cancellations = cancellations.filter(pl.col("country").is_in(names))
        products = products.filter(pl.col("country").is_in(names))

    def by_country(frame: pl.DataFrame) -> dict[str, list[dict]]:
        groups: dict[str, list[dict]] = {}
        for row in frame.with_columns(pl.col("country").cast(pl.String)).iter_rows(named=True):
            groups.setdefault(row.pop("country"), []).append(row)
        return groups

    totals = {row["country"]: (rank, row) for rank, row in enumerate(ranked.iter_rows(named=True), start=1)}
    cancelled = by_country(cancellations.group_by("country").agg(*_CANCELLED))
    months = by_country(sales.group_by("country", "month").agg(*_SERIES).sort("country", "month"))
    top = by_country(_top_products(products, ["country"]))
    # each country's window (R1): the dates, or its own first and last sale day (one group-by)
    days = ds.of_country("sales", names[0]) if len(names) == 1 else ds.sales  # one country: its cut, held
    spans = {
        str(country): (filters.start or first, filters.end or last)
        for country, first, last in days.group_by("country")
        .agg(pl.col("day").min().alias("first"), pl.col("day").max().alias("last"))
        .iter_rows()
    }
    details = []
    for name in names:
        rank, row = totals.get(name, (None, None))
        series_rows = [(m["month"], m["revenue"], m["units"], m["orders"]) for m in months.get(name, [])]
        details.append(
            CountryDetail(
                country=name,
                rank=rank,
                kpis=_make_kpis(row, cancelled[name][0] if name in cancelled else None, currency),
                series=_points(series_rows, "month", spans.get(name)),
                top_products=[_product(p) for p in top.get(name, [])],
            )
        )
    return details
