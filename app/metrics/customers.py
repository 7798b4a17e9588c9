"""Customer views (ANALYTICS.md R3, F2), pure functions of the shapes.

A customer's history is every sales invoice of that CustomerID in the whole data (in the
country, with a country filter: a customer who bought in two countries has two histories);
the date filter never applies to it, so a date filter never turns an old customer into a new
one. The invoice grain has one row per invoice (and customer), so a history is a few rows.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from app.metrics.analytics import Dataset, Filters, check_dates, day_slice, money, ratio2, window
from app.metrics.schemas import CustomerMonth, Customers


def identified(ds: Dataset, country: str | None) -> pl.DataFrame:
    """The sales invoices with a customer id (in the stored `country`), in date order."""
    rows = ds.sales if country is None else ds.of_country("sales", country)
    return rows.filter(pl.col("customer_id").is_not_null())


def first_purchases(ds: Dataset, country: str | None) -> pl.DataFrame:
    """Each customer's first purchase day (R3), computed once per dataset version and country."""
    key = ("first_purchases", country or "")
    found = ds._by_country.get(key)
    if found is None:
        found = ds._by_country[key] = (
            identified(ds, country).group_by("customer_id").agg(pl.col("day").min().alias("first"))
        )
    return found


def _pct(part: int, whole: int) -> float | None:
    return ratio2(100 * part, whole) if whole else None


def _months(first: date, last: date) -> list[date]:
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
    return months


def customers(ds: Dataset, filters: Filters, currency: str) -> Customers:
    """F2: who bought in the window, how many were new, how many came back, month by month."""
    check_dates(filters)
    country = ds.country(filters.country) if filters.country is not None else None
    span = window(ds, Filters(start=filters.start, end=filters.end, country=country))
    history_start: date | None = ds.sales.get_column("day").min()  # type: ignore[assignment]  # a Date column's min
    if span is None:  # no sales in the country at all, and no dates to give a window
        return Customers(currency=currency, history_start=history_start, months=[], **_counts(0, 0, 0, 0, 0))
    start, end = span
    rows = identified(ds, country)
    inside = day_slice(rows, start, end).join(first_purchases(ds, country), on="customer_id")
    per_customer = inside.group_by("customer_id").agg(
        pl.col("order_id").n_unique().alias("orders"), pl.col("first").first()
    )
    count = per_customer.height
    new = per_customer.filter(pl.col("first") >= start).height
    repeat = per_customer.filter(pl.col("orders") >= 2).height
    before_end = day_slice(rows, None, end).group_by("customer_id").agg(pl.col("order_id").n_unique().alias("n"))
    multi = before_end.filter(pl.col("n") >= 2).join(per_customer.select("customer_id"), on="customer_id").height
    orders = inside.get_column("order_id").n_unique() if inside.height else 0

    # each month's part of the window: a customer is new there if their first purchase is in it
    is_new = (pl.col("first").dt.month_start() == pl.col("day").dt.month_start()) & (pl.col("first") >= start)
    by_month = {
        row["month"]: row
        for row in inside.group_by(pl.col("day").dt.month_start().alias("month"))
        .agg(
            pl.col("customer_id").n_unique().alias("customers"),
            pl.col("customer_id").filter(is_new).n_unique().alias("new"),
            pl.col("revenue_milli").filter(is_new).sum().alias("new_revenue"),
            pl.col("revenue_milli").filter(~is_new).sum().alias("returning_revenue"),
        )
        .iter_rows(named=True)
    }
    months = []
    for month in _months(start, end):
        row = by_month.get(month, {})
        active, fresh = int(row.get("customers") or 0), int(row.get("new") or 0)
        months.append(
            CustomerMonth(
                period=month,
                customers=active,
                new_customers=fresh,
                returning_customers=active - fresh,
                new_customer_revenue=money(int(row.get("new_revenue") or 0)),
                returning_customer_revenue=money(int(row.get("returning_revenue") or 0)),
            )
        )
    return Customers(
        currency=currency,
        history_start=history_start,
        months=months,
        **_counts(count, new, repeat, multi, orders),
    )


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
