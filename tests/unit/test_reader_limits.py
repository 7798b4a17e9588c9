"""Files built to hurt: parquet and CSV bombs are refused from their metadata or first megabyte,
with a message that names the real problem; the rejected-lines file is safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.ingest.reader import (
    MAX_ROW_GROUP_ROWS,
    Reject,
    SourceError,
    inspect_source,
    read_batches,
    write_rejects,
)
from app.lib.spreadsheet import safe_cell
from tests.helpers import GOOD, KAGGLE_HEADER, write

COLUMNS = KAGGLE_HEADER.split(",")


def parquet_bomb(path: Path, rows: int, row_group_size: int | None = None) -> Path:
    """`rows` identical lines, dictionary-encoded: a few KB on disk whatever `rows` is."""
    values = GOOD[0].split(",")
    zeros = pa.array(np.zeros(rows, dtype=np.int8))
    columns = [pa.DictionaryArray.from_arrays(zeros, pa.array([value])) for value in values]
    table = pa.Table.from_arrays(columns, names=COLUMNS)
    pq.write_table(table, path, compression="zstd", row_group_size=row_group_size or rows)
    return path


def test_a_parquet_bomb_is_refused_from_its_metadata(tmp_path):
    bomb = parquet_bomb(tmp_path / "bomb.parquet", 3_000_000)
    assert bomb.stat().st_size < 200_000
    with pytest.raises(SourceError, match=r"3,000,000 rows, about 300 MB once read, more than the 10 MB"):
        inspect_source(bomb, max_unpacked=10_000_000)
    with pytest.raises(SourceError, match=r"a row group of 3,000,000 rows .* smaller row groups"):
        inspect_source(bomb)  # the CLI has no upload cap, but a row group is read whole
    grouped = parquet_bomb(tmp_path / "grouped.parquet", 3_000_000, row_group_size=100_000)
    with pytest.raises(SourceError, match=r"3,000,000 lines, more than the 1,000,000 one import may have"):
        inspect_source(grouped, max_rows=1_000_000)


def test_a_large_parquet_file_in_small_row_groups_is_fine(tmp_path):
    rows = MAX_ROW_GROUP_ROWS + 10
    path = parquet_bomb(tmp_path / "big.parquet", rows, row_group_size=100_000)
    source = inspect_source(path)
    assert source.rows_estimate == rows


def test_the_csv_row_cap_is_checked_before_reading(tmp_path):
    path = write(tmp_path / "rows.csv", [KAGGLE_HEADER, *GOOD * 30])
    with pytest.raises(SourceError, match=r"120 lines, more than the 100 one import may have \(MAX_IMPORT_ROWS\)"):
        inspect_source(path, max_rows=100)
    assert inspect_source(path, max_rows=120).rows_estimate == 120


def test_a_huge_field_or_a_huge_number_of_fields_is_named_as_such(tmp_path):
    field = tmp_path / "field.csv"
    field.write_text(KAGGLE_HEADER + "\n" + "536365,85123A," + "x" * 6_000_000 + ",6,12/1/2010 8:26,2.55,1,UK\n")
    with pytest.raises(SourceError, match="line 2 is longer than 1 MB"):
        list(read_batches(inspect_source(field)))
    fields = tmp_path / "fields.csv"
    fields.write_text(KAGGLE_HEADER + "\n" + "1," * 3_000_000 + "\n")
    with pytest.raises(SourceError, match=r"line 2 has more than 10,000 fields"):
        list(read_batches(inspect_source(fields)))
    quote = tmp_path / "quote.csv"
    rest = "\n".join([GOOD[0]] * 20_000)  # 1.6 MB of lines after the quote that opens on line 3
    quote.write_text(
        KAGGLE_HEADER + "\n" + GOOD[0] + '\n536365,85123A,"OPEN,6,12/1/2010 8:26,2.55,1,UK\n' + rest + "\n"
    )
    with pytest.raises(SourceError, match=r"line 3: a quote \(\"\) opens a field that does not close"):
        list(read_batches(inspect_source(quote)))


def test_formula_cells_are_defused_and_numbers_left_alone():
    assert safe_cell("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    for text in ["+1+1", "-A1", "@SUM(A1)", "\tx", "\rx"]:
        assert safe_cell(text) == "'" + text
    for kept in ["-1", "+3.5", "-0.25", "RED MUG", "", 12, -3.5, None]:
        assert safe_cell(kept) == kept


def test_the_rejected_lines_file_defuses_formulas():
    out = io.StringIO()
    fields = ("536365", "=cmd|x", '=HYPERLINK("http://evil")', "=1+1", "12/1/2010 8:26", "-2.55", "", "UK")
    reject = Reject(line=2, column="quantity", value="=1+1", reason="not a whole number", fields=fields)
    write_rejects(out, [reject])
    row = next(csv.reader(io.StringIO(out.getvalue())))
    assert row[4:6] == ["'=cmd|x", '\'=HYPERLINK("http://evil")']
    assert row[6] == "'=1+1" and row[7] == "12/1/2010 8:26"
    assert row[8] == "-2.55"  # a negative number stays a number
