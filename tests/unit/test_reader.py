"""The reader alone (no database): formats, encodings, layouts, and every line validated."""

from __future__ import annotations

import gzip
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from app.ingest.reader import SourceError, inspect_source, read_batches
from tests.helpers import GOOD, II_HEADER, KAGGLE_HEADER, write


def rows(path: Path) -> tuple[list[tuple], list]:
    source = inspect_source(path)
    batches = list(read_batches(source))
    frame = pl.concat([batch.rows for batch in batches])
    return frame.rows(), [reject for batch in batches for reject in batch.rejects]


def test_kaggle_layout_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", [KAGGLE_HEADER, *GOOD])
    source = inspect_source(path)
    assert (source.kind, source.layout, source.encoding, source.compressed) == ("csv", "kaggle", "utf-8", False)
    assert source.rows_estimate == 4
    got, rejects = rows(path)
    assert rejects == []
    assert got[0] == (
        "536365",
        "85123A",
        "WHITE HANGING HEART T-LIGHT HOLDER",
        6,
        datetime(2010, 12, 1, 8, 26),
        Decimal("2.550"),
        17850,
        "United Kingdom",
    )
    assert got[1][2] == 'HAND WARMER, "UNION JACK"' and got[1][6] is None
    assert got[2][0] == "C536379" and got[2][3] == -1
    assert got[3][2] == "Dotcomgiftshop Gift Voucher £40.00"


@pytest.mark.parametrize(("encoding", "expected"), [("cp1252", "cp1252"), ("latin-1", "cp1252")])
def test_latin1_crlf_is_detected_and_decoded(tmp_path: Path, encoding: str, expected: str) -> None:
    utf8, _ = rows(write(tmp_path / "u.csv", [KAGGLE_HEADER, *GOOD]))
    path = write(tmp_path / "l.csv", [KAGGLE_HEADER, *GOOD], encoding=encoding, newline="\r\n")
    assert inspect_source(path).encoding == expected
    latin, rejects = rows(path)
    assert rejects == [] and latin == utf8  # no stray \r, the £ intact


def test_bytes_undefined_in_cp1252_fall_back_to_latin1(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(f"{KAGGLE_HEADER}\n{GOOD[0]}\n".encode().replace(b"HOLDER", b"HOLD\x81R"))
    assert inspect_source(path).encoding == "latin-1"
    got, _ = rows(path)
    assert got[0][2] == "WHITE HANGING HEART T-LIGHT HOLD\x81R"


def test_gzip_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress(("\ufeff" + "\n".join([KAGGLE_HEADER, *GOOD]) + "\n").encode()))
    source = inspect_source(path)
    assert source.compressed and source.layout == "kaggle"
    got, rejects = rows(path)
    assert len(got) == 4 and rejects == []


def test_online_retail_ii_layout(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ii.csv",
        [
            II_HEADER,
            "489434,85048,15CM CHRISTMAS GLASS BALL 20 LIGHTS,12,2009-12-01 07:45:00,6.95,13085.0,United Kingdom",
            "C489449,22087,PAPER BUNTING WHITE LACE,-12,2009-12-01 10:33:00,2.95,16321.0,Australia",
            "489436,21755,LOVE BUILDING BLOCK WORD,18,2009-12-01 09:06:00,5.45,,United Kingdom",
        ],
    )
    assert inspect_source(path).layout == "online_retail_ii"
    got, rejects = rows(path)
    assert rejects == []
    assert got[0] == (
        "489434",
        "85048",
        "15CM CHRISTMAS GLASS BALL 20 LIGHTS",
        12,
        datetime(2009, 12, 1, 7, 45),
        Decimal("6.950"),
        13085,
        "United Kingdom",
    )
    assert got[2][6] is None


def test_columns_in_another_order(tmp_path: Path) -> None:
    header = "Country,InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID"
    path = write(
        tmp_path / "o.csv", [header, "France,536370,22728,ALARM CLOCK BAKELIKE PINK,24,12/1/2010 8:45,3.75,12583"]
    )
    got, _ = rows(path)
    assert got == [
        (
            "536370",
            "22728",
            "ALARM CLOCK BAKELIKE PINK",
            24,
            datetime(2010, 12, 1, 8, 45),
            Decimal("3.750"),
            12583,
            "France",
        )
    ]


