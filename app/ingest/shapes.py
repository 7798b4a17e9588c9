"""The data shapes the views read instead of the raw lines, kept exact by the importer.

Three tables, each a pure aggregate of the `transactions` table, and a dictionary:

- `sales_invoices`, the invoice grain: one row per invoice, timestamp, country and customer
  (in real exports an invoice has one of each, give or take a minute). A cancellation's
  (C...) row sums all its lines; another invoice's row sums its sales lines only (METRICS.md
  "Sales lines"), and has `lines` 0 if it has none (so every stored country has a row);
  `all_lines` counts every stored line (the Data page's count, without a scan of the lines).
  `products` lists the distinct product keys of its sales lines, as `product_keys` ids: the
  basket, which the product views count (orders and customers per product, pairs bought
  together). As integers in the invoice's row it costs a few bytes per sales line, where a
  row per invoice and product (the first design) cost about 40 in every process.
  KPIs, series, countries and the transactions page's positions read it.
- `product_days`, the product grain: one row per day, country, product key (the stock code
  upper-cased) and description, over the sales lines. Top products read it.
- `product_returns`, the returns grain: one row per day, country and product key, over the
  cancellation lines (their units and revenue are negative). The product views read it.
- `product_keys`: every product key ever stored, with its id (never renumbered, so stored
  baskets stay valid; an import adds the new keys).

All three are maintained inside the import's own transaction, one of two ways:

- **from the file** (`Accumulator`): when the import touches no stored day (a first import,
  a replace of all data, a new month) its shape rows are the aggregate of its own lines,
  summed with Polars as the batches stream past (a tenth of the time of the SQL below);
- **from the lines** (`refresh_days`): otherwise every day the import touched (the days of its
  lines and of the stored lines it replaced) is deleted from the shapes and summed again
  from its lines in SQL. Whatever happened to those days (new invoices, skipped or replaced
  ones), their rows are again exactly the aggregate of their lines; the other days' lines did
  not change. An overlapping month costs a month's lines, not the table's.

Both ways compute the same thing (tests/integration/test_shapes.py checks each against a
plain-Python aggregate of the stored lines).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from app.ingest import pgcopy
from app.lib.lists import gathered

SHAPES = ("sales_invoices", "product_days", "product_returns")
KEYS_TABLE = "product_keys"

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
        # a sales invoice's basket: its sales lines' distinct key ids
        "basket": f"COALESCE(array_agg(DISTINCT k.id) FILTER (WHERE {SALES}), ARRAY[]::INTEGER[])",
    },
    "sqlite": {
        "price_milli": "CAST(ROUND(unit_price * 1000) AS INTEGER)",
        "day": "substr(invoice_date, 1, 10)",
        "product": "upper(stock_code)",
        "basket": f"json_group_array(DISTINCT k.id) FILTER (WHERE {SALES})",  # JSON text: '[3,17]'
    },
}


def _sql(postgres: bool) -> dict[str, str]:
    return _ENGINE_SQL["postgres" if postgres else "sqlite"]


def price_milli(postgres: bool) -> str:
    """The SQL of a line's unit price in whole thousandths (exact on both engines)."""
    return _sql(postgres)["price_milli"]


def product_key(postgres: bool) -> str:
    """The SQL of a line's product key (product_days.product): its stock code upper-cased."""
    return _sql(postgres)["product"]


def statements(postgres: bool) -> tuple[list[str], str]:
    """Delete and recompute the shapes for the days in [lo, hi) (parameters `lo`, `hi`): the
    product and returns grains first, then the invoice grain, whose baskets need the keys of
    the days' sales lines in `product_keys` (`ensure_keys`, from the product grain meanwhile)."""
    sql = _sql(postgres)
    day, price, product = sql["day"], sql["price_milli"], sql["product"]
    lo, hi = ("$1::date", "$2::date") if postgres else (":lo", ":hi")
    lines = f"invoice_date >= {lo} AND invoice_date < {hi}"
    grains = [
        *(f"DELETE FROM {table} WHERE day >= {lo} AND day < {hi}" for table in SHAPES),
        f"""INSERT INTO product_days (day, country, product, description, lines, units, revenue_milli)
            SELECT {day}, country, {product}, description, COUNT(*), SUM(quantity), SUM(quantity * {price})
            FROM transactions WHERE {lines} AND {SALES}
            GROUP BY {day}, country, {product}, description""",
        f"""INSERT INTO product_returns (day, country, product, lines, units, revenue_milli)
            SELECT {day}, country, {product}, COUNT(*), SUM(quantity), SUM(quantity * {price})
            FROM transactions WHERE {lines} AND {CANCELLED}
            GROUP BY {day}, country, {product}""",
    ]
    invoices = f"""INSERT INTO sales_invoices (invoice_no, invoice_date, day, country, customer_id, cancelled,
                                        all_lines, lines, units, revenue_milli, products)
            SELECT invoice_no, invoice_date, {day}, country, customer_id, {CANCELLED}, COUNT(*),
                   COUNT(CASE WHEN {COUNTED} THEN 1 END),
                   COALESCE(SUM(CASE WHEN {COUNTED} THEN quantity END), 0),
                   COALESCE(SUM(CASE WHEN {COUNTED} THEN quantity * {price} END), 0),
                   {sql["basket"]}
            FROM transactions LEFT JOIN product_keys AS k ON k.key = {product}
            WHERE {lines}
            GROUP BY invoice_no, invoice_date, country, customer_id
            ORDER BY 2, 1"""  # (invoice_date, invoice_no: by number, as the day is named invoice_date too)
    return grains, invoices


