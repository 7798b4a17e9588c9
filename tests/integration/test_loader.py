"""The loader: the shapes and their dataset tag read in one snapshot, the baskets as key ranks,
and SQLite's JSON read equal to a plain row-by-row one."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from app.ingest.service import dataset_tag, import_file
from app.lib.settings import get_settings
from app.metrics import loader
from app.metrics.analytics import prepare
from tests import small_data
from tests.helpers import bearer, login, register, stored_shapes

pytestmark = pytest.mark.usefixtures("empty_db")


async def test_the_baskets_are_read_as_ranks_of_their_keys(small):
    shapes, tag = await asyncio.to_thread(loader.read_shapes, get_settings())
    assert tag == await dataset_tag()
    dataset = prepare(shapes, tag)
    keys = dataset.keys.to_list()
    assert keys == sorted(keys) == ["A1", "B2", "POST"]  # code-point order; 100005's zero-price B2 is no sale
    assert dataset.key_is_product.to_list() == [True, True, False]
    numbers = dataset.sales.get_column("invoice_no").to_list()  # the baskets' rows are the sales invoices'
    read = sorted(
        (number, tuple(sorted(keys[rank] for rank in ranks)))
        for number, ranks in zip(numbers, dataset.baskets.get_column("products").to_list(), strict=True)
    )
    stored = sorted((row[0], row[10]) for row in (await stored_shapes())[0] if row[10])
    assert read == stored == [("100001", ("A1", "POST")), ("100002", ("A1",)), ("100004", ("B2",))]
    assert dataset.baskets.schema["products"] == pl.List(pl.UInt16)
    # the cancellation's line, positive
    assert dataset.returns.select("code", "units", "revenue_milli").rows() == [("A1", 1, 1250)]


async def test_one_snapshot_sees_one_dataset_version(small, tmp_path):
    with loader.Snapshot(get_settings()) as snapshot:
        tag = snapshot.tag()
        (tmp_path / "second.csv").write_text(small_data.SECOND)
        await import_file(tmp_path / "second.csv")  # commits while the snapshot is open
        invoices = snapshot.frame("sales_invoices", {"invoice_no": pl.String()})
    assert tag != await dataset_tag()
    assert "100006" not in invoices.get_column("invoice_no").to_list()  # the snapshot's version: not the new one
    shapes, newer = await asyncio.to_thread(loader.read_shapes, get_settings())
    assert newer == await dataset_tag() and "100006" in shapes.invoices.get_column("invoice_no").to_list()


async def test_a_second_scan_in_another_order_is_refused_and_read_again(small, client, monkeypatch):
    if not get_settings().is_postgres:
        pytest.skip("SQLite's lists are read with their rows, in one scan")
    # (the import stores the invoice grain in time order: a scan backwards differs)
    monkeypatch.setattr(loader, "SECOND_SCAN", loader.SECOND_SCAN + " ORDER BY {check} DESC")
    with pytest.raises(loader.ShapesUnavailable, match="another order"):
        await asyncio.to_thread(loader.read_shapes, get_settings())
    await register(client)
    headers = bearer(await login(client))
    refused = await client.get("/metrics/products", headers=headers)
    assert refused.status_code == 503 and "another order" in refused.json()["detail"]
    assert refused.headers["retry-after"] == "5"
    monkeypatch.undo()
    answered = await client.get("/metrics/products", headers=headers)
    assert answered.status_code == 200 and answered.json()["products"] == 2


COLUMNS = {
    "name": pl.String(),
    "day": pl.Date(),
    "amount": pl.Int64(),
    "flag": pl.Boolean(),
    "ids": pl.List(pl.Int32()),  # JSON text in SQLite, as the baskets
}


def _table(path: Path, rows: list[tuple]) -> sqlite3.Connection:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (name TEXT, day DATE, amount INTEGER, flag BOOLEAN, ids TEXT)")
    connection.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    connection.commit()
    return connection


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_sqlite_json_read_equals_a_row_by_row_read(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(loader, "CHUNK_ROWS", chunk)
    texts = ['a "quoted", comma', "line\nbreak", "tab\tand \\ backslash", "ünïcödé ✓", "", None, "C536379", "0012"]
    lists = ["[]", "[1]", "[3,65535,2147483647]"]
    rows = [
        (text, f"2011-0{1 + i % 9}-1{i % 10}", [None, 0, -5, 2**53 + 1][i % 4], i % 2, lists[i % 3])
        for i, text in enumerate(texts * 3)
    ]
    connection = _table(tmp_path / "t.sqlite3", rows)
    connection.execute("DELETE FROM t WHERE rowid IN (2, 7, 8, 9)")  # gaps in the rowids
    connection.commit()
    read = loader.sqlite_frame(connection, "t", COLUMNS)
    plain = pl.DataFrame(
        connection.execute("SELECT name, day, amount, flag, ids FROM t").fetchall(),
        schema={**COLUMNS, "day": pl.String(), "ids": pl.String()},
        orient="row",
    ).with_columns(pl.col("day").str.to_date(), pl.col("ids").str.json_decode(pl.List(pl.Int32())))
    assert read.schema == pl.Schema(COLUMNS)
    assert_frame_equal(read.sort(pl.all().exclude("ids")), plain.sort(pl.all().exclude("ids")))
    assert read.height == len(rows) - 4


def test_sqlite_json_read_of_an_empty_table(tmp_path):
    connection = _table(tmp_path / "t.sqlite3", [])
    read = loader.sqlite_frame(connection, "t", COLUMNS)
    assert read.is_empty() and read.schema == pl.Schema(COLUMNS)
