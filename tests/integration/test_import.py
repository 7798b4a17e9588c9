"""Importing into the database under test: all or nothing, duplicates, replace, skip-invalid."""

from __future__ import annotations

import csv
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from app.ingest.reader import SourceError
from app.ingest.service import DuplicateImport, ImportRejected, dataset_status, import_file
from app.ingest.tables import Import, Transaction
from tests.helpers import GOOD, II_HEADER, KAGGLE_HEADER, snapshot, write

pytestmark = pytest.mark.usefixtures("empty_db")


async def test_small_file_lands_with_exact_values(tmp_path: Path) -> None:
    result = await import_file(write(tmp_path / "small.csv", [KAGGLE_HEADER, *GOOD]))
    assert (result.rows, result.rejected_rows, result.dataset_version) == (4, 0, 1)
    stored = await Transaction.select().order_by(Transaction.id).run()
    assert [row["invoice_no"] for row in stored] == ["536365", "536366", "C536379", "539492"]
    first = stored[0]
    assert first["stock_code"] == "85123A"
    assert first["description"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert first["quantity"] == 6
    assert first["invoice_date"] == datetime(2010, 12, 1, 8, 26)
    assert Decimal(str(first["unit_price"])) == Decimal("2.55")
    assert first["customer_id"] == 17850
    assert first["country"] == "United Kingdom"
    assert first["import_id"] == result.import_id
    assert stored[1]["description"] == 'HAND WARMER, "UNION JACK"' and stored[1]["customer_id"] is None
    assert stored[3]["description"] == "Dotcomgiftshop Gift Voucher £40.00"
    record = await Import.objects().get(Import.id == result.import_id).run()
    assert (record.file_name, record.layout, record.encoding, record.rows, record.status) == (
        "small.csv",
        "kaggle",
        "utf-8",
        4,
        "loaded",
    )
    assert len(record.sha256) == 64 and record.finished_at >= record.started_at


async def test_appending_another_file_keeps_import_order(tmp_path: Path) -> None:
    await import_file(write(tmp_path / "a.csv", [KAGGLE_HEADER, *GOOD[:2]]))
    second = await import_file(write(tmp_path / "b.csv", [KAGGLE_HEADER, *GOOD[2:]]))
    assert second.dataset_version == 2
    stored = await Transaction.select(Transaction.id, Transaction.invoice_no).order_by(Transaction.id).run()
    assert [row["invoice_no"] for row in stored] == ["536365", "536366", "C536379", "539492"]
    status = await dataset_status()
    assert (status.version, status.transactions, len(status.imports)) == (2, 4, 2)


async def test_online_retail_ii_file_imports(tmp_path: Path) -> None:
    path = write(
        tmp_path / "online_retail_II.csv",
        [
            II_HEADER,
            "489434,85048,15CM CHRISTMAS GLASS BALL 20 LIGHTS,12,2009-12-01 07:45:00,6.95,13085.0,United Kingdom",
            "C489449,22087,PAPER BUNTING WHITE LACE,-12,2009-12-01 10:33:00,2.95,16321.0,Australia",
        ],
    )
    result = await import_file(path)
    assert (result.layout, result.rows) == ("online_retail_ii", 2)
    stored = await Transaction.select(Transaction.invoice_date, Transaction.customer_id).order_by(Transaction.id).run()
    assert stored == [
        {"invoice_date": datetime(2009, 12, 1, 7, 45), "customer_id": 13085},
        {"invoice_date": datetime(2009, 12, 1, 10, 33), "customer_id": 16321},
    ]


async def test_invalid_lines_reject_the_whole_file_and_write_nothing(tmp_path: Path) -> None:
    await import_file(write(tmp_path / "before.csv", [KAGGLE_HEADER, GOOD[0]]))
    before = await snapshot()
    bad = [KAGGLE_HEADER, *GOOD, *[f"536999,X{i},Y,many,12/1/2010 8:26,1,,UK" for i in range(30)]]
    with pytest.raises(ImportRejected) as caught:
        await import_file(write(tmp_path / "bad.csv", bad))
    error = caught.value
    assert error.rejected == 30 and error.lines == 34
    assert len(error.rejects) == 20  # the report shows the first 20
    assert [reject.line for reject in error.rejects] == list(range(6, 26))
    assert error.rejects[0].column == "quantity" and error.rejects[0].reason == "not a whole number"
    assert "30 of 34 lines are invalid, nothing was imported" in str(error)
    assert await snapshot() == before
    assert not (tmp_path / "bad.rejected.csv").exists()


async def test_skip_invalid_imports_the_rest_and_writes_the_rejects_beside_the_input(tmp_path: Path) -> None:
    lines = [KAGGLE_HEADER, GOOD[0], "536365,85123A,X,six,12/1/2010 8:26,2.55,17850,United Kingdom", GOOD[1]]
    result = await import_file(write(tmp_path / "mixed.csv.gz.csv", lines), skip_invalid=True)
    assert (result.rows, result.rejected_rows) == (2, 1)
    assert result.reject_file == tmp_path / "mixed.csv.gz.rejected.csv"
    with open(result.reject_file, newline="", encoding="utf-8") as file:
        written = list(csv.reader(file))
    assert written == [
        ["line", "column", "reason", *KAGGLE_HEADER.split(",")],
        [
            "3",
            "quantity",
            "not a whole number",
            "536365",
            "85123A",
            "X",
            "six",
            "12/1/2010 8:26",
            "2.55",
            "17850",
            "United Kingdom",
        ],
    ]
    assert await Transaction.count().run() == 2
    record = await Import.objects().get(Import.id == result.import_id).run()
    assert (record.rows, record.rejected_rows) == (2, 1)


async def test_skip_invalid_with_no_valid_line_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "allbad.csv", [KAGGLE_HEADER, "1,2,3,x,bad,1,,UK"])
    with pytest.raises(ImportRejected, match="1 of 1 lines are invalid, nothing was imported; no line is valid"):
        await import_file(path, skip_invalid=True)
    assert await snapshot() == ([], [], ([], [], []))
    assert (tmp_path / "allbad.rejected.csv").exists()  # still tells the user why