def _days(postgres: bool) -> str:
    """The days in [lo, hi) of a shape's `day`."""
    return "day >= $1 AND day < $2" if postgres else "day >= :lo AND day < :hi"


async def _fetch(connection: Any, postgres: bool, query: str, args: dict[str, Any] | None = None) -> list[tuple]:
    """Rows of `query` on the import's connection (asyncpg's with $1, $2 in `args`' order, or
    aiosqlite's with named parameters)."""
    if postgres:
        return [tuple(row) for row in await connection.fetch(query, *(args or {}).values())]
    cursor = await connection.execute(query, args or {})
    return [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in await cursor.fetchall()]


async def _execute(connection: Any, postgres: bool, statement: str, args: dict[str, Any]) -> None:
    if postgres:
        await connection.execute(statement, *args.values(), timeout=3600)
    else:
        await connection.execute(statement, args)


async def ensure_keys(connection: Any, postgres: bool, keys: list[str]) -> dict[str, int]:
    """The `product_keys` id of each of `keys`, those not stored yet added (imports run one at a
    time, so the next ids are free)."""
    known = {key: id_ for id_, key in await _fetch(connection, postgres, f"SELECT id, key FROM {KEYS_TABLE}")}
    new = sorted(set(keys) - known.keys())
    first = max(known.values(), default=0) + 1
    added = [(first + offset, key) for offset, key in enumerate(new)]
    if added:
        if postgres:
            await connection.copy_records_to_table(KEYS_TABLE, records=added, columns=["id", "key"])
        else:
            await connection.executemany(f"INSERT INTO {KEYS_TABLE} (id, key) VALUES (?, ?)", added)
    known.update((key, id_) for id_, key in added)
    return known


Days = tuple[date, date]  # [first day, the day after the last)


def day_bounds(first: object, last: object) -> Days | None:
    """The days of two stored timestamps (datetimes from PostgreSQL, text from SQLite)."""
    if first is None or last is None:
        return None
    return as_day(first), as_day(last) + timedelta(days=1)


def as_day(value: object) -> date:
    """A stored day or timestamp as a date (PostgreSQL gives dates and datetimes, SQLite text)."""
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
    """Recompute the shapes for `days` from the lines, in the caller's transaction."""
    if days is None:
        return
    lo, hi = days
    # SQLite stores days and timestamps as text, which compares in date order
    args: dict[str, Any] = {"lo": lo, "hi": hi} if postgres else {"lo": lo.isoformat(), "hi": hi.isoformat()}
    grains, invoices = statements(postgres)
    for statement in grains:
        await _execute(connection, postgres, statement, args)
    keys = await _fetch(
        connection, postgres, f"SELECT DISTINCT product FROM product_days WHERE {_days(postgres)}", args
    )
    await ensure_keys(connection, postgres, [key for (key,) in keys])
    await _execute(connection, postgres, invoices, args)


async def clear(connection: Any) -> None:
    """Empty the shapes and the key dictionary (replace all data)."""
    for table in (*SHAPES, KEYS_TABLE):
        await connection.execute(f"DELETE FROM {table}")


async def stored_on(connection: Any, postgres: bool, days: Days) -> bool:
    """Whether any stored line is on one of `days` (every stored line has an invoice grain row)."""
    lo, hi = days
    args: dict[str, Any] = {"lo": lo, "hi": hi} if postgres else {"lo": lo.isoformat(), "hi": hi.isoformat()}
    query = f"SELECT EXISTS (SELECT 1 FROM sales_invoices WHERE {_days(postgres)})"
    return bool((await _fetch(connection, postgres, query, args))[0][0])


# -- the shapes of a file's own lines ----------------------------------------------------------

