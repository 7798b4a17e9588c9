"""Read the stored transactions into one Polars frame: ADBC on PostgreSQL, sqlite3 on SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import polars as pl

from app.ingest.service import dataset_tag
from app.lib.settings import Settings
from app.metrics.analytics import RAW_SCHEMA, Dataset, prepare

# NUMERIC arrives from ADBC as a decimal string type; float8 is what Polars reads fastest.
QUERY = (
    "SELECT id, invoice_no, stock_code, description, quantity, invoice_date,"
    " CAST(unit_price AS DOUBLE PRECISION) AS unit_price, customer_id, country FROM transactions"
)
CONNECT_TIMEOUT_SECONDS = 5


class DatasetChanged(Exception):
    """An import committed while the frame was read three times in a row."""


def adbc_uri(database_url: str) -> str:
    """The libpq URI ADBC wants, with a connect timeout so a dead server fails fast."""
    parts = urlsplit(database_url.replace("postgres://", "postgresql://", 1))
    query = dict(parse_qsl(parts.query))
    query.setdefault("connect_timeout", str(CONNECT_TIMEOUT_SECONDS))
    query.setdefault("application_name", "shop-analytics")
    return urlunsplit(parts._replace(query=urlencode(query)))


def read_transactions(settings: Settings) -> pl.DataFrame:
    """Every stored row (blocking: run it in a thread)."""
    if settings.is_postgres:
        return pl.read_database_uri(QUERY, adbc_uri(settings.database_url), engine="adbc")
    path = settings.sqlite_path
    if not path.exists():
        return pl.DataFrame(schema=RAW_SCHEMA)
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute(QUERY).fetchall()
    finally:
        connection.close()
    schema: dict[str, pl.DataType] = {**RAW_SCHEMA, "invoice_date": pl.String()}
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    # Piccolo stores timestamps in SQLite as text, "2010-12-01 08:26:00"
    return frame.with_columns(
        pl.col("invoice_date").str.slice(0, 19).str.replace("T", " ").str.to_datetime("%Y-%m-%d %H:%M:%S")
    )


async def load_dataset(settings: Settings) -> Dataset:
    """The current dataset version, cleaned; read again if an import commits meanwhile."""
    for _ in range(3):
        before = await dataset_tag()
        raw = await asyncio.to_thread(read_transactions, settings)
        # Every import is one transaction that changes the tag: the same tag on both
        # sides means the rows read are exactly that version's.
        if await dataset_tag() == before:
            return await asyncio.to_thread(prepare, raw, before)
        del raw
    raise DatasetChanged("the data changed during three reads in a row; try again when the imports finish")