async def test_same_content_is_refused_unless_replace(tmp_path: Path) -> None:
    first = write(tmp_path / "one.csv", [KAGGLE_HEADER, *GOOD])
    await import_file(first)
    before = await snapshot()
    copy = write(tmp_path / "renamed-copy.csv", [KAGGLE_HEADER, *GOOD])
    with pytest.raises(DuplicateImport, match=r"already imported \(as one.csv, dataset version 1\); use --replace"):
        await import_file(copy)
    assert await snapshot() == before

    replaced = await import_file(copy, replace=True)
    assert replaced.replaced and replaced.dataset_version == 2
    assert await Transaction.count().where(Transaction.import_id == replaced.import_id).run() == 4
    assert await Transaction.count().run() == 4
    statuses = await Import.select(Import.status).order_by(Import.id).output(as_list=True).run()
    assert statuses == ["replaced", "loaded"]


async def test_replace_swaps_all_data_for_the_new_file(tmp_path: Path) -> None:
    await import_file(write(tmp_path / "a.csv", [KAGGLE_HEADER, *GOOD[:2]]))
    await import_file(write(tmp_path / "b.csv", [KAGGLE_HEADER, GOOD[2]]))
    result = await import_file(write(tmp_path / "c.csv", [KAGGLE_HEADER, GOOD[3]]), replace=True)
    stored = await Transaction.select(Transaction.invoice_no, Transaction.import_id).run()
    assert stored == [{"invoice_no": "539492", "import_id": result.import_id}]
    # a replaced file may come back later: its rows are no longer loaded
    again = await import_file(tmp_path / "a.csv")
    assert again.rows == 2 and again.dataset_version == 4


async def test_a_failed_replace_keeps_the_old_data(tmp_path: Path) -> None:
    await import_file(write(tmp_path / "a.csv", [KAGGLE_HEADER, *GOOD]))
    before = await snapshot()
    with pytest.raises(ImportRejected):
        await import_file(write(tmp_path / "bad.csv", [KAGGLE_HEADER, GOOD[0], "1,2,3,x,bad,1,,UK"]), replace=True)
    assert await snapshot() == before