INVOICE_KEY = ["invoice_no", "invoice_date", "country", "customer_id"]
PRODUCT_KEY = ["day", "country", "product", "description"]
RETURN_KEY = ["day", "country", "product"]
SUMS = ["lines", "units", "revenue_milli"]
INVOICE_SUMS = ["all_lines", *SUMS]
INVOICE_COPY_KINDS = {  # sales_invoices' columns as PostgreSQL's binary COPY writes them
    "invoice_no": "text",
    "invoice_date": "timestamp",
    "day": "date",
    "country": "text",
    "customer_id": "int4",
    "cancelled": "bool",
    "all_lines": "int4",
    "lines": "int4",
    "units": "int8",
    "revenue_milli": "int8",
    "products": "int4[]",
}
COMBINE_EVERY = 16  # batches between two foldings of the partial sums (bounds the memory)
SQLITE_WRITE_ROWS = 50_000


def _ascii_upper(code: pl.Expr) -> pl.Expr:
    """Upper-cased ASCII letters only, as the SQL's upper() (SQLite's, and PostgreSQL's in the C
    collation): stock codes are ASCII in practice, and the rare others keep their other letters."""
    ascii_only = code.str.contains(r"^[\x00-\x7f]*$")
    others = code.map_elements(lambda text: "".join(c.upper() if "a" <= c <= "z" else c for c in text), pl.String)
    return pl.when(ascii_only).then(code.str.to_uppercase()).otherwise(others)


class Accumulator:
    """The shapes of the lines that pass through `add` (the importer's valid rows, typed),
    summed per batch and folded together now and then. Baskets hold the keys' local numbers
    (`keys`, in first-seen order) until `write` knows their stored ids."""

    def __init__(self) -> None:
        self._invoices: list[pl.DataFrame] = []
        self._products: list[pl.DataFrame] = []
        self._returns: list[pl.DataFrame] = []
        self.keys: dict[str, int] = {}  # product key -> local number

    def _keyed(self, codes: pl.Series) -> pl.LazyFrame:
        """Per distinct stock code of a batch (a few thousand of its 500,000 lines, so each is
        upper-cased once): its product key and the key's local number, new keys numbered as
        they come."""
        distinct = codes.unique().to_frame()
        keys = distinct.select(_ascii_upper(pl.col("stock_code"))).to_series()
        numbers = [self.keys.setdefault(key, len(self.keys)) for key in keys.to_list()]
        return distinct.with_columns(keys.alias("product"), pl.Series("key", numbers, dtype=pl.UInt32)).lazy()

    def add(self, rows: pl.DataFrame) -> None:
        first = pl.col("invoice_no").str.slice(0, 1)
        cancelled = first == "C"
        sale = ~first.is_in(["C", "A"]) & (pl.col("quantity") > 0) & (pl.col("unit_price") > 0)
        counted = cancelled | sale
        revenue = pl.col("quantity").cast(pl.Int64) * (pl.col("unit_price") * 1000).cast(pl.Int64)
        lines = (
            rows.lazy()
            .join(self._keyed(rows.get_column("stock_code")), on="stock_code", how="left", nulls_equal=True)
            .with_columns(
                revenue.alias("revenue"),
                counted.alias("counted"),
                sale.alias("sale"),
            )
        )
        invoices = lines.group_by(INVOICE_KEY).agg(
            pl.len().alias("all_lines"),
            pl.col("counted").sum().alias("lines"),
            pl.col("quantity").filter(pl.col("counted")).sum().alias("units"),
            pl.col("revenue").filter(pl.col("counted")).sum().alias("revenue_milli"),
            pl.col("key").filter(pl.col("sale")).unique().alias("products"),
        )
        sums = (
            pl.len().alias("lines"),
            pl.col("quantity").sum().alias("units"),
            pl.col("revenue").sum().alias("revenue_milli"),
        )
        day = pl.col("invoice_date").dt.date().alias("day")
        products = lines.filter(pl.col("sale")).group_by(day, "country", "product", "description").agg(*sums)
        returns = lines.filter(cancelled).group_by(day, "country", "product").agg(*sums)
        invoice_frame, product_frame, return_frame = pl.collect_all([invoices, products, returns])
        self._invoices.append(invoice_frame)
        self._products.append(product_frame)
        self._returns.append(return_frame)
        if len(self._products) >= COMBINE_EVERY:
            self._fold()

    def _fold(self) -> None:
        # (the invoices' partial rows are not folded: an invoice is in one batch but at a
        # batch's edge, so folding them saves no memory, and each folding summed every row and
        # united every basket again: most of a large import's work on the shapes)
        self._products = [_folded(self._products, PRODUCT_KEY, SUMS).collect()]
        self._returns = [_folded(self._returns, RETURN_KEY, SUMS).collect()]

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame] | None:
        """(sales_invoices, product_days, product_returns rows), in the tables' column order, the
        baskets as local key numbers; None if no line was added. Called once: each is folded
        and shaped in one pass, and its partial sums let go at once."""
        if not self._invoices:
            return None
        invoices = (
            _merged(self._invoices)
            .select(
                "invoice_no",
                "invoice_date",
                pl.col("invoice_date").dt.date().alias("day"),
                "country",
                "customer_id",
                (pl.col("invoice_no").str.slice(0, 1) == "C").alias("cancelled"),
                "all_lines",
                *(pl.col(name).cast(pl.Int64) for name in SUMS),
                "products",
            )
            .sort("invoice_date", "invoice_no")  # stored in time order, they are read without a sort (loader)
            .collect()
        )
        self._invoices = []
        products, returns = (
            _folded(partial, key, SUMS).select(*key, *(pl.col(name).cast(pl.Int64) for name in SUMS)).collect()
            for partial, key in ((self._products, PRODUCT_KEY), (self._returns, RETURN_KEY))
        )
        self._products, self._returns = [], []
        return invoices, products, returns


