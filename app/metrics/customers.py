"""Customer views (ANALYTICS.md R3, F2, F3, F4, and a customer's own page), pure functions of
the shapes.

A customer's history is every sales invoice of that CustomerID in the whole data (in the
country, with a country filter: a customer who bought in two countries has two histories);
the date filter never applies to it, so a date filter never turns an old customer into a new
one. The invoice grain has one row per invoice (and customer), so a history is a few rows.

The three views share one aggregate per dataset version and country, `Histories`: each
identified invoice with its customer's first purchase and second order, and the cohort grid
(active customers and revenue per first-purchase month and month). F3 reads only the grid;
F2 and F4 cut the invoices by the window (a binary search) and group them once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import get_args

import numpy as np
import polars as pl

from app.metrics.analytics import (
    MAX_PAGE,
    SIZE_RANGE,
    Dataset,
    Filters,
    InvalidParameter,
    MetricsError,
    check_dates,
    day_slice,
    in_range,
    money,
    ratio2,
    window,
)
from app.metrics.schemas import (
    Cohort,
    CohortCell,
    Cohorts,
    CustomerDetail,
    CustomerMonth,
    CustomerMonthly,
    Customers,
    Rfm,
    RfmCustomer,
    RfmCustomers,
    RfmSort,
    Segment,
    SegmentRow,
)

SEGMENTS: tuple[Segment, ...] = get_args(Segment)  # F4's display order
# the segment of each (R, F) score pair (the notebooks' classic map)
_MAP = {
    5: ("new_customers", "potential_loyalists", "potential_loyalists", "champions", "champions"),
    4: ("promising", "potential_loyalists", "potential_loyalists", "loyal_customers", "loyal_customers"),
    3: ("about_to_sleep", "about_to_sleep", "need_attention", "loyal_customers", "loyal_customers"),
    2: ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"),
    1: ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"),
}
SEGMENT_OF = {r * 10 + f: _MAP[r][f - 1] for r in _MAP for f in range(1, 6)}
_SEGMENT = np.array([SEGMENTS.index(SEGMENT_OF[key]) if key in SEGMENT_OF else -1 for key in range(56)], dtype=np.int64)
RFM_SORTS: tuple[str, ...] = get_args(RfmSort)
_RFM_COLUMN = {
    "monetary": "cents",
    "frequency": "frequency",
    "recency_days": "recency_days",
    "customer_id": "customer_id",
}


class UnknownCustomer(MetricsError):
    status_code = 404

    def __init__(self, customer: str) -> None:
        super().__init__(f"unknown customer {customer!r}: no sales line has this customer id")
        self.customer = customer


class UnknownSegment(MetricsError):
    def __init__(self, segment: str) -> None:
        super().__init__(f"segment={segment!r} is not a segment: use one of {', '.join(SEGMENTS)}")


@dataclass(frozen=True)
class Histories:
    """The identified customers of one country (or all), for one dataset version."""

    # each identified sales invoice, by day: customer_id, order_id, invoice_no, day, month, invoice_date,
    # units, revenue_milli, country, and the customer's `first` purchase day, `second` order's
    # first day (null for a one-order history) and `cohort` (the month of `first`)
    invoices: pl.DataFrame
    people: pl.DataFrame  # each customer's whole history, by customer id (what `_people` gives)
    sizes: dict[date, int]  # cohort month -> customers
    grid: dict[tuple[date, date], tuple[int, int]]  # (cohort, month) -> (active customers, revenue_milli)


def identified(ds: Dataset, country: str | None) -> pl.LazyFrame:
    """The sales invoices with a customer id (in the stored `country`), in date order, lazily."""
    rows = ds.sales if country is None else ds.of_country("sales", country)
    return rows.lazy().filter(pl.col("customer_id").is_not_null())


def histories(ds: Dataset, country: str | None) -> Histories:
    """The shared customer aggregate (R3), computed once per dataset version and country."""
    return ds.derived("histories", country, lambda: _histories(ds, country))


def _histories(ds: Dataset, country: str | None) -> Histories:
    # lazily: the identified invoices are read twice but held once, as `invoices` (at 50x a
    # copy of them held meanwhile was 70 MB of the dataset load's peak)
    rows = identified(ds, country).select(
        "customer_id", "order_id", "invoice_no", "day", "month", "invoice_date", "units", "revenue_milli", "country"
    )
    orders = rows.group_by("customer_id", "order_id").agg(pl.col("day").min())
    people = (
        orders.group_by("customer_id")
        .agg(pl.col("day").min().alias("first"), pl.col("day").sort().slice(1, 1).first().alias("second"))
        .collect()
    )
    invoices = (
        rows.join(people.lazy(), on="customer_id", how="left", maintain_order="left")
        .with_columns(pl.col("first").dt.month_start().alias("cohort"))
        .collect()
    )
    sizes = people.group_by(pl.col("first").dt.month_start().alias("cohort")).agg(pl.len()).rows()
    grid = invoices.group_by("cohort", "month").agg(
        pl.col("customer_id").n_unique().alias("active"), pl.col("revenue_milli").sum()
    )
    return Histories(
        invoices=invoices,
        people=_group(invoices).sort("customer_id"),
        sizes={cohort: count for cohort, count in sizes},
        grid={(c, m): (active, revenue) for c, m, active, revenue in grid.rows()},
    )


def _group(invoices: pl.DataFrame) -> pl.DataFrame:
    """Per customer of these invoices: their orders, revenue and last day, and (from the
    history) their first purchase and second order's day."""
    return invoices.group_by("customer_id").agg(
        pl.col("order_id").n_unique().cast(pl.Int64).alias("orders"),
        pl.col("revenue_milli").sum().alias("milli"),
        pl.col("day").max().alias("last"),
        pl.col("first").first(),
        pl.col("second").first(),
    )