async def test_bad_files_leave_the_database_as_it_was(tmp_path: Path) -> None:
    await import_file(write(tmp_path / "a.csv", [KAGGLE_HEADER, GOOD[0]]))
    before = await snapshot()
    for content in (b"", b"garbage,header\n1,2\n", b"\x00\x01\x02binary"):
        path = tmp_path / "broken.csv"
        path.write_bytes(content)
        with pytest.raises(SourceError):
            await import_file(path)
    with pytest.raises(SourceError, match="no such file"):
        await import_file(tmp_path / "missing.csv")
    assert await snapshot() == before


async def test_an_import_interrupted_half_way_leaves_the_database_as_it_was(data_csv_gz: Path) -> None:
    """The real file, stopped by an error after its first batches reached the database.

    (Ctrl-C and SIGKILL of the real CLI are in tests/system/test_cli.py.)"""
    seen = 0

    def crash(lines: int) -> None:
        nonlocal seen
        seen += lines
        if seen > 100_000:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        await import_file(data_csv_gz, on_progress=crash)
    assert seen > 100_000
    assert await snapshot() == ([], [], ([], [], []))
    result = await import_file(data_csv_gz)  # and the next import works
    assert result.rows == 541_909


async def test_edge_values_are_stored_exactly(tmp_path: Path) -> None:
    """Extremes of every type survive the loader of the engine under test (binary COPY on PostgreSQL)."""
    lines = [
        KAGGLE_HEADER,
        "536365,A,min price,-2147483648,1/1/1970 0:00,-0.04,0,Unspecified",
        "536366,B,,2147483647,12/31/1999 23:59,0.04,2147483647,EIRE",
        "536366,B,,0,12/31/1999 23:59,999999999.999,2147483647,EIRE",
        "536366,B,,0,12/31/1999 23:59,-999999999.999,2147483647,EIRE",
        'C536367,C,"",0,2/29/2000 0:01,0.001,,RSA',
        "A536368,D,  spaces  ,1,6/15/2038 12:00,-0.001,,European Community",
        "536369,E,ünïcödé ✓ 日本,5,12/9/2011 12:50,0,12346,Channel Islands",
        "536370,F,zero,5,12/9/2011 12:50,.5,12346.0,Channel Islands",
    ]
    await import_file(write(tmp_path / "edges.csv", lines))
    stored = await Transaction.select().order_by(Transaction.id).run()
    got = [
        (
            row["invoice_no"],
            row["description"],
            row["quantity"],
            row["invoice_date"],
            Decimal(str(row["unit_price"])).quantize(Decimal("0.001")),
            row["customer_id"],
            row["country"],
        )
        for row in stored
    ]
    assert got == [
        ("536365", "min price", -2147483648, datetime(1970, 1, 1), Decimal("-0.040"), 0, "Unspecified"),
        ("536366", None, 2147483647, datetime(1999, 12, 31, 23, 59), Decimal("0.040"), 2147483647, "EIRE"),
        ("536366", None, 0, datetime(1999, 12, 31, 23, 59), Decimal("999999999.999"), 2147483647, "EIRE"),
        ("536366", None, 0, datetime(1999, 12, 31, 23, 59), Decimal("-999999999.999"), 2147483647, "EIRE"),
        ("C536367", None, 0, datetime(2000, 2, 29, 0, 1), Decimal("0.001"), None, "RSA"),
        ("A536368", "  spaces  ", 1, datetime(2038, 6, 15, 12), Decimal("-0.001"), None, "European Community"),
        ("536369", "ünïcödé ✓ 日本", 5, datetime(2011, 12, 9, 12, 50), Decimal("0.000"), 12346, "Channel Islands"),
        ("536370", "zero", 5, datetime(2011, 12, 9, 12, 50), Decimal("0.500"), 12346, "Channel Islands"),
    ]


async def test_a_file_of_blank_lines_imports_nothing(tmp_path: Path) -> None:
    with pytest.raises(ImportRejected, match="has no data lines, only blank ones; nothing was imported"):
        await import_file(write(tmp_path / "commas.csv", [KAGGLE_HEADER, ",,,,,,,", ",,,,,,,"]))
    assert await snapshot() == ([], [], ([], [], []))
