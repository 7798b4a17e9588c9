"""The full Online Retail file into the engine under test, checked against the file itself.

Expected rows are read from the file with the csv module and plain Python, not
with the importer's code; the stored rows are read back with SQL.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from app.ingest.service import import_file
from app.ingest.tables import Transaction

pytestmark = pytest.mark.usefixtures("empty_db")

ROWS = 541_909
PAGE = 50_000


def normalise(invoice, stock, description, quantity, date, price, customer, country) -> tuple:
    """One row as comparable values, whatever side it comes from."""
    if isinstance(date, str):
        date = datetime.fromisoformat(date)
    price = Decimal(str(price)).quantize(Decimal("0.001"))
    return (invoice, stock, description or None, int(quantity), date, price, customer, country)


def file_rows(path: Path) -> Iterator[tuple]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as file:
        reader = csv.reader(file)
        next(reader)
        for invoice, stock, description, quantity, date, price, customer, country in reader:
            yield normalise(
                invoice,
                stock,
                description,
                quantity,
                datetime.strptime(date, "%m/%d/%Y %H:%M"),
                price,
                int(customer) if customer else None,
                country,
            )


async def stored_rows() -> AsyncIterator[tuple]:
    """Every stored row in import order, read back page by page with SQL."""
    last = -1
    while True:
        page = await Transaction.raw(
            "SELECT id, invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country "
            "FROM transactions WHERE id > {} ORDER BY id LIMIT {}",
            last,
            PAGE,
        ).run()
        if not page:
            return
        last = page[-1]["id"]
        for row in page:
            yield normalise(
                row["invoice_no"],
                row["stock_code"],
                row["description"],
                row["quantity"],
                row["invoice_date"],
                row["unit_price"],
                row["customer_id"],
                row["country"],
            )


async def assert_stored_rows_equal_the_file(path: Path) -> None:
    expected = file_rows(path)
    line = 1
    async for stored in stored_rows():
        line += 1
        assert stored == next(expected, None), f"line {line} differs"
    assert next(expected, None) is None, f"only {line - 1} rows stored"
    assert line - 1 == ROWS


async def figures() -> dict:
    [row] = await Transaction.raw(
        "SELECT count(*) AS rows, sum(quantity) AS units, sum(quantity * unit_price) AS value, "
        "count(DISTINCT invoice_no) AS invoices, count(DISTINCT customer_id) AS customers, "
        "count(DISTINCT country) AS countries FROM transactions"
    ).run()
    return row


async def test_the_full_file_imports_with_the_reference_figures(data_csv_gz: Path) -> None:
    result = await import_file(data_csv_gz)
    assert (result.rows, result.rejected_rows, result.layout, result.encoding) == (ROWS, 0, "kaggle", "utf-8")
    got = await figures()
    assert got["rows"] == ROWS
    assert got["units"] == 5_176_450
    assert float(got["value"]) == pytest.approx(9_747_747.934, abs=0.001)
    assert got["invoices"] == 25_900
    assert got["customers"] == 4_372
    assert got["countries"] == 38

    first = await Transaction.select().order_by(Transaction.id).first().run()
    last = await Transaction.select().order_by(Transaction.id, ascending=False).first().run()
    assert (first["invoice_no"], first["stock_code"], first["description"]) == (
        "536365",
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
    )
    assert (first["quantity"], first["invoice_date"], first["customer_id"], first["country"]) == (
        6,
        datetime(2010, 12, 1, 8, 26),
        17850,
        "United Kingdom",
    )
    assert (last["invoice_no"], last["stock_code"], last["description"], last["quantity"]) == (
        "581587",
        "22138",
        "BAKING SET 9 PIECE RETROSPOT ",  # trailing space kept, as the file says
        3,
    )
    assert (last["invoice_date"], last["customer_id"], last["country"]) == (
        datetime(2011, 12, 9, 12, 50),
        12680,
        "France",
    )
    await assert_stored_rows_equal_the_file(data_csv_gz)


async def test_a_latin1_crlf_copy_imports_to_exactly_the_same_rows(data_csv_gz: Path, tmp_path: Path) -> None:
    latin = tmp_path / "data.csv"  # as Kaggle serves it: Windows-1252, CRLF
    with gzip.open(data_csv_gz, "rt", encoding="utf-8", newline="") as source, open(latin, "wb") as target:
        while text := source.read(1 << 20):
            target.write(text.replace("\n", "\r\n").encode("cp1252"))
    assert b"\xa3" in latin.read_bytes() and b"\r\n" in latin.read_bytes()

    result = await import_file(latin)
    assert (result.rows, result.rejected_rows, result.encoding) == (ROWS, 0, "cp1252")
    vouchers = await Transaction.count().where(Transaction.description.like("%£%")).run()
    assert vouchers == 32
    await assert_stored_rows_equal_the_file(data_csv_gz)


async def test_the_parquet_file_imports_to_exactly_the_same_rows(data_csv_gz: Path, data_parquet: Path) -> None:
    result = await import_file(data_parquet)
    assert (result.rows, result.rejected_rows, result.encoding) == (ROWS, 0, "parquet")
    await assert_stored_rows_equal_the_file(data_csv_gz)


async def test_the_same_rows_as_parquet_after_the_csv_are_refused_then_replaced_once(
    data_csv_gz: Path, data_parquet: Path
) -> None:
    """The overlap that doubled every figure: the reference CSV, then the same rows as Parquet."""
    from app.ingest.service import OverlapRefused

    await import_file(data_csv_gz)
    single = await figures()
    with pytest.raises(OverlapRefused) as refused:
        await import_file(data_parquet)
    overlap = refused.value.overlap
    assert (overlap.invoices, overlap.file_lines, overlap.stored_lines) == (25_900, ROWS, ROWS)
    assert (overlap.first, overlap.last) == (datetime(2010, 12, 1, 8, 26), datetime(2011, 12, 9, 12, 50))
    assert overlap.examples == ["536365", "536366", "536367", "536368", "536369"]
    assert await figures() == single
    # replacing the overlap by the same rows leaves the figures of one import (replacing again
    # and again: tests/integration/test_import_overlap.py, on a small file)
    result = await import_file(data_parquet, overlap="replace")
    assert (result.rows, result.overlap.invoices) == (ROWS, 25_900)
    assert await figures() == single
    with pytest.raises(Exception, match="every invoice in it is already stored"):
        await import_file(data_csv_gz, overlap="skip")
    assert await figures() == single


def test_expected_rows_come_from_an_independent_reading(data_csv_gz: Path) -> None:
    """Guard the guard: the plain-Python reading sees the figures the data set documents."""
    quantity = 0
    value = Decimal(0)
    with gzip.open(data_csv_gz, "rb") as file:
        text = io.TextIOWrapper(file, encoding="utf-8", newline="")
        reader = csv.DictReader(text)
        for row in reader:
            quantity += int(row["Quantity"])
            value += int(row["Quantity"]) * Decimal(row["UnitPrice"])
    assert (quantity, value) == (5_176_450, Decimal("9747747.934"))