def _people(found: Histories, inside: pl.DataFrame) -> pl.DataFrame:
    """Per customer of `inside` (a day slice of the invoices): the history's own aggregate
    when the slice holds all of it (the unfiltered views: no group-by at all)."""
    return found.people if inside.height == found.invoices.height else _group(inside)


def _pct(part: int, whole: int) -> float | None:
    return ratio2(100 * part, whole) if whole else None


def _next_month(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def _months(first: date, last: date) -> list[date]:
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = _next_month(month)
    return months


def _country(ds: Dataset, filters: Filters) -> str | None:
    check_dates(filters)
    return ds.country(filters.country) if filters.country is not None else None


def _history_start(ds: Dataset) -> date | None:
    return ds.sales.get_column("day").min()  # type: ignore[return-value]  # a Date column's min


# -- F2 ------------------------------------------------------------------------------------


def customers(ds: Dataset, filters: Filters, currency: str) -> Customers:
    """F2: who bought in the window, how many were new, how many came back, month by month."""
    country = _country(ds, filters)
    span = window(ds, Filters(start=filters.start, end=filters.end, country=country))
    if span is None:  # no sales in the country at all, and no dates to give a window
        return Customers(currency=currency, history_start=_history_start(ds), months=[], **_counts(0, 0, 0, 0, 0))
    start, end = span
    found = histories(ds, country)
    inside = day_slice(found.invoices, start, end)
    per_customer = _people(found, inside)
    count, new, repeat, multi = per_customer.select(
        pl.len(),
        (pl.col("first") >= start).sum(),
        (pl.col("orders") >= 2).sum(),
        (pl.col("second") <= end).sum(),  # two orders in their history up to the window's end
    ).row(0)
    orders = inside.get_column("order_id").n_unique() if inside.height else 0
    by_month = _by_month(found, inside, start)
    months = []
    for month in _months(start, end):
        _, active, fresh, new_revenue, returning_revenue = by_month.get(month, (month, 0, 0, 0, 0))
        months.append(
            CustomerMonth(
                period=month,
                customers=active,
                new_customers=fresh,
                returning_customers=active - fresh,
                new_customer_revenue=money(new_revenue),
                returning_customer_revenue=money(returning_revenue),
            )
        )
    return Customers(
        currency=currency, history_start=_history_start(ds), months=months, **_counts(count, new, repeat, multi, orders)
    )


def _by_month(found: Histories, inside: pl.DataFrame, start: date) -> dict[date, tuple[date, int, int, int, int]]:
    """F2's months as (month, customers, new, new revenue, returning revenue), from each month's
    part of the window: a customer is new there if their first purchase is in it."""
    if inside.height == found.invoices.height:  # every invoice: the cohort grid has it all
        months: dict[date, list[int]] = {}
        for (cohort, month), (active, revenue) in found.grid.items():
            row = months.setdefault(month, [0, 0, 0, 0])
            row[0] += active  # each customer is in one cohort: the cohorts' counts add up
            if cohort == month:
                row[1], row[2] = active, revenue
            else:
                row[3] += revenue
        return {month: (month, *row) for month, row in months.items()}  # type: ignore[misc]  # four ints
    is_new = (pl.col("cohort") == pl.col("month")) & (pl.col("first") >= start)
    return {
        row[0]: row
        for row in inside.group_by("month")
        .agg(
            pl.col("customer_id").n_unique(),
            pl.col("customer_id").filter(is_new).n_unique().alias("new"),
            pl.col("revenue_milli").filter(is_new).sum().alias("new_revenue"),
            pl.col("revenue_milli").filter(~is_new).sum().alias("returning_revenue"),
        )
        .iter_rows()
    }


def _counts(count: int, new: int, repeat: int, multi: int, orders: int) -> dict:
    return {
        "customers": count,
        "new_customers": new,
        "returning_customers": count - new,
        "returning_customer_pct": _pct(count - new, count),
        "repeat_customers": repeat,
        "repeat_purchase_rate_pct": _pct(repeat, count),
        "multi_order_customers": multi,
        "multi_order_customer_rate_pct": _pct(multi, count),
        "orders_per_customer": ratio2(orders, count) if count else None,
    }


# -- F3 ------------------------------------------------------------------------------------


def cohorts(ds: Dataset, filters: Filters, currency: str) -> Cohorts:
    """F3: each first-purchase month's customers, and how many of them bought again each month
    after, up to the window's last month (whole months). Read from the grid: no rows scanned."""
    country = _country(ds, filters)
    span = window(ds, Filters(start=filters.start, end=filters.end, country=country))
    if span is None:
        return Cohorts(currency=currency, start_month=None, end_month=None, cohorts=[])
    first, last = span[0].replace(day=1), span[1].replace(day=1)
    found = histories(ds, country)
    # the month the data ends in is partial unless the data ends on its last day
    data_end: date = ds.sales.get_column("day")[-1]  # there are sales: the window has a day
    partial = data_end.replace(day=1) if (data_end + timedelta(days=1)).month == data_end.month else None
    rows = []
    for cohort in _months(first, last) if first <= last else []:
        size = found.sizes.get(cohort, 0)
        if not size:
            continue
        cells = []
        for index, month in enumerate(_months(cohort, last)):
            active, revenue = found.grid.get((cohort, month), (0, 0))
            cells.append(
                CohortCell(
                    month_index=index,
                    period=month,
                    active_customers=active,
                    retention_pct=ratio2(100 * active, size),
                    revenue=money(revenue),
                    partial=month == partial,
                )
            )
        rows.append(Cohort(cohort=cohort.strftime("%Y-%m"), customers=size, months=cells))
    return Cohorts(
        currency=currency, start_month=first.strftime("%Y-%m"), end_month=last.strftime("%Y-%m"), cohorts=rows
    )


# -- F4 ------------------------------------------------------------------------------------


def _order(values: np.ndarray, descending: bool = False) -> np.ndarray:
    """The row positions sorted by `values`, ties in row order (the rows are by customer id).
    Each value is made unique by its position (value * n + position), so a plain sort is exact
    and five times faster here than a stable one; values too wide for that get the stable sort."""
    n = len(values)
    if not n:
        return np.arange(0)
    keys = -values if descending else values
    low = int(keys.min())
    if (int(keys.max()) - low + 1) * n < 2**62:
        return np.argsort((keys - low) * n + np.arange(n))
    return np.argsort(keys, kind="stable")


def _scores(values: np.ndarray, descending: bool = False) -> np.ndarray:
    """1 + floor(5 (i - 1) / n), i the 1-based position from worst to best, ties by customer id."""
    n = len(values)
    scores = np.empty(n, dtype=np.int64)
    scores[_order(values, descending)] = 1 + (5 * np.arange(n)) // max(n, 1)
    return scores


def scored(ds: Dataset, filters: Filters) -> tuple[date | None, pl.DataFrame]:
    """The reference date and every identified customer in the filters with their R, F, M and
    scores (F4), by monetary descending, customer id ascending. `segment` is its index in
    SEGMENTS, `milli` the exact monetary, `cents` the 2-place one."""
    country = _country(ds, filters)
    sales = ds.sales if country is None else ds.of_country("sales", country)
    in_window = day_slice(sales, filters.start, filters.end)
    reference = in_window.get_column("day")[-1] + timedelta(days=1) if in_window.height else None  # sorted by date
    found = histories(ds, country)
    inside = day_slice(found.invoices, filters.start, filters.end)
    people = _people(found, inside)
    if inside.height != found.invoices.height:  # the history's own aggregate is by customer id
        people = people.sort("customer_id")
    if reference is None:  # no sales at all in the filters (then no customer either)
        people = people.clear()
    # a few thousand customers: NumPy arrays, three sorts, the (R, F) map by table lookup
    ids = people.get_column("customer_id").to_numpy()
    last = people.get_column("last").to_numpy().astype("datetime64[D]").astype(np.int64)
    recency = (reference.toordinal() - date(1970, 1, 1).toordinal() if reference else 0) - last
    frequency = people.get_column("orders").to_numpy().astype(np.int64)
    milli = people.get_column("milli").to_numpy().astype(np.int64)
    cents = (milli + 5) // 10  # the 2-place monetary (sales lines are positive): half up
    r, f, m = _scores(recency, descending=True), _scores(frequency), _scores(cents)
    rows = _order(cents, descending=True)  # the list's order: monetary descending, then id
    frame = pl.DataFrame(
        {
            "customer_id": ids[rows],
            "recency_days": recency[rows],
            "frequency": frequency[rows],
            "milli": milli[rows],
            "cents": cents[rows],
            "r_score": r[rows],
            "f_score": f[rows],
            "m_score": m[rows],
            "segment": _SEGMENT[r * 10 + f][rows],
        },
        schema={name: pl.Int64 for name in ("customer_id", "recency_days", "frequency", "milli", "cents")}
        | {"r_score": pl.Int64, "f_score": pl.Int64, "m_score": pl.Int64, "segment": pl.Int64},
    )
    return reference, frame


def rfm(ds: Dataset, filters: Filters, currency: str) -> Rfm:
    """F4: the ten segments, in display order, each with its customers, revenue and averages."""
    reference, people = scored(ds, filters)
    segment = people.get_column("segment").to_numpy()
    counts = np.bincount(segment, minlength=len(SEGMENTS))

    def sums(column: str) -> list[int]:
        values = people.get_column(column).to_numpy()
        totals = np.zeros(len(SEGMENTS), dtype=np.int64)
        np.add.at(totals, segment, values)  # integers: exact
        return totals.tolist()

    milli, recency, frequency = sums("milli"), sums("recency_days"), sums("frequency")
    count, total = people.height, sum(milli)
    segments = []
    for index, name in enumerate(SEGMENTS):
        n = int(counts[index])
        segments.append(
            SegmentRow(
                segment=name,
                customers=n,
                customers_pct=_pct(n, count),
                revenue=money(milli[index]),
                revenue_pct=_pct(milli[index], total),
                avg_recency_days=ratio2(recency[index], n) if n else None,
                avg_frequency=ratio2(frequency[index], n) if n else None,
                avg_monetary=ratio2(milli[index], 1000 * n) if n else None,
            )
        )
    return Rfm(currency=currency, reference_date=reference, customers=count, revenue=money(total), segments=segments)


def _customer(row: dict) -> RfmCustomer:
    return RfmCustomer(
        customer_id=row["customer_id"],
        recency_days=row["recency_days"],
        frequency=row["frequency"],
        monetary=row["cents"] / 100,
        r_score=row["r_score"],
        f_score=row["f_score"],
        m_score=row["m_score"],
        rfm_score=f"{row['r_score']}{row['f_score']}{row['m_score']}",
        segment=SEGMENTS[row["segment"]],
    )


def rfm_customers(
    ds: Dataset, filters: Filters, segment: str | None, page: int, size: int, sort: str, currency: str
) -> RfmCustomers:
    """F4's customer list: one segment's customers (or all), a page at a time."""
    if segment is not None and segment not in SEGMENTS:
        raise UnknownSegment(segment)
    if sort not in RFM_SORTS:
        raise InvalidParameter("sort", f"sort must be one of {', '.join(RFM_SORTS)}, not {sort!r}")
    in_range("page", page, (1, MAX_PAGE))
    in_range("size", size, SIZE_RANGE)
    reference, people = scored(ds, filters)
    if segment is not None:
        people = people.filter(pl.col("segment") == SEGMENTS.index(segment))
    if sort != "-monetary":  # the list's own order otherwise
        column = _RFM_COLUMN[sort.removeprefix("-")]
        keys = [column] if column == "customer_id" else [column, "customer_id"]
        people = people.sort(keys, descending=[sort.startswith("-"), *([False] * (len(keys) - 1))])
    total = people.height
    items = [_customer(row) for row in people.slice((page - 1) * size, size).iter_rows(named=True)]
    return RfmCustomers(
        currency=currency,
        reference_date=reference,
        segment=segment,
        sort=sort,  # type: ignore[arg-type]  # checked against RFM_SORTS
        items=items,
        page=page,
        size=size,
        total=total,
        pages=-(-total // size),
    )


# -- one customer ---------------------------------------------------------------------------


def customer_id(text: str) -> int:
    """A customer id as typed in an address; UnknownCustomer if it cannot be one."""
    value = text.strip()
    if not value.isdigit() or len(value) > 18:
        raise UnknownCustomer(text)
    return int(value)


def customer(ds: Dataset, filters: Filters, customer: int, currency: str) -> tuple[CustomerDetail, pl.DataFrame]:
    """A customer's figures in the filters (all but their products, which need the lines) and
    their invoices in the filters (whose lines the products are read from)."""
    country = _country(ds, filters)
    theirs = pl.col("customer_id") == customer
    mine = histories(ds, country).invoices.filter(theirs)
    # what the page names (countries, first purchase): their history in the country, else anywhere
    history = mine if mine.height or country is None else histories(ds, None).invoices.filter(theirs)
    if history.is_empty():
        raise UnknownCustomer(str(customer))
    inside = day_slice(mine, filters.start, filters.end)
    revenue, units, orders = inside.select(
        pl.col("revenue_milli").sum(), pl.col("units").sum(), pl.col("order_id").n_unique()
    ).row(0)
    revenue, units = int(revenue or 0), int(units or 0)
    _, people = scored(ds, filters)
    found = people.filter(pl.col("customer_id") == customer)
    span = window(ds, Filters(start=filters.start, end=filters.end, country=country))
    months = []
    if inside.height and span is not None:
        per_month = {
            m: (r, u, o)
            for m, r, u, o in inside.group_by("month")
            .agg(pl.col("revenue_milli").sum(), pl.col("units").sum(), pl.col("order_id").n_unique())
            .rows()
        }
        first_month, last_month = inside.get_column("month")[0], inside.get_column("month")[-1]
        for month in _months(first_month, last_month):
            r, u, o = per_month.get(month, (0, 0, 0))
            cut = month < span[0] or _next_month(month) - timedelta(days=1) > span[1]
            months.append(CustomerMonthly(period=month, revenue=money(r), units_sold=u, orders=o, partial=cut))
    shown = inside if inside.height else history
    first_purchase: datetime | None = inside.get_column("invoice_date").min() if inside.height else None  # type: ignore[assignment]
    last_purchase: datetime | None = inside.get_column("invoice_date").max() if inside.height else None  # type: ignore[assignment]
    detail = CustomerDetail(
        currency=currency,
        customer_id=customer,
        countries=sorted({str(name) for name in shown.get_column("country").unique()}),
        customer_since=history.get_column("first")[0],
        first_purchase=first_purchase,
        last_purchase=last_purchase,
        orders=orders or 0,
        revenue=money(revenue),
        units_sold=units,
        average_order_value=ratio2(revenue, orders * 1000) if orders else None,
        rfm=_customer(found.row(0, named=True)) if found.height else None,
        months=months,
        top_products=[],
    )
    return detail, inside
