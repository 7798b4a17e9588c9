"""The data shapes (sales_invoices and its baskets, product_days, product_returns) are exactly the
aggregate of the stored lines after every kind of import: checked against tests/helpers.expected_shapes, a plain-Python
aggregation of the lines, on the engine under test."""

from __future__ import annotations

from datetime import date as D
from pathlib import Path

import pytest

from app.ingest.service import ImportFailed, import_file
from tests import small_data
from tests.helpers import assert_shapes_exact, snapshot, stored_shapes

pytestmark = pytest.mark.usefixtures("empty_db")

# Every rule in one file: a cancellation, an adjustment (A), zero-price and negative lines in a
# sales invoice, lower-case twins of a stock code, a null description, a postage line, an
# invoice whose lines span two minutes, and one with a line of another customer.
AWKWARD = small_data.HEADER + (
    "200001,85123a,WHITE HANGING HEART,6,2/1/2011 8:00,2.55,10,France\n"
    "200001,85123A,WHITE HANGING HEART,2,2/1/2011 8:01,2.55,10,France\n"
    "200001,85123A,,1,2/1/2011 8:01,2.55,10,France\n"
    "200001,POST,POSTAGE,1,2/1/2011 8:01,18,10,France\n"
    "200001,22423,REGENCY CAKESTAND,1,2/1/2011 8:01,0,10,France\n"
    "200001,22423,REGENCY CAKESTAND,-2,2/1/2011 8:01,12.75,10,France\n"
    "200002,22423,REGENCY CAKESTAND,2,2/1/2011 9:00,12.75,,United Kingdom\n"
    "200002,22423,REGENCY CAKESTAND,1,2/1/2011 9:00,12.75,11,United Kingdom\n"
    "C200003,85123A,WHITE HANGING HEART,-3,2/2/2011 10:00,2.55,10,France\n"
    "C200003,POST,POSTAGE,-1,2/2/2011 10:00,18,10,France\n"
    "A200004,B,Adjust bad debt,1,2/3/2011 11:00,11062.06,,United Kingdom\n"
    "200005,22423,REGENCY CAKESTAND,1,2/3/2011 11:00,0,,Iceland\n"
    "200007,é-mug,ÉCRU MUG,2,2/3/2011 12:00,4.5,13,France\n"
)
# invoice 200001 again, corrected and moved to another day; a new invoice
CORRECTED = small_data.HEADER + (
    "200001,85123A,WHITE HANGING HEART,4,2/5/2011 9:00,2.55,10,France\n"
    "200006,21212,PACK OF 72 CAKE CASES,24,2/5/2011 9:30,0.55,12,Germany\n"
)


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


async def test_the_first_import_builds_exact_shapes(tmp_path):
    await import_file(write(tmp_path, "awkward.csv", AWKWARD))
    await assert_shapes_exact()
    invoices, products, returns = await stored_shapes()
    # 200001 in two minutes; 200002 with two customers; C200003; A200004 and 200005 with no sales lines
    assert len(invoices) == 8
    assert {row[0] for row in invoices if row[6] == 0} == {"A200004", "200005"}
    assert next(row for row in products if row[2] == "85123A" and row[3] is not None)[4:] == (2, 8, 8 * 2550)
    # the baskets: each sales invoice's distinct keys (85123a is 85123A; the zero-price and
    # negative lines are not sales); none for a cancellation
    assert {row[1].minute: row[10] for row in invoices if row[0] == "200001"} == {0: ("85123A",), 1: ("85123A", "POST")}
    assert all(row[10] == () for row in invoices if row[0][0] in "CA" or row[0] == "200005")
    assert returns == [
        (D(2011, 2, 2), "France", "85123A", 1, -3, -3 * 2550),
        (D(2011, 2, 2), "France", "POST", 1, -1, -18000),
    ]


@pytest.mark.parametrize("batch_bytes", [150, 400])
async def test_invoices_across_batches_are_one_row_with_one_basket(tmp_path, monkeypatch, batch_bytes):
    from app.ingest import reader

    # batches of two or five lines: every invoice of several lines is split between batches
    monkeypatch.setattr(reader, "BATCH_BYTES", batch_bytes)
    monkeypatch.setattr(reader, "FIRST_BATCH_BYTES", batch_bytes)
    await import_file(write(tmp_path, "awkward.csv", AWKWARD))
    await assert_shapes_exact()
    invoices, _, _ = await stored_shapes()
    assert len(invoices) == 8
    assert {row[1].minute: row[10] for row in invoices if row[0] == "200001"} == {0: ("85123A",), 1: ("85123A", "POST")}
    from app.ingest.tables import Transaction

    stored = [row["invoice_date"] for row in await Transaction.raw("SELECT invoice_date FROM sales_invoices").run()]
    assert stored == sorted(stored)  # stored in time order (read in it, the loader sorts nothing)


async def test_a_new_line_on_a_stored_day_sums_that_day_again(tmp_path):
    # the file's own shapes would be wrong here: its day already has rows (summed again in SQL)
    await import_file(write(tmp_path, "awkward.csv", AWKWARD))
    same_day = small_data.HEADER + "200008,é-mug,ÉCRU MUG,1,2/3/2011 15:00,4.5,14,France\n"
    await import_file(write(tmp_path, "same-day.csv", same_day))
    await assert_shapes_exact()
    _, products, _ = await stored_shapes()
    # the non-ASCII code keeps its é and upper-cases its ASCII letters, both ways alike
    assert [row[4:6] for row in products if row[2] == "é-MUG"] == [(2, 3)]


async def test_appending_keeps_them_exact(tmp_path):
    await import_file(write(tmp_path, "awkward.csv", AWKWARD))
    await import_file(write(tmp_path, "first.csv", small_data.FIRST))
    await import_file(write(tmp_path, "second.csv", small_data.SECOND))
    await assert_shapes_exact()


@pytest.mark.parametrize("mode", ["skip", "replace"])
async def test_overlap_skip_and_replace_keep_them_exact(tmp_path, mode):
    await import_file(write(tmp_path, "awkward.csv", AWKWARD))
    await import_file(write(tmp_path, "corrected.csv", CORRECTED), overlap=mode)
    await assert_shapes_exact()
    invoices, _, _ = await stored_shapes()
    days = {row[9].isoformat() for row in invoices if row[0] == "200001"}
    # replace moved invoice 200001 to 5 February: its old day's rows are gone
    assert days == ({"2011-02-05"} if mode == "replace" else {"2011-02-01"})


async def test_replace_all_keeps_them_exact(tmp_path):
    await import_file(write(tmp_path, "awkward.csv", AWKWARD))
    await import_file(write(tmp_path, "first.csv", small_data.FIRST), replace=True)
    await assert_shapes_exact()
    invoices, _, _ = await stored_shapes()
    assert not any(row[0].startswith("2000") for row in invoices)


async def test_a_failed_import_leaves_them_as_they_were(tmp_path):
    await import_file(write(tmp_path, "awkward.csv", AWKWARD))
    before = await snapshot()
    with pytest.raises(ImportFailed):
        await import_file(write(tmp_path, "bad.csv", small_data.HEADER + "300001,X,Y,six,2/9/2011 8:00,1,1,France\n"))
    with pytest.raises(ImportFailed):  # a refused overlap, raised after its lines were written
        await import_file(write(tmp_path, "corrected.csv", CORRECTED))
    assert await snapshot() == before
