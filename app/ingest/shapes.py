"""The data shapes the views read instead of the raw lines, kept exact by the importer.

Two tables, each a pure aggregate of the `transactions` table:

- `sales_invoices`, the invoice grain: one row per invoice, timestamp, country and customer
  (in real exports an invoice has one of each, give or take a minute). A cancellation's
  (C...) row sums all its lines; another invoice's row sums its sales lines only (METRICS.md
  "Sales lines"), and has `lines` 0 if it has none (so every stored country has a row);
  `all_lines` counts every stored line (the Data page's count, without a scan of the lines).
  KPIs, series, countries and the transactions page's positions read it.
- `product_days`, the product grain: one row per day, country, product key (the stock code
  upper-cased) and description, over the sales lines. Top products read it.

Both are maintained inside the import's own transaction by recomputing every day the import
touched (`refresh_days`): the days of its lines and of the stored lines it replaced. Whatever
happened to those days (new invoices, skipped or replaced ones), their rows are then again
exactly the aggregate of their lines; the other days' lines did not change. A new month costs
a month's lines, not the table's.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

SHAPES = ("sales_invoices", "product_days")

# The cleaning rules of METRICS.md in SQL, the same on both engines. substr, not LIKE:
# SQLite's LIKE ignores case, and "c123" is not a cancellation.
SALES = "substr(invoice_no, 1, 1) NOT IN ('C', 'A') AND quantity > 0 AND unit_price > 0"
CANCELLED = "substr(invoice_no, 1, 1) = 'C'"
# the lines an invoice's row sums: a cancellation's every line, another invoice's sales lines
COUNTED = f"({CANCELLED} OR {SALES})"

_ENGINE_SQL = {
    # NUMERIC(12, 3) times 1000 is an exact integer; REAL is rounded like the price it stands for
    "postgres": {
        "price_milli": "CAST(unit_price * 1000 AS BIGINT)",
        "day": "CAST(invoice_date AS DATE)",
        # the C collation upper-cases ASCII letters only, as SQLite's upper() does
        "product": 'upper(stock_code COLLATE "C")',
    },
    "sqlite": {
        "price_milli": "CAST(ROUND(unit_price * 1000) AS INTEGER)",
        "day": "substr(invoice_date, 1, 10)",
        "product": "upper(stock_code)",
    },
}


def _sql(postgres: bool) -> dict[str, str]:
    return _ENGINE_SQL["postgres" if postgres else "sqlite"]


def product_key(postgres: bool) -> str:
    """The SQL of a line's product key (product_days.product): its stock code upper-cased."""
    return _sql(postgres)["product"]


def statements(postgres: bool) -> list[str]:
    """Delete and recompute both shapes for the days in [lo, hi) (parameters `lo`, `hi`)."""
    sql = _sql(postgres)
    day, price = sql["day"], sql["price_milli"]
    lo, hi = ("$1::date", "$2::date") if postgres else (":lo", ":hi")
    lines = f"invoice_date >= {lo} AND invoice_date < {hi}"
    return [
        f"DELETE FROM sales_invoices WHERE day >= {lo} AND day < {hi}",
        f"DELETE FROM product_days WHERE day >= {lo} AND day < {hi}",
        f"""INSERT INTO sales_invoices
            (invoice_no, invoice_date, day, country, customer_id, cancelled, all_lines, lines, units, revenue_milli)
            SELECT invoice_no, invoice_date, {day}, country, customer_id, {CANCELLED}, COUNT(*),
                   COUNT(CASE WHEN {COUNTED} THEN 1 END),
                   COALESCE(SUM(CASE WHEN {COUNTED} THEN quantity END), 0),
                   COALESCE(SUM(CASE WHEN {COUNTED} THEN quantity * {price} END), 0)
            FROM transactions WHERE {lines}
            GROUP BY invoice_no, invoice_date, country, customer_id""",
        f"""INSERT INTO product_days (day, country, product, description, lines, units, revenue_milli)
            SELECT {day}, country, {sql["product"]}, description, COUNT(*), SUM(quantity), SUM(quantity * {price})
            FROM transactions WHERE {lines} AND {SALES}
            GROUP BY {day}, country, {sql["product"]}, description""",
    ]


Days = tuple[date, date]  # [first day, the day after the last)


def day_bounds(first: object, last: object) -> Days | None:
    """The days of two stored timestamps (datetimes from PostgreSQL, text from SQLite)."""
    if first is None or last is None:
        return None
    return _day(first), _day(last) + timedelta(days=1)


def _day(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])  # SQLite's text timestamps


def widen(a: Days | None, b: Days | None) -> Days | None:
    if a is None or b is None:
        return a or b
    return min(a[0], b[0]), max(a[1], b[1])


async def refresh_days(connection: Any, postgres: bool, days: Days | None) -> None:
    """Recompute both shapes for `days` from the lines, in the caller's transaction."""
    if days is None:
        return
    lo, hi = days
    for statement in statements(postgres):
        if postgres:
            await connection.execute(statement, lo, hi, timeout=3600)
        else:  # SQLite stores days and timestamps as text, which compares in date order
            await connection.execute(statement, {"lo": lo.isoformat(), "hi": hi.isoformat()})


async def clear(connection: Any) -> None:
    """Empty both shapes (replace all data)."""
    for table in SHAPES:
        await connection.execute(f"DELETE FROM {table}")
