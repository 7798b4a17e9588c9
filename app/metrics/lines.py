"""The transactions page, read from the database: the one view that lists raw lines.

Lines are listed in METRICS.md's order (InvoiceDate, then import order: the id) through the
index `transactions (invoice_date, id)` (or `(country, invoice_date, id)` with a country):

- **keyset**: a page link carries `after`, the id of the previous page's last line; the
  page is the next `size` lines after it, whatever the depth;
- **a page number alone** (a typed or shared URL): the invoice grain (held in memory) counts
  the lines per timestamp, which finds the timestamp the page starts at; the database then
  skips only the lines of that one timestamp;
- **`q`** (a search): PostgreSQL matches through a trigram index (pg_trgm), SQLite scans the
  lines in the date range (a few hundred ms per million lines). With `q`, a page number
  alone costs an OFFSET over the matches; the links' `after` keys do not.

The total of a page without `q` comes from the invoice grain (no count over lines).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import polars as pl
from piccolo.engine.postgres import PostgresEngine

from app.ingest.shapes import SALES
from app.ingest.tables import SEARCH_TEXT, Transaction
from app.lib.db import engine
from app.metrics.analytics import MAX_PAGE, SIZE_RANGE, Dataset, check_dates, day_slice, in_range, money
from app.metrics.schemas import Filters, Line, Page

_COLUMNS = "id, invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country"
# SQLite's lower() folds ASCII letters only; the search text there is built the same way
_SQLITE_SEARCH = "lower(invoice_no || char(10) || stock_code || char(10) || coalesce(description, ''))"


def _postgres() -> bool:
    return isinstance(engine(), PostgresEngine)


def _stamp(value: datetime, postgres: bool) -> Any:
    """A timestamp as the engine compares it (SQLite stores Piccolo's text)."""
    return value if postgres else value.strftime("%Y-%m-%d %H:%M:%S")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time())


class _Where:
    """A WHERE clause with Piccolo's `{}` placeholders and its values."""

    def __init__(self) -> None:
        self.parts = [SALES]
        self.values: list[Any] = []

    def add(self, sql: str, *values: Any) -> None:
        self.parts.append(sql)
        self.values.extend(values)

    @property
    def sql(self) -> str:
        return " AND ".join(self.parts)


async def _rows(sql: str, *values: Any) -> list[dict]:
    return await Transaction.raw(sql, *values).run()


def _needle(q: str | None) -> str:
    return (q or "").strip().lower()


def _like(needle: str) -> str:
    r"""A LIKE pattern that matches `needle` anywhere, its own % _ and \ taken literally."""
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def page(ds: Dataset, filters: Filters, q: str | None, page: int, size: int, after: int | None = None) -> Page:
    in_range("page", page, (1, MAX_PAGE))
    in_range("size", size, SIZE_RANGE)
    check_dates(filters)
    postgres = _postgres()
    country = ds.country(filters.country) if filters.country is not None else None
    where = _Where()
    if filters.start is not None:
        where.add("invoice_date >= {}", _stamp(_midnight(filters.start), postgres))
    if filters.end is not None:
        where.add("invoice_date < {}", _stamp(_midnight(filters.end + timedelta(days=1)), postgres))
    if country is not None:
        where.add("country = {}", country)
    needle = _needle(q)
    if needle and postgres:
        where.add(f"{SEARCH_TEXT} LIKE {{}}", _like(needle))
    elif needle:
        where.add(f"instr({_SQLITE_SEARCH}, {{}}) > 0", needle)

    grain = _scope(ds, filters, country)
    if needle:
        (counted,) = await _rows(f"SELECT COUNT(*) AS n FROM transactions WHERE {where.sql}", *where.values)
        total = int(counted["n"])
    else:
        total = int(grain.get_column("lines").sum() or 0)
    offset = (page - 1) * size
    lines: list[dict] = []
    if offset < total:
        lines = await _read(where, grain, needle, offset, size, after, postgres)
    more = offset + len(lines) < total
    return Page(
        items=[_line(row) for row in lines],
        page=page,
        size=size,
        total=total,
        pages=-(-total // size),
        next_after=int(lines[-1]["id"]) if lines and more else None,
    )


def _scope(ds: Dataset, filters: Filters, country: str | None) -> pl.DataFrame:
    """The sales invoices in the filters (the grain rows), in date order."""
    rows = day_slice(ds.sales, filters.start, filters.end)
    return rows.filter(pl.col("country") == country) if country is not None else rows


async def _read(
    where: _Where, grain: pl.DataFrame, needle: str, offset: int, size: int, after: int | None, postgres: bool
) -> list[dict]:
    order = f"ORDER BY invoice_date, id LIMIT {size}"
    if after is not None:
        key = await _rows("SELECT invoice_date FROM transactions WHERE id = {}", after)
        if key:  # a key of lines replaced since the link was made falls back to the page number
            sql = f"SELECT {_COLUMNS} FROM transactions WHERE {where.sql} AND (invoice_date, id) > ({{}}, {{}}) {order}"
            return await _rows(sql, *where.values, key[0]["invoice_date"], after)
    if needle:  # no positions for a search: skip the matches before the page
        sql = f"SELECT {_COLUMNS} FROM transactions WHERE {where.sql} {order} OFFSET {offset}"
        return await _rows(sql, *where.values)
    # The timestamp the page starts at, from the grain's lines per timestamp; then the
    # database skips only the earlier lines of that timestamp.
    counts = grain.group_by("invoice_date").agg(pl.col("lines").sum()).sort("invoice_date")
    ends = counts.get_column("lines").cum_sum()
    at = int(ends.search_sorted(offset, side="right"))
    start = counts.get_column("invoice_date")[at]
    skip = offset - (int(ends[at - 1]) if at else 0)
    sql = f"SELECT {_COLUMNS} FROM transactions WHERE {where.sql} AND invoice_date >= {{}} {order} OFFSET {skip}"
    return await _rows(sql, *where.values, _stamp(start, postgres))


def _line(row: dict) -> Line:
    price_milli = round(row["unit_price"] * 1000)  # Decimal on PostgreSQL, float on SQLite
    invoice_date = row["invoice_date"]
    if not isinstance(invoice_date, datetime):
        invoice_date = datetime.fromisoformat(str(invoice_date)[:19])
    return Line(
        invoice_no=row["invoice_no"],
        stock_code=row["stock_code"],
        description=row["description"],
        quantity=row["quantity"],
        invoice_date=invoice_date,
        unit_price=price_milli / 1000,
        customer_id=row["customer_id"],
        country=row["country"],
        line_revenue=money(row["quantity"] * price_milli),
    )