def test_every_line_is_validated_with_its_reason(tmp_path: Path) -> None:
    lines = [
        KAGGLE_HEADER,
        GOOD[0],  # line 2
        "536365,85123A,X,six,12/1/2010 8:26,2.55,17850,United Kingdom",  # 3 quantity
        "536365,85123A,X,6,2010-12-01 08:26,2.55,17850,United Kingdom",  # 4 date format
        "536365,85123A,X,6,12/1/2010 8:26,2.5555,17850,United Kingdom",  # 5 decimals
        "536365,85123A,X,6,12/1/2010 8:26,1e3,17850,United Kingdom",  # 6 not decimal
        "536365,85123A,X,6,12/1/2010 8:26,2.55,17850.5,United Kingdom",  # 7 customer
        "536365,85123A,X,6,12/1/2010 8:26,2.55,17850",  # 8 missing field
        "536365,85123A,X,6,12/1/2010 8:26,2.55,17850,United Kingdom,extra",  # 9 too many
        ",85123A,X,6,12/1/2010 8:26,2.55,17850,United Kingdom",  # 10 invoice missing
        "536365,85123A,X,99999999999,12/1/2010 8:26,2.55,17850,United Kingdom",  # 11 quantity range
        "536365,85123A,X,6,2/30/2011 8:26,2.55,17850,United Kingdom",  # 12 impossible date
        "536365,85123A,X,-2000000,12/1/2010 8:26,50.01,17850,United Kingdom",  # 13 revenue over 1e8
        GOOD[1],  # 14
    ]
    got, rejects = rows(write(tmp_path / "bad.csv", lines))
    assert [row[0] for row in got] == ["536365", "536366"]
    found = {reject.line: (reject.column, reject.value, reject.reason) for reject in rejects}
    assert found == {
        3: ("quantity", "six", "not a whole number"),
        4: ("invoice_date", "2010-12-01 08:26", "not a date and time like M/D/YYYY H:MM"),
        5: ("unit_price", "2.5555", "more than 3 decimal places"),
        6: ("unit_price", "1e3", "not a decimal number"),
        7: ("customer_id", "17850.5", "not a customer number (a whole number, or empty)"),
        8: ("country", None, "missing (required; is the line missing fields?)"),
        9: ("", "extra", "too many fields: expected 8"),
        10: ("invoice_no", None, "missing (required)"),
        11: ("quantity", "99999999999", "out of range"),
        12: ("invoice_date", "2/30/2011 8:26", "not a date and time like M/D/YYYY H:MM"),
        13: ("unit_price", "50.01", "quantity x unit price is over 100,000,000 (either sign): not a real line"),
    }
    assert rejects[0].fields[3] == "six"  # the whole line travels with its reason


