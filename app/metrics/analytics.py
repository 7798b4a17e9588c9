"""Every figure of METRICS.md as a pure function of one prepared Polars frame and the filters.

Nothing here knows HTTP, Redis or the database. Money is summed exactly: prices have at
most 3 decimals, so every amount is held as an integer number of thousandths (`*_milli`)
and only the final figures are rounded, half away from zero, to 2 places.

The sales frame is sorted by InvoiceDate then import order, so a date range is a
zero-copy slice found by binary search, and a transactions page is a slice (or a gather
of `size` rows), whatever its depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from app.lib.errors import AppError
from app.metrics.schemas import (
    CountryDetail,
    CountryRow,
    Filters,
    Freq,
    Kpis,
    Line,
    Order,
    Page,
    Product,
    RankBy,
    Series,
    SeriesPoint,
    TopCountries,
)

FREQS: tuple[Freq, ...] = ("day", "week", "month", "year")
RANK_BY: tuple[RankBy, ...] = ("revenue", "units_sold", "orders", "customers")
ORDERS: tuple[Order, ...] = ("desc", "asc")
LIMIT_RANGE = (1, 100)
SIZE_RANGE = (1, 500)
MAX_PAGE = 10**9
TOP_PRODUCTS = 10

# Postage, fees and vouchers: they count in revenue but are never listed as products.
NOT_PRODUCTS = frozenset({"POST", "DOT", "M", "BANK CHARGES", "AMAZONFEE", "C2", "D", "S", "CRUK", "PADS", "B"})

RAW_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "invoice_no": pl.String(),
    "stock_code": pl.String(),
    "description": pl.String(),
    "quantity": pl.Int64(),
    "invoice_date": pl.Datetime("us"),
    "unit_price": pl.Float64(),
    "customer_id": pl.Int64(),
    "country": pl.String(),
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


@dataclass(frozen=True)
class Dataset:
    """One dataset version, cleaned once (METRICS.md "Sales lines")."""

    tag: str  # names the dataset version (app.ingest.service.dataset_tag)
    sales: pl.DataFrame  # the sales lines, sorted by invoice_date, then import order
    cancellations: pl.DataFrame  # lines whose InvoiceNo starts with C, sorted by day
    countries: dict[str, str]  # casefolded name -> stored name, over every stored row

    @property
    def version(self) -> int:
        return tag_version(self.tag)

    def country(self, name: str) -> str:
        """The stored name of a country given in any case; UnknownCountry if there is none."""
        stored = self.countries.get(name.strip().casefold())
        if stored is None:
            raise UnknownCountry(name)
        return stored


def prepare(raw: pl.DataFrame, tag: str = "0") -> Dataset:
    """Apply METRICS.md's cleaning rules to the stored rows (columns of RAW_SCHEMA)."""
    raw = raw.cast(RAW_SCHEMA)  # type: ignore[arg-type]  # Polars' stubs want a narrower mapping type
    names = sorted(raw.get_column("country").drop_nulls().unique().to_list())
    country = pl.Enum(names)
    price_milli = (pl.col("unit_price") * 1000).round().cast(pl.Int64)
    lines = raw.lazy().with_columns(
        pl.col("country").cast(country),
        pl.col("invoice_date").dt.date().alias("day"),
        (pl.col("quantity") * price_milli).alias("revenue_milli"),
        price_milli.alias("price_milli"),
    )
    first = pl.col("invoice_no").str.slice(0, 1)
    code = pl.col("stock_code").str.to_uppercase()
    sales = (
        lines.filter(~first.is_in(["C", "A"]) & (pl.col("quantity") > 0) & (pl.col("unit_price") > 0))
        .with_columns(
            pl.when(code.is_in(list(NOT_PRODUCTS)) | code.str.starts_with("GIFT_"))
            .then(None)
            .otherwise(code)
            .alias("product"),
            # what `q` searches, lower-cased once; \n keeps matches inside one field
            pl.concat_str(["invoice_no", "stock_code", "description"], separator="\n", ignore_nulls=True)
            .str.to_lowercase()
            .alias("search"),
            # integer ids make the distinct-order counts 4x faster than on the text
            pl.col("invoice_no").cast(pl.Categorical).to_physical().alias("order_id"),
            # the period of each series frequency, computed once (weeks start on Monday)
            pl.col("day").dt.truncate("1w").alias("week"),
            pl.col("day").dt.month_start().alias("month"),
            pl.date(pl.col("day").dt.year(), 1, 1).alias("year"),
        )
        .drop("unit_price")
    )
    if not _in_order(raw):
        sales = sales.sort(["invoice_date", "id"])
    cancellations = (
        lines.filter(first == "C")
        .select("invoice_no", "day", "country", (-pl.col("revenue_milli")).alias("revenue_milli"))
        .sort("day")
    )
    sales_frame, cancel_frame = pl.collect_all([sales, cancellations])
    return Dataset(
        tag=tag,
        sales=sales_frame.rechunk(),
        cancellations=cancel_frame.rechunk(),
        countries={name.casefold(): name for name in names},
    )


