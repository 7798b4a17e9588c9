"""Read the data shapes (app/ingest/shapes.py) into Polars frames, in one read-only snapshot:
ADBC on PostgreSQL, SQLite's JSON functions on SQLite.

Never the raw lines: what a process holds grows with invoices (and a few bytes per distinct
product of each, the baskets) and with products x days x countries; bench/README.md has the
figures.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import polars as pl

from app.ingest.service import TAG_QUERY, tag_of
from app.lib.settings import Settings
from app.metrics import customers
from app.metrics.analytics import INVOICE_SCHEMA, KEY_SCHEMA, PRODUCT_SCHEMA, RETURN_SCHEMA, Dataset, Shapes, prepare

TABLES = {  # what a dataset is read from: Shapes' fields, their tables and columns
    "invoices": ("sales_invoices", INVOICE_SCHEMA),
    "products": ("product_days", PRODUCT_SCHEMA),
    "returns": ("product_returns", RETURN_SCHEMA),
    "keys": ("product_keys", KEY_SCHEMA),
}
CHUNK_ROWS = 50_000  # rowids per JSON document of a SQLite read (at most about 6 MB)
CONNECT_TIMEOUT_SECONDS = 5


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


def read_shapes(settings: Settings) -> tuple[Shapes, str]:
    """The shapes as stored and the dataset tag of what was read, in one snapshot (blocking:
    run it in a thread)."""
    if not settings.is_postgres and not settings.sqlite_path.exists():
        return Shapes(**{name: pl.DataFrame(schema=schema) for name, (_, schema) in TABLES.items()}), "0"
    with Snapshot(settings) as snapshot:
        tag = snapshot.tag()  # an import is one transaction: this snapshot sees all of one, or none
        return Shapes(**{name: snapshot.frame(table, schema) for name, (table, schema) in TABLES.items()}), tag


def sqlite_frame(connection: sqlite3.Connection, table: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """A SQLite table's `schema` columns as a frame, days and timestamps parsed.

    Python's sqlite3 makes a tuple of objects per row (about 2 s for the half a million rows of
    the basket grain); SQLite's JSON functions make one JSON document per chunk of rows instead,
    which Polars parses in a fraction of that. Rows come in rowid ranges, which bounds the size
    of each document; their order is not kept (the Dataset sorts what it needs)."""
    columns = list(schema)
    # SQLite has no dates: days and timestamps are text, booleans 0/1; a list is JSON text
    json_schema = {name: pl.List(_json_kind(kind)) for name, kind in schema.items()}
    arrays = ", ".join(
        f"'{name}', json_group_array({f'json({name})' if isinstance(kind, pl.List) else name})"
        for name, kind in schema.items()
    )
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


def _json_kind(kind: pl.DataType) -> pl.DataType:
    if isinstance(kind, pl.List):
        return pl.List(pl.Int64())
    return pl.String() if kind in (pl.Date(), pl.String()) or isinstance(kind, pl.Datetime) else pl.Int64()


async def load_dataset(settings: Settings) -> Dataset:
    """The current dataset version's shapes, prepared."""
    return await asyncio.to_thread(lambda: prepared(*read_shapes(settings)))


def prepared(shapes: Shapes, tag: str) -> Dataset:
    """The Dataset of `shapes`, with the customer views' shared aggregate (part of the load, like the frames)."""
    dataset = prepare(shapes, tag)
    customers.histories(dataset, None)
    return dataset
