"""Read the data shapes (app/ingest/shapes.py) into Polars frames: ADBC on PostgreSQL, SQLite's
JSON functions on SQLite; the basket grain in the background, in a snapshot of its own.

Never the raw lines: what a process holds grows with invoices, with products x days x
countries, and with the distinct products of each invoice (the basket grain, which the pairs
bought together need); bench/README.md has the figures.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import polars as pl

from app.ingest.service import TAG_QUERY, dataset_tag, tag_of
from app.lib.errors import AppError
from app.lib.settings import Settings
from app.metrics import customers
from app.metrics.analytics import BASKET_SCHEMA, INVOICE_SCHEMA, PRODUCT_SCHEMA, Dataset, prepare, prepare_baskets

INVOICES_TABLE, PRODUCTS_TABLE, BASKETS_TABLE = "sales_invoices", "product_days", "basket_items"
CHUNK_ROWS = 50_000  # rowids per JSON document of a SQLite read (at most about 6 MB)
# the basket grain's reads (2: one may still be going when the next dataset version's starts)
_BACKGROUND = ThreadPoolExecutor(max_workers=2, thread_name_prefix="basket-grain")
CONNECT_TIMEOUT_SECONDS = 5


class DatasetChanged(AppError):
    """An import committed while the shapes were read (three times in a row, or between the
    basket grain's snapshot and the others')."""

    status_code = 503


def adbc_uri(database_url: str) -> str:
    """The libpq URI ADBC wants, with a connect timeout so a dead server fails fast."""
    parts = urlsplit(database_url.replace("postgres://", "postgresql://", 1))
    query = dict(parse_qsl(parts.query))
    query.setdefault("connect_timeout", str(CONNECT_TIMEOUT_SECONDS))
    query.setdefault("application_name", "shop-analytics")
    return urlunsplit(parts._replace(query=urlencode(query)))


class Snapshot:
    """Reads of the shapes' tables in one read-only snapshot of the database."""

    def __init__(self, settings: Settings) -> None:
        if settings.is_postgres:
            from adbc_driver_postgresql import dbapi  # type: ignore[import-untyped]

            self._sqlite: sqlite3.Connection | None = None
            self._connection = dbapi.connect(adbc_uri(settings.database_url))
            try:
                self._cursor = self._connection.cursor()
                # REPEATABLE READ: every read sees the same commit
                self._cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            except BaseException:
                self._connection.close()
                raise
        else:
            self._sqlite = sqlite3.connect(f"file:{settings.sqlite_path}?mode=ro", uri=True, timeout=30)
            self._sqlite.execute("BEGIN")  # WAL: the reads' snapshot is the first read's

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *_: object) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        else:
            self._cursor.close()
            self._connection.close()  # (the transaction read nothing worth a COMMIT)

    def tag(self) -> str:
        """The dataset tag of the rows this snapshot sees (app.ingest.service.dataset_tag)."""
        if self._sqlite is not None:
            row = self._sqlite.execute(TAG_QUERY).fetchone()
        else:
            self._cursor.execute(TAG_QUERY)
            row = self._cursor.fetchone()
        return tag_of(*row) if row else "0"

    def frame(self, table: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        """The `schema` columns of `table`, in no particular order."""
        if self._sqlite is not None:
            return sqlite_frame(self._sqlite, table, schema)
        return pl.read_database(f"SELECT {', '.join(schema)} FROM {table}", self._cursor)


def read_shapes(
    settings: Settings, tag: str | None = None, baskets: bool = True
) -> tuple[pl.DataFrame, pl.DataFrame, Future[pl.DataFrame]]:
    """The shapes as stored (invoices, products) and the prepared basket grain to come
    (blocking: run it in a thread). The basket grain, the largest, is read meanwhile in the
    background, in its own snapshot, which must be of the dataset version `tag` (None: any):
    the views that do not need it answer without waiting for it. `baskets=False` leaves it
    empty (the benchmarks' "before")."""
    if not settings.is_postgres and not settings.sqlite_path.exists():
        empty = pl.DataFrame(schema=INVOICE_SCHEMA)
        return empty, pl.DataFrame(schema=PRODUCT_SCHEMA), _BACKGROUND.submit(prepare_baskets, empty, empty_baskets())
    with Snapshot(settings) as snapshot:
        invoices = snapshot.frame(INVOICES_TABLE, INVOICE_SCHEMA)
        grain = _BACKGROUND.submit(_read_baskets, settings, invoices, tag, baskets)
        products = snapshot.frame(PRODUCTS_TABLE, PRODUCT_SCHEMA)
    return invoices, products, grain


def _read_baskets(settings: Settings, invoices: pl.DataFrame, tag: str | None, baskets: bool) -> pl.DataFrame:
    with Snapshot(settings) as snapshot:
        if tag is not None and snapshot.tag() != tag:
            raise DatasetChanged("an import committed while the data was read")  # the next request reads again
        rows = snapshot.frame(BASKETS_TABLE, BASKET_SCHEMA) if baskets else empty_baskets()
    return prepare_baskets(invoices, rows)


def empty_baskets() -> pl.DataFrame:
    return pl.DataFrame(schema=BASKET_SCHEMA)


def sqlite_frame(connection: sqlite3.Connection, table: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """A SQLite table's `schema` columns as a frame, days and timestamps parsed.

    Python's sqlite3 makes a tuple of objects per row (about 2 s for the half a million rows of
    the basket grain); SQLite's JSON functions make one JSON document per chunk of rows instead,
    which Polars parses in a fraction of that. Rows come in rowid ranges, which bounds the size
    of each document; their order is not kept (the Dataset sorts what it needs)."""
    columns = list(schema)
    # SQLite has no dates: days and timestamps are text, booleans 0/1
    json_schema = {
        name: pl.List(pl.String() if kind in (pl.Date(), pl.String()) or isinstance(kind, pl.Datetime) else pl.Int64())
        for name, kind in schema.items()
    }
    arrays = ", ".join(f"'{name}', json_group_array({name})" for name in columns)
    chunk = f"SELECT count(*), CAST(json_object({arrays}) AS BLOB) FROM {table} WHERE rowid >= ? AND rowid < ?"
    lowest, highest = connection.execute(f"SELECT min(rowid), max(rowid) FROM {table}").fetchone()
    frames = []
    for first in range(lowest or 0, (highest or -1) + 1, CHUNK_ROWS):
        count, document = connection.execute(chunk, (first, first + CHUNK_ROWS)).fetchone()
        if count:  # (an empty chunk's arrays would explode into a row of nulls)
            frames.append(pl.read_json(io.BytesIO(document), schema=json_schema).explode(columns))
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=json_schema).explode(columns)
    return frame.with_columns(
        pl.col(name).str.to_date("%Y-%m-%d")
        if kind == pl.Date()
        else pl.col(name).str.slice(0, 19).str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us")
        if isinstance(kind, pl.Datetime)
        else pl.col(name).cast(kind)
        for name, kind in schema.items()
    )


async def load_dataset(settings: Settings) -> Dataset:
    """The current dataset version's shapes, prepared; read again if an import commits meanwhile."""
    for _ in range(3):
        before = await dataset_tag()
        invoices, products, baskets = await asyncio.to_thread(read_shapes, settings, before)
        # Every import is one transaction that changes the tag: the same tag on both
        # sides means the rows read are exactly that version's.
        if await dataset_tag() == before:
            return await asyncio.to_thread(_prepared, invoices, products, baskets, before)
    raise DatasetChanged("the data changed during three reads in a row; try again when the imports finish")


def _prepared(invoices: pl.DataFrame, products: pl.DataFrame, baskets: Future[pl.DataFrame], tag: str) -> Dataset:
    dataset = prepare(invoices, products, tag, baskets)
    customers.histories(dataset, None)  # the customer views' shared aggregate: part of the load, like the frames
    return dataset