# -- filters -----------------------------------------------------------------------------


def _in_order(raw: pl.DataFrame) -> bool:
    """Rows read in import order are usually in date order too; then no sort (and no copy) is needed."""
    return bool(raw.get_column("id").is_sorted() and raw.get_column("invoice_date").is_sorted())


def _days(frame: pl.DataFrame, start: date | None, end: date | None) -> pl.DataFrame:
    """The rows of a frame sorted by `day` inside [start, end]: a zero-copy slice."""
    if start is None and end is None:
        return frame
    days = frame.get_column("day")
    lo = 0 if start is None else int(days.search_sorted(start, side="left"))
    hi = frame.height if end is None else int(days.search_sorted(end, side="right"))
    return frame.slice(lo, max(hi - lo, 0))


def _check_dates(filters: Filters) -> None:
    if filters.start is not None and filters.end is not None and filters.start > filters.end:
        raise InvalidParameter(
            "start", f"start ({filters.start.isoformat()}) is after end ({filters.end.isoformat()}): swap them"
        )


def _scope(ds: Dataset, filters: Filters) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The sales and cancellation lines inside the filters."""
    _check_dates(filters)
    sales = _days(ds.sales, filters.start, filters.end)
    cancellations = _days(ds.cancellations, filters.start, filters.end)
    if filters.country is not None:
        name = ds.country(filters.country)
        sales = sales.filter(pl.col("country") == name)
        cancellations = cancellations.filter(pl.col("country") == name)
    return sales, cancellations


def _in_range(name: str, value: int, bounds: tuple[int, int]) -> None:
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

# The aggregates behind KPIs, series and country rows; used per frame and per group.
_TOTALS = (
    pl.col("revenue_milli").sum().alias("revenue"),
    pl.col("quantity").sum().alias("units"),
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
    pl.col("quantity").sum().alias("units"),
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


def kpis(ds: Dataset, filters: Filters, currency: str) -> Kpis:
    sales, cancellations = _scope(ds, filters)
    totals = sales.select(*_TOTALS, *_SPAN).row(0, named=True)
    return _make_kpis(totals, cancellations.select(*_CANCELLED).row(0, named=True), currency)


# -- time series -----------------------------------------------------------------------


def _next_period(period: date, freq: str) -> date:
    if freq == "day":
        return period + timedelta(days=1)
    if freq == "week":
        return period + timedelta(weeks=1)
    if freq == "month":
        return date(period.year + 1, 1, 1) if period.month == 12 else date(period.year, period.month + 1, 1)
    return date(period.year + 1, 1, 1)


def _points(rows: list[tuple[date, int, int, int]], freq: str) -> list[SeriesPoint]:
    """Series points from (period, revenue, units, orders) rows sorted by period, gaps filled with zeros."""
    if not rows:
        return []
    known = {row[0]: row for row in rows}
    points: list[SeriesPoint] = []
    period, last, previous = rows[0][0], rows[-1][0], None
    while period <= last:
        _, revenue, units, orders = known.get(period, (period, 0, 0, 0))
        growth = ratio2((revenue - previous) * 100, previous) if previous else None
        points.append(
            SeriesPoint(period=period, revenue=money(revenue), units_sold=units, orders=orders, growth_pct=growth)
        )
        previous = revenue
        period = _next_period(period, freq)
    return points


def series(ds: Dataset, filters: Filters, freq: str, currency: str) -> Series:
    _one_of("freq", freq, FREQS)
    sales, _ = _scope(ds, filters)
    rows = sales.group_by(pl.col(freq).alias("period")).agg(*_SERIES).sort("period").rows()
    return Series(currency=currency, freq=freq, points=_points(rows, freq))  # type: ignore[arg-type]  # freq was checked against FREQS above


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
    _in_range("limit", limit, LIMIT_RANGE)
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


def _top_products(sales: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The top products by revenue (ties by code) within each group of `keys`, with their description."""
    products = sales.filter(pl.col("product").is_not_null())
    ranked = products.group_by(*keys, "product").agg(
        pl.col("revenue_milli").sum().alias("revenue"), pl.col("quantity").sum().alias("units")
    )
    ranked = ranked.sort([*keys, "revenue", "product"], descending=[*(False for _ in keys), True, False])
    top = ranked.group_by(keys, maintain_order=True).head(TOP_PRODUCTS) if keys else ranked.head(TOP_PRODUCTS)
    # A product's description: its most frequent one in the filters, ties alphabetically first.
    descriptions = (
        products.filter(pl.col("description").is_not_null())
        .join(top.select(*keys, "product"), on=[*keys, "product"], how="semi")
        .group_by(*keys, "product", "description")
        .len()
        .sort([*keys, "product", "len", "description"], descending=[*(False for _ in keys), False, True, False])
        .group_by(*keys, "product", maintain_order=True)
        .first()
        .drop("len")
    )
    return top.join(descriptions, on=[*keys, "product"], how="left", maintain_order="left")


