"""The transactions page, read from the database: the one view that lists raw lines.

Lines are listed in METRICS.md's order (InvoiceDate, then import order: the id) through the
index `transactions (invoice_date, id)` (or `(country, invoice_date, id)` with a country),
and the shapes (held in memory) say where a page starts, so no page scans the lines before it:

- **keyset**: a page link carries `after`, the id of the previous page's last line; the
  page is the next `size` lines after it, whatever the depth;
- **a page number alone** (a typed or shared URL): the invoice grain counts the lines per
  timestamp, which finds the timestamp the page starts at; the database skips only the
  earlier lines of that one timestamp;
- **`q`** (a search in invoice numbers, stock codes and descriptions): the texts that contain
  it are found among the distinct stock codes, descriptions and invoice numbers of the shapes
  (a few thousand, whatever the number of lines); the product grain and the invoice grain then
  count the matching lines per day, which gives the total and the days a page spans; the
  database reads the lines of those days only, matching by equality (no text scan, no
  trigram index to maintain at import). Only the lines of matching invoices that also match
  by product are counted in the database, through the invoice-number index.

Totals come from the shapes too: no page counts the lines.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from typing import Any

import polars as pl
from piccolo.engine.postgres import PostgresEngine

from app.ingest.shapes import SALES, as_day, price_milli, product_key
from app.ingest.tables import Transaction
from app.lib.db import engine
from app.metrics.analytics import (
    MAX_PAGE,
    SIZE_RANGE,
    Dataset,
    check_dates,
    in_range,
    money,
    not_a_product,
    shape_in,
)
from app.metrics.schemas import CustomerProduct, Filters, Line, Page

_COLUMNS = "id, invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country"


def _postgres() -> bool:
    return isinstance(engine(), PostgresEngine)


def _stamp(value: datetime | date, postgres: bool) -> Any:
    """A timestamp (or a day's midnight) as the engine compares it (SQLite stores Piccolo's text)."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return value if postgres else value.strftime("%Y-%m-%d %H:%M:%S")


