"""The loader: the shapes read in one snapshot, the basket grain in the background of the same
dataset version, and SQLite's JSON read equal to a plain row-by-row one."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

import msgspec
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from app.ingest.service import dataset_tag
from app.lib.cache import make_cache
from app.lib.settings import get_settings
from app.metrics import loader
from app.metrics.analytics import Dataset, ShapesUnavailable, prepare
from app.metrics.service import MetricsService
from app.metrics.views import KPIS, PRODUCTS, KpisParams, ProductsParams
from tests import small_data
from tests.helpers import stored_shapes

pytestmark = pytest.mark.usefixtures("empty_db")


async def test_the_basket_grain_is_read_in_the_background_in_the_same_version(small):
    tag = await dataset_tag()
    invoices, products, baskets = await asyncio.to_thread(loader.read_shapes, get_settings(), tag)
    dataset = prepare(invoices, products, tag, baskets)
    grain = dataset.baskets  # waits for the background read
    assert not dataset.broken
    read = grain.select(
        "day",
        pl.col("country").cast(pl.String),
        "customer_id",
        pl.col("code").cast(pl.String),
        "units",
        "revenue_milli",
    )
    stored = sorted(
        (day, country, customer, product, units, milli)
        for _, day, country, customer, product, _, units, milli in (await stored_shapes())[2]
    )
    assert sorted(read.rows()) == stored and len(stored) > 0


async def test_a_basket_grain_of_another_version_breaks_the_dataset_and_it_is_read_again(small):
    settings = get_settings()
    loads, datasets = [], []

    async def load(settings_) -> Dataset:
        # the first load's basket read is told to expect an older version: what it sees when an
        # import commits between the two snapshots
        tag = await dataset_tag()
        loads.append(tag)
        expected = "0.0" if len(loads) == 1 else tag
        invoices, products, baskets = await asyncio.to_thread(loader.read_shapes, settings_, expected)
        datasets.append(prepare(invoices, products, tag, baskets))
        return datasets[-1]

    service = MetricsService(settings, make_cache(replace(settings, redis_url="")), load=load)
    kpis = msgspec.json.decode(await service.answer(KPIS, KpisParams()))  # no basket grain needed
    assert kpis["orders"] == small_data.FIRST_KPIS["orders"]
    broken = datasets[0]
    assert isinstance(broken.basket_rows.exception(), loader.DatasetChanged) and broken.broken
    with pytest.raises(ShapesUnavailable) as raised:  # what a product view would meet
        broken.baskets  # noqa: B018
    assert raised.value.status_code == 503 and "try again" in str(raised.value)
    listing = msgspec.json.decode(await service.answer(PRODUCTS, ProductsParams()))  # read again, and right
    assert len(loads) == 2 and listing["products"] > 0


COLUMNS = {"name": pl.String(), "day": pl.Date(), "amount": pl.Int64(), "flag": pl.Boolean()}


def _table(path: Path, rows: list[tuple]) -> sqlite3.Connection:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (name TEXT, day DATE, amount INTEGER, flag BOOLEAN)")
    connection.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    connection.commit()
    return connection


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_sqlite_json_read_equals_a_row_by_row_read(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(loader, "CHUNK_ROWS", chunk)
    texts = ['a "quoted", comma', "line\nbreak", "tab\tand \\ backslash", "ünïcödé ✓", "", None, "C536379", "0012"]
    rows = [
        (text, f"2011-0{1 + i % 9}-1{i % 10}", [None, 0, -5, 2**53 + 1][i % 4], i % 2)
        for i, text in enumerate(texts * 3)
    ]
    connection = _table(tmp_path / "t.sqlite3", rows)
    connection.execute("DELETE FROM t WHERE rowid IN (2, 7, 8, 9)")  # gaps in the rowids
    connection.commit()
    read = loader.sqlite_frame(connection, "t", COLUMNS)
    plain = pl.DataFrame(
        connection.execute("SELECT name, day, amount, flag FROM t").fetchall(),
        schema={**COLUMNS, "day": pl.String()},
        orient="row",
    ).with_columns(pl.col("day").str.to_date())
    assert read.schema == pl.Schema(COLUMNS)
    assert_frame_equal(read.sort(pl.all()), plain.sort(pl.all()))
    assert read.height == len(rows) - 4


def test_sqlite_json_read_of_an_empty_table(tmp_path):
    connection = _table(tmp_path / "t.sqlite3", [])
    read = loader.sqlite_frame(connection, "t", COLUMNS)
    assert read.is_empty() and read.schema == pl.Schema(COLUMNS)
