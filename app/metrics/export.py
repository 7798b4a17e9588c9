"""CSV of a view's table (ANALYTICS.md F7): the JSON rows, as RFC 4180 text a spreadsheet opens.

- the columns are the JSON item fields, in JSON order, with a header row; CRLF line ends,
  UTF-8 (a BOM first with `bom=true`, which Excel needs to read UTF-8);
- numbers as JSON writes them (`.` for decimals, no thousands separator), null as an empty
  field, dates and times in ISO 8601;
- a text cell that a spreadsheet would run as a formula (first character `=`, `+`, `-`, `@`,
  TAB or CR) gets a leading `'` (CWE-1236); numbers are never altered;
- the file name states the filters: `<table>_<start>_<end>[_<country>].csv`, with the
  window's effective dates (an omitted date is the data's first or last sale day).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import date
from typing import Any

import msgspec

BOM = "\ufeff".encode()
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    return value  # numbers: as Python (and JSON) write them


def encode_rows(columns: Sequence[str], rows: Iterable[msgspec.Struct], header: bool = False) -> bytes:
    """Rows (Structs) as CSV lines of `columns`; the header line first if asked."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        values = msgspec.to_builtins(row)  # dates and times as ISO 8601 text, as in JSON
        writer.writerow([_cell(values[name]) for name in columns])
    return out.getvalue().encode()


async def stream(
    columns: Sequence[str], chunks: AsyncIterator[Sequence[msgspec.Struct]], bom: bool
) -> AsyncIterator[bytes]:
    """The CSV, a chunk of rows at a time: memory stays at one chunk whatever the table's size."""
    yield (BOM if bom else b"") + encode_rows(columns, (), header=True)
    async for rows in chunks:
        if rows:
            yield encode_rows(columns, rows)


def filename(table: str, window: tuple[date, date] | None, country: str | None) -> str:
    """`<table>_<start>_<end>[_<country-slug>].csv` (ASCII, safe in a header)."""
    dates = f"{window[0].isoformat()}_{window[1].isoformat()}" if window else "no-sales"
    slug = re.sub(r"[^a-z0-9]+", "-", country.lower()).strip("-") if country else ""
    return f"{table}_{dates}{'_' + slug if slug else ''}.csv"