class _Where:
    """A WHERE clause with Piccolo's `{}` placeholders and its values."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        self.parts = [SALES]
        self.values: list[Any] = []

    def add(self, sql: str, *values: Any) -> _Where:
        self.parts.append(sql)
        self.values.extend(values)
        return self

    def one_of(self, column: str, values: list[str]) -> str:
        """`column` equal to one of `values` (a parameter, not a list spelled out in the SQL)."""
        if self.postgres:
            self.values.append(values)
            return f"{column} = ANY({{}})"
        self.values.append(json.dumps(values))
        return f"{column} IN (SELECT value FROM json_each({{}}))"

    def copy(self) -> _Where:
        other = _Where(self.postgres)
        other.parts, other.values = list(self.parts), list(self.values)
        return other

    @property
    def sql(self) -> str:
        return " AND ".join(self.parts)


async def _rows(sql: str, *values: Any) -> list[dict]:
    return await Transaction.raw(sql, *values).run()


class _Search:
    """What `q` matches: the stock codes, descriptions and invoice numbers that contain it."""

    def __init__(self, ds: Dataset, products: pl.DataFrame, grain: pl.DataFrame, needle: str) -> None:
        def containing(texts: pl.DataFrame, column: str) -> list[str]:
            return texts.filter(pl.col("text").str.contains(needle, literal=True)).get_column(column).to_list()

        self.codes = containing(ds.codes, "code")
        self.descriptions = containing(ds.descriptions, "description")
        self.invoices: list[str] = []
        if not (ds.numeric_invoices and not needle.isdigit()):
            number = pl.col("invoice_no") if ds.numeric_invoices else pl.col("invoice_no").str.to_lowercase()
            found = grain.filter(number.str.contains(needle, literal=True))
            self.invoices = found.get_column("invoice_no").unique().to_list()
        if needle.isdigit() and len(needle) <= 18:  # a customer id, matched exactly: that customer's invoices
            theirs = grain.filter(pl.col("customer_id") == int(needle)).get_column("invoice_no").unique().to_list()
            self.invoices = sorted(set(self.invoices) | set(theirs))
        codes, descriptions = pl.col("code").is_in(self.codes), pl.col("description").is_in(self.descriptions)
        self.product_lines = products.filter(codes | descriptions)
        self.invoice_lines = grain.filter(pl.col("invoice_no").is_in(self.invoices))

    def predicate(self, where: _Where, postgres: bool, invoices: bool = True) -> str:
        """A line matches (its values added to `where`); `invoices=False`: by product only."""
        parts = []
        if self.codes:
            parts.append(where.one_of(product_key(postgres), self.codes))
        if self.descriptions:
            parts.append(where.one_of("description", self.descriptions))
        if self.invoices and invoices:
            parts.append(where.one_of("invoice_no", self.invoices))
        return "(" + " OR ".join(parts) + ")" if parts else "FALSE"

    async def per_day(self, where: _Where, postgres: bool) -> pl.DataFrame:
        """The matching lines per day: by product, plus by invoice, minus the lines counted twice."""
        parts = [
            self.product_lines.group_by("day").agg(pl.col("lines").sum()),
            self.invoice_lines.group_by("day").agg(pl.col("lines").sum()),
        ]
        if self.invoices and (self.codes or self.descriptions):
            both = where.copy()
            invoices = both.one_of("invoice_no", self.invoices)
            products = self.predicate(both, postgres, invoices=False)
            day = "CAST(invoice_date AS DATE)" if postgres else "substr(invoice_date, 1, 10)"
            twice = await _rows(
                f"SELECT {day} AS day, COUNT(*) AS lines FROM transactions "
                f"WHERE {both.sql} AND {invoices} AND {products} GROUP BY {day}",
                *both.values,
            )
            counted = pl.DataFrame(
                {"day": [as_day(row["day"]) for row in twice], "lines": [-int(row["lines"]) for row in twice]},
                schema={"day": pl.Date(), "lines": pl.Int64()},
            )
            parts.append(counted)
        frames = [part.select("day", pl.col("lines").cast(pl.Int64)) for part in parts]
        return pl.concat(frames).group_by("day").agg(pl.col("lines").sum()).filter(pl.col("lines") > 0).sort("day")


def _filtered(ds: Dataset, filters: Filters, postgres: bool) -> _Where:
    """The sales lines in the filters, as a WHERE clause (indexed predicates)."""
    check_dates(filters)
    country = ds.country(filters.country) if filters.country is not None else None
    where = _Where(postgres)
    if filters.start is not None:
        where.add("invoice_date >= {}", _stamp(filters.start, postgres))
    if filters.end is not None:
        where.add("invoice_date < {}", _stamp(filters.end + timedelta(days=1), postgres))
    if country is not None:
        where.add("country = {}", country)
    return where


# Another order than METRICS.md's: the column, then date and import order (ties stay stable).
# The database sorts the lines in the filters for each such page (no index for it, no key):
# a narrow filter makes it quick. Newest first reads the date index backwards (a deep page
# skips the lines before it); only the default order pages by key at any depth.
_SORTED_BY = {"quantity": "quantity", "unit_price": "unit_price"}
# exact on both engines: NUMERIC on PostgreSQL; SQLite's REAL prices as whole thousandths
_REVENUE = {True: "quantity * unit_price", False: "quantity * CAST(ROUND(unit_price * 1000) AS INTEGER)"}


def _one_customer(where: _Where, grain: pl.DataFrame, customer: int) -> pl.DataFrame:
    """Narrow `where` and the invoice grain to one customer's lines: their invoices (few, read
    through the invoice-number index) with their id. Returns their rows of the grain."""
    theirs = grain.filter(pl.col("customer_id") == customer)
    invoices = theirs.get_column("invoice_no").unique().to_list()
    if not invoices:  # nobody by that id (perhaps beyond the column's 32 bits): no line, no query of it
        where.add("FALSE")
    else:
        where.add(where.one_of("invoice_no", invoices)).add("customer_id = {}", customer)
    return theirs


def _order_by(sort: str, postgres: bool) -> str:
    column, direction = sort.removeprefix("-"), "DESC" if sort.startswith("-") else "ASC"
    if column == "invoice_date":
        return f"invoice_date {direction}, id {direction}"
    return f"{_SORTED_BY.get(column) or _REVENUE[postgres]} {direction}, invoice_date, id"


async def page(
    ds: Dataset,
    filters: Filters,
    q: str | None,
    page: int,
    size: int,
    after: int | None = None,
    sort: str = "invoice_date",
    customer: int | None = None,
) -> Page:
    in_range("page", page, (1, MAX_PAGE))
    in_range("size", size, SIZE_RANGE)
    postgres = _postgres()
    where = _filtered(ds, filters, postgres)
    grain = shape_in(ds, "sales", filters)
    offset = (page - 1) * size
    needle = (q or "").strip().lower()
    lines: list[dict] = []
    if customer is not None:  # a customer has a few thousand lines at most: the database counts and sorts them
        grain = _one_customer(where, grain, customer)
        if needle:
            search = await asyncio.to_thread(_Search, ds, shape_in(ds, "products", filters), grain, needle)
            where.add(search.predicate(where, postgres))
        counted = await _rows(f"SELECT COUNT(*) AS n FROM transactions WHERE {where.sql}", *where.values)
        total = int(counted[0]["n"])
        if offset < total:
            sql = f"SELECT {_COLUMNS} FROM transactions WHERE {where.sql} ORDER BY {_order_by(sort, postgres)}"
            lines = await _rows(f"{sql} LIMIT {size} OFFSET {offset}", *where.values)
    elif sort != "invoice_date":  # the shapes know only the date order: the database sorts
        by = _order_by(sort, postgres)
        sorted_where = where.copy()
        if needle:
            search = await asyncio.to_thread(_Search, ds, shape_in(ds, "products", filters), grain, needle)
            total = int((await search.per_day(where, postgres)).get_column("lines").sum() or 0)
            sorted_where.add(search.predicate(sorted_where, postgres))
        else:
            total = int(grain.get_column("lines").sum() or 0)
        if offset < total:
            sql = f"SELECT {_COLUMNS} FROM transactions WHERE {sorted_where.sql} ORDER BY {by}"
            lines = await _rows(f"{sql} LIMIT {size} OFFSET {offset}", *sorted_where.values)
    elif needle:
        # the in-memory work in a thread: at 50x the invoice grain has a million rows
        search = await asyncio.to_thread(_Search, ds, shape_in(ds, "products", filters), grain, needle)
        days = await search.per_day(where, postgres)
        total = int(days.get_column("lines").sum() or 0)
        if offset < total:
            lines = await _searched(where, search, days, offset, size, postgres)
    else:
        total = int(grain.get_column("lines").sum() or 0)
        if offset < total:
            lines = await _listed(where, grain, offset, size, after, postgres)
    more = offset + len(lines) < total
    return Page(
        items=[_line(row) for row in lines],
        page=page,
        size=size,
        total=total,
        pages=-(-total // size),
        next_after=int(lines[-1]["id"])
        if lines and more and not needle and sort == "invoice_date" and customer is None
        else None,
    )


EXPORT_CHUNK = 5_000  # lines per read of an export: memory stays at one chunk


async def stream(
    ds: Dataset,
    filters: Filters,
    q: str | None,
    sort: str = "invoice_date",
    customer: int | None = None,
    chunk: int = EXPORT_CHUNK,
) -> AsyncIterator[list[Line]]:
    """Every line in the filters, in the page's order, a chunk at a time (the CSV export).

    Each chunk continues after the last line of the one before by its sort key, so no read
    skips lines it has read before: the whole table costs one pass, at any size."""
    postgres = _postgres()
    where = _filtered(ds, filters, postgres)
    needle = (q or "").strip().lower()
    grain = shape_in(ds, "sales", filters)
    if customer is not None:
        grain = _one_customer(where, grain, customer)
    if needle:
        search = await asyncio.to_thread(_Search, ds, shape_in(ds, "products", filters), grain, needle)
        where.add(search.predicate(where, postgres))
    column, descending = sort.removeprefix("-"), sort.startswith("-")
    key = "invoice_date" if column == "invoice_date" else _SORTED_BY.get(column) or _REVENUE[postgres]
    if column == "invoice_date":
        order = "invoice_date DESC, id DESC" if descending else "invoice_date, id"
    else:
        order = f"{key} {'DESC' if descending else 'ASC'}, invoice_date, id"
    after: tuple[Any, Any, Any] | None = None
    while True:
        page = where.copy()
        if after is not None:
            value, stamp, last_id = after
            if column == "invoice_date":
                page.add(f"(invoice_date, id) {'<' if descending else '>'} ({{}}, {{}})", stamp, last_id)
            else:
                past = "<" if descending else ">"
                page.add(
                    f"({key} {past} {{}} OR ({key} = {{}} AND (invoice_date, id) > ({{}}, {{}})))",
                    value,
                    value,
                    stamp,
                    last_id,
                )
        sql = f"SELECT {_COLUMNS}, {key} AS sort_key FROM transactions WHERE {page.sql} ORDER BY {order}"
        rows = await _rows(f"{sql} LIMIT {chunk}", *page.values)
        if not rows:
            return
        yield [_line(row) for row in rows]
        if len(rows) < chunk:
            return
        last = rows[-1]
        after = (last["sort_key"], last["invoice_date"], last["id"])


async def customer_products(customer: int, invoices: list[str], limit: int = 10) -> list[CustomerProduct]:
    """A customer's top products by revenue (R4: postage and fees left out, ties by code) in
    their `invoices`, read from their lines through the invoice-number index."""
    if not invoices:
        return []
    postgres = _postgres()
    where = _Where(postgres)
    where.add(where.one_of("invoice_no", invoices)).add("customer_id = {}", customer)
    key = product_key(postgres)
    rows = await _rows(
        f"SELECT {key} AS code, description, invoice_no, COUNT(*) AS lines, SUM(quantity) AS units, "
        f"SUM(quantity * {price_milli(postgres)}) AS milli FROM transactions WHERE {where.sql} "
        f"GROUP BY {key}, description, invoice_no",
        *where.values,
    )
    if not rows:
        return []
    frame = pl.DataFrame(
        rows,
        schema={
            "code": pl.String,
            "description": pl.String,
            "invoice_no": pl.String,
            "lines": pl.Int64,
            "units": pl.Int64,
            "milli": pl.Int64,
        },
    ).filter(~not_a_product(pl.col("code")))
    described = (
        frame.filter(pl.col("description").is_not_null())
        .group_by("code", "description")
        .agg(pl.col("lines").sum())
        .sort(["code", "lines", "description"], descending=[False, True, False])
        .group_by("code", maintain_order=True)
        .first()
        .drop("lines")
    )
    top = (
        frame.group_by("code")
        .agg(pl.col("milli").sum(), pl.col("units").sum(), pl.col("invoice_no").n_unique().alias("orders"))
        .sort(["milli", "code"], descending=[True, False])
        .head(limit)
        .join(described, on="code", how="left", maintain_order="left")
    )
    return [
        CustomerProduct(
            stock_code=row["code"],
            description=row["description"],
            revenue=money(row["milli"]),
            units_sold=row["units"],
            orders=row["orders"],
        )
        for row in top.iter_rows(named=True)
    ]


def _start(counts: pl.DataFrame, key: str, offset: int) -> tuple[Any, int, pl.Series]:
    """The row of `counts` (lines per `key`, in order) where line `offset` is, how many of its
    lines come before it, and the running totals."""
    ends = counts.get_column("lines").cum_sum()
    at = int(ends.search_sorted(offset, side="right"))
    return counts.get_column(key)[at], offset - (int(ends[at - 1]) if at else 0), ends


async def _listed(
    where: _Where, grain: pl.DataFrame, offset: int, size: int, after: int | None, postgres: bool
) -> list[dict]:
    order = f"ORDER BY invoice_date, id LIMIT {size}"
    if after is not None:
        key = await _rows("SELECT invoice_date FROM transactions WHERE id = {}", after)
        if key:  # a key of lines replaced since the link was made falls back to the page number
            sql = f"SELECT {_COLUMNS} FROM transactions WHERE {where.sql} AND (invoice_date, id) > ({{}}, {{}}) {order}"
            return await _rows(sql, *where.values, key[0]["invoice_date"], after)
    # the timestamp the page starts at, from the grain's lines per timestamp (in a thread: see page)
    counts = await asyncio.to_thread(
        lambda: grain.group_by("invoice_date").agg(pl.col("lines").sum()).sort("invoice_date")
    )
    start, skip, _ = _start(counts, "invoice_date", offset)
    sql = f"SELECT {_COLUMNS} FROM transactions WHERE {where.sql} AND invoice_date >= {{}} {order} OFFSET {skip}"
    return await _rows(sql, *where.values, _stamp(start, postgres))


async def _searched(
    where: _Where, search: _Search, days: pl.DataFrame, offset: int, size: int, postgres: bool
) -> list[dict]:
    """The page's matching lines, read from the days it spans only."""
    first, skip, ends = _start(days, "day", offset)
    last_at = min(int(ends.search_sorted(offset + size, side="left")), days.height - 1)
    last = days.get_column("day")[last_at]
    span = where.copy().add("invoice_date >= {}", _stamp(first, postgres))
    span.add("invoice_date < {}", _stamp(last + timedelta(days=1), postgres))
    matching = search.predicate(span, postgres)
    sql = f"SELECT {_COLUMNS} FROM transactions WHERE {span.sql} AND {matching} ORDER BY invoice_date, id"
    return await _rows(f"{sql} LIMIT {size} OFFSET {skip}", *span.values)


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