def test_batches_split_only_between_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.ingest import reader

    monkeypatch.setattr(reader, "FIRST_BATCH_BYTES", 64)
    monkeypatch.setattr(reader, "BATCH_BYTES", 256)
    body = [f'5{i:05},C{i},"two\nline, ""quoted"" {i}",1,12/1/2010 8:26,1.5,,EIRE' for i in range(200)]
    got, rejects = rows(write(tmp_path / "multi.csv", [KAGGLE_HEADER, *body]))
    assert rejects == []
    assert len(got) == 200
    assert got[199][2] == 'two\nline, "quoted" 199'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\n\n  \n", "the file is empty"),
        (KAGGLE_HEADER.encode() + b"\n", "header but no data lines"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        (b"PK\x03\x04rest-of-a-zip", "ZIP or Excel"),
        (b"\x1f\x8b\x08\x00garbage-not-deflate", "not a valid gzip file"),
        (b"name,price\nfoo,1\n", r"unknown header: found \[name, price\]; expected the Kaggle layout"),
        (b"PAR1notreallyparquet", "not a readable Parquet file"),
    ],
)
def test_unusable_files_get_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=message) as caught:
        inspect_source(path)
    assert "\n" not in str(caught.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        inspect_source(tmp_path / "nope.csv")
    with pytest.raises(SourceError, match="is a directory"):
        inspect_source(tmp_path)


def test_unbalanced_quote_is_located(tmp_path: Path) -> None:
    path = write(tmp_path / "q.csv", [KAGGLE_HEADER, GOOD[0], '536365,85123A,"OPEN QUOTE,6,12/1/2010 8:26,2.55,1,UK'])
    with pytest.raises(SourceError, match="malformed CSV"):
        list(read_batches(inspect_source(path)))


def test_a_quoted_empty_field_is_missing_like_an_empty_one(tmp_path: Path) -> None:
    lines = [
        KAGGLE_HEADER,
        '"",85123A,X,6,12/1/2010 8:26,2.55,17850,United Kingdom',  # line 2: required, missing
        '536365,85123A,"",6,12/1/2010 8:26,2.55,"",United Kingdom',  # line 3: optional, fine
        '536365,85123A,X,6,12/1/2010 8:26,2.55,17850,""',  # line 4: required, missing
    ]
    got, rejects = rows(write(tmp_path / "quoted.csv", lines))
    assert [(reject.line, reject.column, reject.reason) for reject in rejects] == [
        (2, "invoice_no", "missing (required)"),
        (4, "country", "missing (required; is the line missing fields?)"),
    ]
    assert got[0][2] is None and got[0][6] is None


def test_dates_need_their_full_shape(tmp_path: Path) -> None:
    lines = [
        KAGGLE_HEADER,
        "536365,A,X,6,12/1/10 8:26,2.55,17850,UK",  # 2: a 2-digit year is not year 10
        "536365,A,X,6,12/1/-5 8:26,2.55,17850,UK",  # 3
        "536365,A,X,6,12/1/2010 8:26,2.55,17850,UK",  # 4: fine
    ]
    got, rejects = rows(write(tmp_path / "dates.csv", lines))
    assert [(reject.line, reject.column) for reject in rejects] == [(2, "invoice_date"), (3, "invoice_date")]
    assert len(got) == 1


def test_blank_lines_are_skipped_and_extra_fields_refused(tmp_path: Path) -> None:
    lines = [
        KAGGLE_HEADER,
        GOOD[0],
        "",
        ",,,,,,,",
        GOOD[0] + ",",  # 5: a trailing empty field is tolerated
        GOOD[0] + ",,junk",  # 6: a non-empty field past the eighth is not
        "",
        "",
    ]
    got, rejects = rows(write(tmp_path / "blank.csv", lines, newline="\r\n"))
    assert len(got) == 2
    assert [(reject.line, reject.reason, reject.value) for reject in rejects] == [
        (6, "too many fields: expected 8", "junk")
    ]


def test_parquet_types_keep_their_values(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "InvoiceNo": ["1", "2"],
            "StockCode": ["A", "B"],
            "Description": ["x", None],
            "Quantity": [1, -2],
            "InvoiceDate": [datetime(2010, 12, 1, 8, 26, 59), datetime(1999, 1, 2, 3, 4, 5)],
            "UnitPrice": [2.55, 0.001],
            "CustomerID": [17850, None],
            "Country": ["UK", "EIRE"],
        }
    )
    frame.write_parquet(tmp_path / "typed.parquet")
    got, rejects = rows(tmp_path / "typed.parquet")
    assert rejects == []
    assert got == [
        ("1", "A", "x", 1, datetime(2010, 12, 1, 8, 26, 59), Decimal("2.550"), 17850, "UK"),
        ("2", "B", None, -2, datetime(1999, 1, 2, 3, 4, 5), Decimal("0.001"), None, "EIRE"),
    ]
    frame.with_columns(pl.col("InvoiceDate").cast(pl.Date)).write_parquet(tmp_path / "dates.parquet")
    got, _ = rows(tmp_path / "dates.parquet")
    assert got[0][4] == datetime(2010, 12, 1)
    frame.with_columns(pl.col("Country").map_elements(lambda c: [c], return_dtype=pl.List(pl.String))).write_parquet(
        tmp_path / "list.parquet"
    )
    with pytest.raises(SourceError, match="Parquet columns cannot be read"):
        rows(tmp_path / "list.parquet")


@pytest.mark.parametrize("filler", [10, 30_000])  # the stray quote near the end, or with > 1 MB after it
def test_a_stray_quote_is_reported_with_its_line(tmp_path: Path, filler: int) -> None:
    lines = [KAGGLE_HEADER, *[GOOD[0]] * 5, '536365,85123A,12" RULER,6,12/1/2010 8:26,2.55,17850,UK']
    lines += [GOOD[0]] * filler
    with pytest.raises(SourceError, match=r"line 7: a quote \(\"\) opens a field that does not close"):
        rows(write(tmp_path / "stray.csv", lines))