def top_products(ds: Dataset, filters: Filters) -> list[Product]:
    """The ten best-selling products in the filters (postage, fees and vouchers excluded)."""
    sales, _ = _scope(ds, filters)
    return [_product(row) for row in _top_products(sales, []).iter_rows(named=True)]


def _product(row: dict) -> Product:
    return Product(
        stock_code=row["product"],
        description=row["description"],
        revenue=money(row["revenue"]),
        units_sold=row["units"],
    )


def country_detail(ds: Dataset, filters: Filters, country_name: str, currency: str) -> CountryDetail:
    """One country's figures in the date filters (a `country` filter is replaced by the name)."""
    return _details(ds, filters, [ds.country(country_name)], currency)[0]


def country_details(
    ds: Dataset, filters: Filters, currency: str, names: list[str] | None = None
) -> list[CountryDetail]:
    """The detail of these countries (default: every one; what a refresh precomputes), from one
    group-by per figure."""
    stored = list(ds.countries.values()) if names is None else [ds.country(name) for name in names]
    return _details(ds, filters, stored, currency)


def _details(ds: Dataset, filters: Filters, names: list[str], currency: str) -> list[CountryDetail]:
    sales, cancellations = _scope(ds, Filters(start=filters.start, end=filters.end))
    ranked = _by_country(sales, span=True)  # rank among all countries, by revenue
    if len(names) < len(ds.countries):
        sales = sales.filter(pl.col("country").is_in(names))
        cancellations = cancellations.filter(pl.col("country").is_in(names))

    def by_country(frame: pl.DataFrame) -> dict[str, list[dict]]:
        groups: dict[str, list[dict]] = {}
        for row in frame.with_columns(pl.col("country").cast(pl.String)).iter_rows(named=True):
            groups.setdefault(row.pop("country"), []).append(row)
        return groups

    totals = {row["country"]: (rank, row) for rank, row in enumerate(ranked.iter_rows(named=True), start=1)}
    cancelled = by_country(cancellations.group_by("country").agg(*_CANCELLED))
    months = by_country(sales.group_by("country", "month").agg(*_SERIES).sort("country", "month"))
    products = by_country(_top_products(sales, ["country"]))
    details = []
    for name in names:
        rank, row = totals.get(name, (None, None))
        series_rows = [(m["month"], m["revenue"], m["units"], m["orders"]) for m in months.get(name, [])]
        details.append(
            CountryDetail(
                country=name,
                rank=rank,
                kpis=_make_kpis(row, cancelled[name][0] if name in cancelled else None, currency),
                series=_points(series_rows, "month"),
                top_products=[_product(p) for p in products.get(name, [])],
            )
        )
    return details


# -- transactions page -----------------------------------------------------------------

_LINE_COLUMNS = [
    "invoice_no",
    "stock_code",
    "description",
    "quantity",
    "invoice_date",
    "price_milli",
    "customer_id",
    "country",
    "revenue_milli",
]


def page(ds: Dataset, filters: Filters, q: str | None, page: int, size: int) -> Page:
    _in_range("page", page, (1, MAX_PAGE))
    _in_range("size", size, SIZE_RANGE)
    _check_dates(filters)
    sales = _days(ds.sales, filters.start, filters.end)
    conditions = []
    if filters.country is not None:
        conditions.append(pl.col("country") == ds.country(filters.country))
    needle = (q or "").strip().lower()
    if needle:
        conditions.append(pl.col("search").str.contains(needle, literal=True))
    offset = (page - 1) * size
    if conditions:
        # Row numbers of the matches, then only this page's rows are gathered.
        matches = sales.select(pl.arg_where(pl.all_horizontal(conditions))).to_series()
        total = matches.len()
        rows = sales.select(_LINE_COLUMNS)[matches.slice(offset, size)] if offset < total else None
    else:
        total = sales.height
        rows = sales.select(_LINE_COLUMNS).slice(offset, size) if offset < total else None
    items = [
        Line(
            invoice_no=invoice_no,
            stock_code=stock_code,
            description=description,
            quantity=quantity,
            invoice_date=invoice_date,
            unit_price=price_milli / 1000,
            customer_id=customer_id,
            country=country,
            line_revenue=money(revenue_milli),
        )
        for (
            invoice_no,
            stock_code,
            description,
            quantity,
            invoice_date,
            price_milli,
            customer_id,
            country,
            revenue_milli,
        ) in (rows.iter_rows() if rows is not None else ())
    ]
    return Page(items=items, page=page, size=size, total=total, pages=-(-total // size))