def _folded(frames: list[pl.DataFrame], key: list[str], sums: list[str]) -> pl.LazyFrame:
    """The partial sums of `frames` summed per `key` (lazily: the caller collects)."""
    if len(frames) < 2:
        return (frames[0] if frames else pl.DataFrame()).lazy()
    return pl.concat(frames).lazy().group_by(key).agg(pl.col(name).sum() for name in sums)


def _merged(frames: list[pl.DataFrame]) -> pl.LazyFrame:
    """The invoices' partial rows of every batch, one row per invoice key: the few keys in two
    batches summed and their baskets united, the others as they are (lazily)."""
    rows = pl.concat(frames)
    twice = rows.select(pl.struct(INVOICE_KEY).is_duplicated()).to_series()
    if not twice.any():
        return rows.lazy()
    united = (
        rows.filter(twice)
        .group_by(INVOICE_KEY)
        .agg(
            *(pl.col(name).sum() for name in INVOICE_SUMS),
            pl.col("products").list.explode(keep_nulls=False, empty_as_null=False).unique(),
        )
    )
    return pl.concat([rows.filter(~twice), united.select(rows.columns)]).lazy()


async def _chunks(*parts: bytes | memoryview) -> AsyncIterator[bytes | memoryview]:
    for part in parts:
        yield part


async def write(connection: Any, postgres: bool, accumulator: Accumulator) -> None:
    """Insert the accumulated shape rows (the caller knows no stored line is on their days)."""
    frames = accumulator.frames()
    if frames is None:
        return
    invoices, products, returns = frames
    local = list(accumulator.keys)  # in local-number order
    ids = await ensure_keys(connection, postgres, local)
    lookup = np.array([ids[key] for key in local] or [0], dtype=np.int32)
    invoices = invoices.with_columns(gathered(invoices.get_column("products"), np.arange(invoices.height), lookup))
    if not postgres:  # SQLite has no arrays: the basket is JSON text
        baskets = pl.col("products").cast(pl.List(pl.String)).list.join(",")
        invoices = invoices.with_columns(pl.format("[{}]", baskets).alias("products"))
    elif not (await _fetch(connection, postgres, "SELECT EXISTS (SELECT FROM sales_invoices)"))[0][0]:
        # An empty grain (a first import, a replace of all data) emptied by this transaction:
        # its COPY then appends the rows in their order, skipping the free-space map (which put
        # some rows at the end of earlier pages), so the loader reads them in time order with
        # no sort. Readers of the grain wait for the commit, as they do for the lines' bulk load.
        await connection.execute("TRUNCATE sales_invoices")
    for table, frame in zip(SHAPES, (invoices, products, returns), strict=True):
        columns = frame.columns
        if postgres and table == "sales_invoices":  # (a Python tuple and list per invoice cost seconds at 50x)
            fields = [pgcopy.Field(name, INVOICE_COPY_KINDS[name]) for name in columns]
            source = _chunks(pgcopy.HEADER, pgcopy.encode(frame, fields), pgcopy.TRAILER)
            await connection.copy_to_table(table, source=source, columns=columns, format="binary", timeout=3600)
        elif postgres:
            await connection.copy_records_to_table(table, records=frame.iter_rows(), columns=columns, timeout=3600)
        else:
            insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            # a chunk's rows at a time: the Python tuples of a whole shape would all be held at once
            for chunk in frame.iter_slices(SQLITE_WRITE_ROWS):
                text = chunk.with_columns(  # SQLite keeps days and timestamps as text, as Piccolo writes them
                    pl.col(pl.Date).dt.to_string("%Y-%m-%d"), pl.col(pl.Datetime).dt.strftime("%Y-%m-%d %H:%M:%S")
                )
                await connection.executemany(insert, text.rows())
