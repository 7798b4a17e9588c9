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
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import polars as pl
import pyarrow as pa

from app.ingest.service import TAG_QUERY, tag_of
from app.lib import memory
from app.lib.errors import AppError
from app.lib.lists import mapped
from app.lib.settings import Settings
from app.metrics import customers
from app.metrics.analytics import (
    INVOICE_SCHEMA,
    KEY_SCHEMA,
    PRODUCT_SCHEMA,
    RETURN_SCHEMA,
    Dataset,
    Shapes,
    key_ranks,
    prepare,
)

TABLES = {  # what a dataset is read from: Shapes' fields, their tables and columns
    "invoices": ("sales_invoices", INVOICE_SCHEMA),
    "products": ("product_days", PRODUCT_SCHEMA),
    "returns": ("product_returns", RETURN_SCHEMA),
    "keys": ("product_keys", KEY_SCHEMA),
}


class ShapesUnavailable(AppError):
    """The shapes could not be read consistently; the next request reads them again."""

    status_code = 503

    def __init__(self, message: str) -> None:
        super().__init__(f"the figures could not be read ({message}): try again", headers={"Retry-After": "5"})


SECOND_SCAN = "SELECT {check}, {lists} FROM {table}"  # a table's lists (`Snapshot.frame`)
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
                # (a table's scans start at its first page, in one process: `frame` reads one twice)
                self._cursor.execute("SET LOCAL synchronize_seqscans = off")
                self._cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
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

    def frame(self, table: str, schema: dict[str, pl.DataType], lookup: np.ndarray | None = None) -> pl.DataFrame:
        """The `schema` columns of `table`, in no particular order; with `lookup`, each number n
        of a list column becomes lookup[n] as it is read."""
        if self._sqlite is not None:
            return sqlite_frame(self._sqlite, table, schema, lookup)
        lists = [name for name, kind in schema.items() if isinstance(kind, pl.List)]
        if lookup is None or not lists:
            return pl.read_database(f"SELECT {', '.join(schema)} FROM {table}", self._cursor)
        # The lists come from a second scan of the table, their numbers replaced a batch at a
        # time: read with the other columns, the 32-bit ids (the baskets: 100 MB at 50x) lived
        # as long as those, as Arrow frees a batch whole. Two scans in one snapshot, with no
        # parallel plan and no synchronised start (set by __init__), give the rows in the same
        # order; a column read by both checks it.
        (name,) = lists  # (the baskets: the one list column)
        frame = pl.read_database(f"SELECT {', '.join(n for n in schema if n != name)} FROM {table}", self._cursor)
        check = next(other for other, kind in schema.items() if kind != pl.String() and other != name)
        self._cursor.execute(SECOND_SCAN.format(check=check, lists=name, table=table))
        again: list[pa.Array] = []

        def lists_of(batches: pa.RecordBatchReader) -> Iterator[pa.ListArray]:
            for batch in batches:  # (each batch's buffers are freed once its lists are mapped)
                again.append(batch.column(0))
                yield batch.column(1)

        column = mapped(name, lists_of(self._cursor.fetch_record_batch()), lookup)
        if frame.height != len(column) or (
            frame.height and not frame.get_column(check).equals(pl.Series(check, pa.chunked_array(again)))
        ):
            raise ShapesUnavailable(f"{table}: two reads in one snapshot gave its rows in another order")
        return frame.with_columns(column) if frame.height else _empty(schema, lookup)


def read_shapes(settings: Settings) -> tuple[Shapes, str]:
    """The shapes as stored and the dataset tag of what was read, in one snapshot (blocking:
    run it in a thread)."""
    if not settings.is_postgres and not settings.sqlite_path.exists():
        lookup, _ = key_ranks(pl.DataFrame(schema=KEY_SCHEMA))
        return Shapes(**{name: _empty(schema, lookup) for name, (_, schema) in TABLES.items()}), "0"
    with Snapshot(settings) as snapshot:
        tag = snapshot.tag()  # an import is one transaction: this snapshot sees all of one, or none
        keys = snapshot.frame(*TABLES["keys"])
        lookup, _ = key_ranks(keys)  # the baskets are read as the keys' ranks (Shapes.invoices)
        frames = {
            name: snapshot.frame(table, schema, lookup) for name, (table, schema) in TABLES.items() if name != "keys"
        }
        return Shapes(**{**frames, "keys": keys}), tag


def _empty(schema: dict[str, pl.DataType], lookup: np.ndarray | None) -> pl.DataFrame:
    """A frame of no rows with `schema`'s columns, its lists of `lookup`'s type."""
    if lookup is None:
        return pl.DataFrame(schema=schema)
    ranks = pl.List(pl.Series(lookup[:0]).dtype)
    return pl.DataFrame(schema={name: ranks if isinstance(kind, pl.List) else kind for name, kind in schema.items()})


def sqlite_frame(
    connection: sqlite3.Connection, table: str, schema: dict[str, pl.DataType], lookup: np.ndarray | None = None
) -> pl.DataFrame:
    """A SQLite table's `schema` columns as a frame, days and timestamps parsed (with `lookup`,
    its lists' numbers replaced as `Snapshot.frame` says).

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
    lists = [name for name, kind in schema.items() if isinstance(kind, pl.List)]
    frames = []
    for first in range(lowest or 0, (highest or -1) + 1, CHUNK_ROWS):
        count, document = connection.execute(chunk, (first, first + CHUNK_ROWS)).fetchone()
        if count:  # (an empty chunk's arrays would explode into a row of nulls)
            frame = pl.read_json(io.BytesIO(document), schema=json_schema).explode(columns)
            if lookup is not None:
                frame = frame.with_columns(mapped(name, [frame.get_column(name).to_arrow()], lookup) for name in lists)
            frames.append(frame)
    if not frames:
        return _empty(schema, lookup)
    return pl.concat(frames).with_columns(
        pl.col(name).str.to_date("%Y-%m-%d")
        if kind == pl.Date()
        else pl.col(name).str.slice(0, 19).str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us")
        if isinstance(kind, pl.Datetime)
        else pl.col(name).cast(kind)
        for name, kind in schema.items()
        if lookup is None or name not in lists
    )


def _json_kind(kind: pl.DataType) -> pl.DataType:
    if isinstance(kind, pl.List):
        return pl.List(pl.Int64())
    return pl.String() if kind in (pl.Date(), pl.String()) or isinstance(kind, pl.Datetime) else pl.Int64()


async def load_dataset(settings: Settings) -> Dataset:
    """The current dataset version's shapes, prepared."""
    return await asyncio.to_thread(_load, settings)


def _load(settings: Settings) -> Dataset:
    dataset = prepare(*read_shapes(settings))  # the shapes as stored go once the call returns
    customers.histories(dataset, None)  # (with them held, at 50x they were 250 MB of its peak)
    memory.release()
    return dataset


def prepared(shapes: Shapes, tag: str) -> Dataset:
    """The Dataset of `shapes`, with the customer views' shared aggregate (part of the load, like the frames)."""
    dataset = prepare(shapes, tag)
    customers.histories(dataset, None)
    return dataset
