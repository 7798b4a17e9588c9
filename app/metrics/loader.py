"""Read the data shapes (app/ingest/shapes.py) into Polars frames: ADBC on PostgreSQL, sqlite3 on SQLite.

Never the raw lines: what a process holds grows with invoices, with products x days x
countries, and with the distinct products of each invoice (the basket grain, which the pairs
bought together need); bench/README.md has the figures.
"""

from __future__ import annotations

import asyncio
import sqlite3
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import polars as pl

from app.ingest.service import dataset_tag
from app.lib.settings import Settings
from app.metrics import customers
from app.metrics.analytics import BASKET_SCHEMA, INVOICE_SCHEMA, PRODUCT_SCHEMA, Dataset, prepare

INVOICES = (
    "SELECT invoice_no, invoice_date, day, country, customer_id, cancelled, lines, units, revenue_milli"
    " FROM sales_invoices ORDER BY invoice_date"
)
PRODUCTS = "SELECT day, country, product, description, lines, units, revenue_milli FROM product_days"
BASKETS = "SELECT invoice_no, day, country, customer_id, product, lines, units, revenue_milli FROM basket_items"
CONNECT_TIMEOUT_SECONDS = 5


class DatasetChanged(Exception):
    """An import committed while the shapes were read three times in a row."""


def adbc_uri(database_url: str) -> str:
    """The libpq URI ADBC wants, with a connect timeout so a dead server fails fast."""
    parts = urlsplit(database_url.replace("postgres://", "postgresql://", 1))
    query = dict(parse_qsl(parts.query))
    query.setdefault("connect_timeout", str(CONNECT_TIMEOUT_SECONDS))
    query.setdefault("application_name", "shop-analytics")
    return urlunsplit(parts._replace(query=urlencode(query)))


def read_shapes(settings: Settings, baskets: bool = True) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The shapes as stored (invoices, products, baskets), read in one snapshot (blocking: run
    it in a thread); `baskets=False` leaves the basket grain empty (the benchmarks' "before")."""
    if settings.is_postgres:
        from adbc_driver_postgresql import dbapi  # type: ignore[import-untyped]

        with dbapi.connect(adbc_uri(settings.database_url)) as connection, connection.cursor() as cursor:
            # one REPEATABLE READ transaction: the tables of the same commit
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            invoices = pl.read_database(INVOICES, cursor)
            products = pl.read_database(PRODUCTS, cursor)
            basket_frame = pl.read_database(BASKETS if baskets else BASKETS + " WHERE FALSE", cursor)
            cursor.execute("COMMIT")
        return invoices, products, basket_frame
    path = settings.sqlite_path
    if not path.exists():
        return (
            pl.DataFrame(schema=INVOICE_SCHEMA),
            pl.DataFrame(schema=PRODUCT_SCHEMA),
            pl.DataFrame(schema=BASKET_SCHEMA),
        )
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        connection.execute("BEGIN")  # one snapshot for the reads (WAL)
        invoice_rows = connection.execute(INVOICES).fetchall()
        product_rows = connection.execute(PRODUCTS).fetchall()
        basket_rows = connection.execute(BASKETS).fetchall() if baskets else []
    finally:
        connection.close()
    # SQLite stores days and timestamps as text ("2010-12-01", "2010-12-01 08:26:00")
    text = {"day": pl.String(), "invoice_date": pl.String()}
    invoice_frame = pl.DataFrame(invoice_rows, schema={**INVOICE_SCHEMA, **text}, orient="row")
    product_frame = pl.DataFrame(product_rows, schema={**PRODUCT_SCHEMA, "day": pl.String()}, orient="row")
    basket_frame = pl.DataFrame(basket_rows, schema={**BASKET_SCHEMA, "day": pl.String()}, orient="row")
    return (
        invoice_frame.with_columns(
            pl.col("day").str.to_date("%Y-%m-%d"),
            pl.col("invoice_date").str.slice(0, 19).str.to_datetime("%Y-%m-%d %H:%M:%S"),
        ),
        product_frame.with_columns(pl.col("day").str.to_date("%Y-%m-%d")),
        basket_frame.with_columns(pl.col("day").str.to_date("%Y-%m-%d")),
    )


async def load_dataset(settings: Settings) -> Dataset:
    """The current dataset version's shapes, prepared; read again if an import commits meanwhile."""
    for _ in range(3):
        before = await dataset_tag()
        invoices, products, baskets = await asyncio.to_thread(read_shapes, settings)
        # Every import is one transaction that changes the tag: the same tag on both
        # sides means the rows read are exactly that version's.
        if await dataset_tag() == before:
            return await asyncio.to_thread(_prepared, invoices, products, baskets, before)
    raise DatasetChanged("the data changed during three reads in a row; try again when the imports finish")


def _prepared(invoices: pl.DataFrame, products: pl.DataFrame, baskets: pl.DataFrame, tag: str) -> Dataset:
    dataset = prepare(invoices, products, tag, baskets)
    customers.histories(dataset, None)  # the customer views' shared aggregate: part of the load, like the frames
    return dataset
