"""Reading a transaction export: detect its format, decode it, validate every line.

No database and no HTTP here. `inspect_source` looks at a file once (format,
encoding, layout, sha256, size) and fails with one clear `SourceError` when it
cannot be imported at all; `read_batches` then streams it as validated batches:
typed, clean rows ready to load, and the rejected lines with their reasons.

Memory stays flat whatever the file size: compressed and non-UTF-8 files are
decoded to a temporary UTF-8 file in a stream, and Polars reads it in batches.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import os
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

import polars as pl
import pyarrow.parquet as pq

from app.ingest.tables import (
    COUNTRY_LENGTH,
    DESCRIPTION_LENGTH,
    INVOICE_NO_LENGTH,
    STOCK_CODE_LENGTH,
)
from app.lib.spreadsheet import safe_cell

CHUNK_BYTES = 1 << 20  # reads while hashing and transcoding
BATCH_BYTES = 4 << 20  # a CSV batch: about 45,000 lines of the reference file
FIRST_BATCH_BYTES = 256 << 10  # small, so the database gets its first rows at once
BATCH_ROWS = 50_000  # a Parquet batch

# The stored columns, in the source's order.
COLUMNS = (
    "invoice_no",
    "stock_code",
    "description",
    "quantity",
    "invoice_date",
    "unit_price",
    "customer_id",
    "country",
)

# Header of each supported layout, in the stored columns' order.
LAYOUTS: dict[str, tuple[str, ...]] = {
    "kaggle": (
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
        "Country",
    ),
    "online_retail_ii": (
        "Invoice",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "Price",
        "Customer ID",
        "Country",
    ),
}
_ISO_DATE = "%Y-%m-%d %H:%M:%S"
# Per layout ("parquet": dates read from typed columns): how dates are shown in messages, the
# strptime pattern, and the exact shape (strptime alone takes "10" or "-5" as a year).
DATE_FORMATS = {"kaggle": "M/D/YYYY H:MM", "online_retail_ii": "YYYY-MM-DD HH:MM:SS", "parquet": "YYYY-MM-DD HH:MM:SS"}
_DATE_PATTERNS = {"kaggle": "%m/%d/%Y %H:%M", "online_retail_ii": _ISO_DATE, "parquet": _ISO_DATE}
_DATE_SHAPES = {
    "kaggle": r"^\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}$",
    "online_retail_ii": r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$",
    "parquet": r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$",
}
MAX_ROW_GROUP_ROWS = 1_000_000  # a Parquet row group is read whole: this bounds an import's memory
PARQUET_ROW_BYTES = 100  # a line of an export once read, about (the reference CSV: 83 bytes a line)
MAX_FIELDS = 10_000  # in one line; an export line has 8
MAX_RECORD_BYTES = 1 << 20  # no sane CSV record is this long: an unclosed quote is

_INT32_MAX = 2**31 - 1
# The largest line revenue (quantity x unit price) accepted: figures are summed as integer
# thousandths in 64 bits, and 50 million such lines still add up exactly (the real file's
# largest line is 168,469.60).
MAX_LINE_REVENUE = 100_000_000
_CP1252_UNDEFINED = bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D])
# Fields past the eighth: any non-empty one makes "too many fields" (empty ones, like a
# trailing comma, are tolerated).
_EXTRAS = tuple(f"_extra{index}" for index in range(8))
_EXTRA = "_extra"


class SourceError(Exception):
    """The file cannot be imported at all (missing, empty, binary, unknown header...)."""


@dataclass(frozen=True)
class Source:
    """What `inspect_source` found out about a file."""

    path: Path
    kind: str  # "csv" | "parquet"
    compressed: bool
    encoding: str  # "utf-8" | "cp1252" | "latin-1" | "parquet"
    layout: str  # a key of LAYOUTS
    header: tuple[str, ...]  # the file's column names, in the file's order
    positions: tuple[int, ...]  # where each of COLUMNS sits in the file
    sha256: str
    size_bytes: int
    rows_estimate: int  # data lines (CSV: newlines minus the header), for progress
    file_name: str  # as shown to the user and recorded


@dataclass(frozen=True)
class Reject:
    """One invalid line: where, which column, what value, why; plus the line's fields."""

    line: int
    column: str
    value: str | None
    reason: str
    fields: tuple[str | None, ...] = ()


@dataclass
class Batch:
    """Valid rows (typed, in COLUMNS order) and the rejected lines of one chunk of the file."""

    rows: pl.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    lines_read: int = 0


# --------------------------------------------------------------------------- inspect


def _norm(name: str) -> str:
    return name.strip().strip("\ufeff").lower().replace(" ", "").replace("_", "")


def _match_layout(header: list[str]) -> tuple[str, tuple[int, ...]]:
    """The layout whose column names the header has (any order, case and spaces ignored),
    and where each of COLUMNS sits in the file."""
    found = [_norm(name) for name in header]
    for layout, names in LAYOUTS.items():
        wanted = [_norm(name) for name in names]
        if sorted(found) == sorted(wanted):
            return layout, tuple(found.index(name) for name in wanted)
    shown = ", ".join(name.strip() for name in header[:12]) or "(nothing)"
    raise SourceError(
        f"unknown header: found [{shown}]; expected the Kaggle layout "
        f"[{', '.join(LAYOUTS['kaggle'])}] or the Online Retail II layout [{', '.join(LAYOUTS['online_retail_ii'])}]"
    )


def _open_raw(path: Path, compressed: bool):
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def inspect_source(
    path: str | os.PathLike[str],
    file_name: str | None = None,
    *,
    max_rows: int | None = None,
    max_unpacked: int | None = None,
) -> Source:
    """Read the file once: format, sha256, encoding and layout. Raises SourceError, also for a
    file with more than `max_rows` lines, or a Parquet file whose data is larger than
    `max_unpacked` bytes (or has a row group too large to read in bounded memory): both are
    checked before any row is read."""
    path = Path(path)
    name = Path(file_name).name if file_name else path.name
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    if path.is_dir():
        raise SourceError(f"{path}: is a directory, not a file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            magic = file.read(4)
    except OSError as error:
        raise SourceError(f"{path}: cannot be read ({error.strerror})") from None
    if size == 0:
        raise SourceError(f"{name}: the file is empty")
    if magic == b"PAR1":
        source = _inspect_parquet(path, size, name, max_unpacked)
    elif magic.startswith(b"PK\x03\x04"):
        raise SourceError(f"{name}: looks like a ZIP or Excel file; export the sheet as CSV and import that")
    else:
        source = _inspect_csv(path, size, name, compressed=magic.startswith(b"\x1f\x8b"))
    if max_rows is not None and source.rows_estimate > max_rows:
        raise SourceError(
            f"{name}: {source.rows_estimate:,} lines, more than the {max_rows:,} one import may have "
            "(MAX_IMPORT_ROWS): split the file"
        )
    return source


def _inspect_csv(path: Path, size: int, name: str, compressed: bool) -> Source:
    digest = hashlib.sha256()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    is_utf8 = True
    cp1252_ok = True
    newlines = 0
    first = b""
    last_byte = b""
    try:
        with _open_raw(path, compressed) as raw:
            while chunk := raw.read(CHUNK_BYTES):
                digest.update(chunk)
                if b"\x00" in chunk:
                    raise SourceError(f"{name}: looks like a binary file (it contains NUL bytes), not a CSV export")
                ascii_only = chunk.isascii()
                if is_utf8 and not ascii_only:  # ASCII is UTF-8: only other chunks need decoding
                    try:
                        utf8.decode(chunk)
                    except UnicodeDecodeError:
                        is_utf8 = False
                if cp1252_ok and not ascii_only:  # in case it is not UTF-8: Windows-1252 or Latin-1?
                    cp1252_ok = not any(byte in chunk for byte in _CP1252_UNDEFINED)
                newlines += chunk.count(b"\n")
                if len(first) < 65536:
                    first += chunk[: 65536 - len(first)]
                last_byte = chunk[-1:]
            if is_utf8:
                try:
                    utf8.decode(b"", final=True)
                except UnicodeDecodeError:
                    is_utf8 = False
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise SourceError(f"{name}: not a valid gzip file ({error})") from None
    except OSError as error:
        raise SourceError(f"{name}: cannot be read ({error.strerror or error})") from None

    encoding = "utf-8" if is_utf8 else ("cp1252" if cp1252_ok else "latin-1")
    if not first.strip():
        raise SourceError(f"{name}: the file is empty")
    text = first.decode(encoding, errors="replace").lstrip("\ufeff")
    header_line = text.splitlines()[0] if text else ""
    header = next(csv.reader([header_line]), [])
    layout, positions = _match_layout(header)

    lines = newlines + (0 if last_byte == b"\n" else 1)
    rows = lines - 1
    if rows <= 0 or not text[len(header_line) :].strip():
        raise SourceError(f"{name}: the file has a header but no data lines")
    return Source(
        path=path,
        kind="csv",
        compressed=compressed,
        encoding=encoding,
        layout=layout,
        header=tuple(header),
        positions=positions,
        sha256=digest.hexdigest(),
        size_bytes=size,
        rows_estimate=rows,
        file_name=name,
    )


def _inspect_parquet(path: Path, size: int, name: str, max_unpacked: int | None) -> Source:
    """From the file's metadata alone: rows, the data's size once read, each row group's size."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    try:
        schema = pl.read_parquet_schema(path)
        metadata = pq.ParquetFile(path).metadata
    except Exception as error:  # noqa: BLE001 - Polars and Arrow raise several kinds for a bad file
        raise SourceError(f"{name}: not a readable Parquet file ({str(error).splitlines()[0]})") from None
    # Dictionary and run-length encoding make the stored sizes tiny for repeated values (30 M
    # identical rows fit in 142 KB), so the size once read is estimated from the rows too.
    rows = metadata.num_rows
    group_rows = [metadata.row_group(index).num_rows for index in range(metadata.num_row_groups)]
    stored = sum(metadata.row_group(index).total_byte_size for index in range(metadata.num_row_groups))
    unpacked = max(stored, rows * PARQUET_ROW_BYTES)
    if max_unpacked is not None and unpacked > max_unpacked:
        raise SourceError(
            f"{name}: {rows:,} rows, about {unpacked / 1e6:,.0f} MB once read, more than the "
            f"{max_unpacked / 1e6:,.0f} MB an upload may unpack to: refused (import it with the CLI, or split it)"
        )
    if group_rows and max(group_rows) > MAX_ROW_GROUP_ROWS:
        raise SourceError(
            f"{name}: a row group of {max(group_rows):,} rows (a row group is read whole, so an import reads "
            f"at most {MAX_ROW_GROUP_ROWS:,} at once): write the file with smaller row groups "
            "(e.g. row_group_size=100_000)"
        )
    layout, positions = _match_layout(list(schema))
    if rows == 0:
        raise SourceError(f"{name}: the file has a header but no data lines")
    return Source(
        path=path,
        kind="parquet",
        compressed=False,
        encoding="parquet",
        layout=layout,
        header=tuple(schema),
        positions=positions,
        sha256=digest.hexdigest(),
        size_bytes=size,
        rows_estimate=rows,
        file_name=name,
    )


# --------------------------------------------------------------------------- read


@contextmanager
def _utf8_file(source: Source) -> Iterator[BinaryIO]:
    """The CSV as UTF-8 bytes: the file itself, or, when it is compressed or not UTF-8, a decoded
    copy in an anonymous temporary file (gone with the process, even a killed one)."""
    if not source.compressed and source.encoding == "utf-8":
        with open(source.path, "rb") as file:
            yield file
        return
    with tempfile.TemporaryFile(prefix="shop-import-") as copy:
        decoder = codecs.getincrementaldecoder(source.encoding)()
        try:
            with _open_raw(source.path, source.compressed) as raw:
                while chunk := raw.read(CHUNK_BYTES):
                    copy.write(chunk if source.encoding == "utf-8" else decoder.decode(chunk).encode("utf-8"))
            copy.write(decoder.decode(b"", final=True).encode("utf-8"))
        except OSError as error:
            raise SourceError(f"{source.file_name}: cannot be read ({error.strerror or error})") from None
        copy.seek(0)
        yield copy


def read_batches(source: Source) -> Iterator[Batch]:
    """Stream the file as validated batches. Raises SourceError on a malformed CSV structure."""
    if source.kind == "parquet":
        yield from _parquet_batches(source)
        return
    names = [f"f{i}" for i in range(len(source.header))]
    schema = dict.fromkeys([*names, *_EXTRAS], pl.String)
    with _utf8_file(source) as file:
        line = 2  # the header is line 1
        for number, chunk in enumerate(_record_chunks(file, source.file_name)):
            try:
                frame = pl.read_csv(
                    chunk,
                    has_header=False,
                    skip_rows=1 if number == 0 else 0,  # the header
                    schema=schema,
                    truncate_ragged_lines=True,
                    missing_columns="insert",
                ).with_row_index("line", offset=line)
            except pl.exceptions.PolarsError:
                raise SourceError(f"{source.file_name}: {_locate_csv_error(file)}") from None
            line += frame.height
            yield _validate(_canonical(frame, source), source.layout)


def _record_chunks(file: BinaryIO, name: str) -> Iterator[bytes]:
    """The file in pieces of whole CSV records (~BATCH_BYTES each; the first one small, to start fast).

    A piece ends at a newline outside quotes: the number of quote characters before it is even.
    A quote that never closes would make the rest of the file one record: stop early instead.
    """
    size = FIRST_BATCH_BYTES
    pending = b""
    lines_before = 0  # physical lines before `pending`
    while data := file.read(size):
        size = BATCH_BYTES
        buffer = pending + data
        cut = _last_record_end(buffer)
        if cut < 0:
            if len(buffer) > MAX_RECORD_BYTES:
                raise SourceError(f"{name}: {_why_too_long(buffer, lines_before)}")
            pending = buffer  # one record longer than the buffer: read on
            continue
        yield buffer[: cut + 1]
        lines_before += buffer.count(b"\n", 0, cut + 1)
        pending = buffer[cut + 1 :]
    if pending.strip():
        yield pending


def _why_too_long(buffer: bytes, lines_before: int) -> str:
    """Why no record ends within MAX_RECORD_BYTES: a line that long, a quote that never closes."""
    limit = f"{MAX_RECORD_BYTES // (1 << 20)} MB"
    if b"\n" not in buffer:  # one physical line: a huge field, or a huge number of them
        fields = buffer.count(b",") + 1
        if fields > MAX_FIELDS:
            return (
                f"line {lines_before + 1} has more than {MAX_FIELDS:,} fields ({fields:,} in its first {limit}); "
                "an export line has 8: is this the right file?"
            )
        return f"line {lines_before + 1} is longer than {limit}: no export line is; is this the right file?"
    line = lines_before + 1 + _first_unbalanced_line(buffer)
    return (
        f'line {line}: a quote (") opens a field that does not close; quote the whole '
        'field and double the quotes inside it ("12"" RULER")'
    )


def _last_record_end(buffer: bytes) -> int:
    """Index of the last newline of `buffer` that is outside a quoted field, or -1."""
    cut = buffer.rfind(b"\n")
    quotes = buffer.count(b'"', 0, cut)
    while cut >= 0 and quotes % 2:
        previous = buffer.rfind(b"\n", 0, cut)
        quotes -= buffer.count(b'"', previous + 1, cut)
        cut = previous
    return cut


def _first_unbalanced_line(buffer: bytes) -> int:
    """0-based index of the line where the quotes of `buffer` stop balancing."""
    open_since, quotes = 0, 0
    for index, text in enumerate(buffer.split(b"\n")):
        if quotes % 2 == 0:
            open_since = index
        quotes += text.count(b'"')
    return open_since


def _canonical(chunk: pl.DataFrame, source: Source) -> pl.DataFrame:
    """The file's columns (f0, f1, ... in the file's order) renamed to COLUMNS.

    An empty field is a missing value whether it is quoted ("") or not (Polars keeps "" as "")."""
    selected = [pl.col("line")]
    for index, column in zip(source.positions, COLUMNS, strict=True):
        field = pl.col(f"f{index}")
        selected.append(pl.when(field != "").then(field).alias(column))
    extras = [name for name in _EXTRAS if name in chunk.columns]
    selected.append(pl.coalesce(*extras).alias(_EXTRA) if extras else pl.lit(None, pl.String).alias(_EXTRA))
    return chunk.select(selected)


def _parquet_batches(source: Source) -> Iterator[Batch]:
    """Parquet columns as text for the same validation; dates keep their seconds (ISO format)."""
    schema = pl.read_parquet_schema(source.path)
    as_text = []
    for name in source.header:
        if schema[name].is_temporal():
            as_text.append(pl.col(name).cast(pl.Datetime("us")).dt.strftime(_ISO_DATE))
        else:
            as_text.append(pl.col(name).cast(pl.String))
    frame = (
        pl.scan_parquet(source.path)
        .select(as_text)
        .rename({name: f"f{index}" for index, name in enumerate(source.header)})
        .with_row_index("line", offset=1)  # a parquet row has no line: report its 1-based row number
    )
    try:
        for chunk in frame.collect_batches(chunk_size=BATCH_ROWS):
            yield _validate(_canonical(chunk, source), "parquet")
    except pl.exceptions.PolarsError as error:
        raise SourceError(
            f"{source.file_name}: the Parquet columns cannot be read as text, numbers and dates "
            f"({str(error).splitlines()[0]})"
        ) from None


def _locate_csv_error(file: BinaryIO) -> str:
    """Polars stops at a structural error without a line number: find it with the csv module."""
    file.seek(0)
    text = io.TextIOWrapper(file, encoding="utf-8", newline="")
    reader = csv.reader(text, strict=True)
    try:
        for _ in reader:
            pass
    except csv.Error as error:
        return f"line {reader.line_num}: malformed CSV ({error}); fix the quoting of that line and import again"
    finally:
        text.detach()
    file.seek(0)
    line = 1 + _first_unbalanced_line(file.read())
    return f'line {line}: a quote (") opens a field that does not close; fix the quoting of that line'


# --------------------------------------------------------------------------- validate


def _validate(chunk: pl.DataFrame, layout: str) -> Batch:
    """Type every column; a line failing any check becomes a Reject (its first problem)."""
    s = {name: pl.col(name) for name in COLUMNS}
    lines_read = chunk.height
    # Blank lines (or only commas) carry nothing: skipped, like the blank lines Excel leaves at the end.
    chunk = chunk.filter(~pl.all_horizontal(*(s[name].is_null() for name in COLUMNS), pl.col(_EXTRA).is_null()))
    # Each typed value is computed once, then checked.
    typed = chunk.with_columns(
        _quantity=s["quantity"].cast(pl.Int64, strict=False),
        _unit_price=s["unit_price"].cast(pl.Decimal(12, 3), strict=False),
        _customer=s["customer_id"].str.strip_suffix(".0").cast(pl.Int64, strict=False),  # II: "13085.0"
        _date=s["invoice_date"].str.strptime(pl.Datetime("us"), _DATE_PATTERNS[layout], strict=False),
    )
    quantity, unit_price, customer, date = (pl.col(name) for name in ("_quantity", "_unit_price", "_customer", "_date"))
    checks = [
        (pl.col(_EXTRA).is_not_null(), "", f"too many fields: expected {len(COLUMNS)}"),
        (s["invoice_no"].is_null(), "invoice_no", "missing (required)"),
        (s["invoice_no"].str.len_chars() > INVOICE_NO_LENGTH, "invoice_no", f"longer than {INVOICE_NO_LENGTH}"),
        (s["stock_code"].is_null(), "stock_code", "missing (required)"),
        (s["stock_code"].str.len_chars() > STOCK_CODE_LENGTH, "stock_code", f"longer than {STOCK_CODE_LENGTH}"),
        (s["description"].str.len_chars() > DESCRIPTION_LENGTH, "description", f"longer than {DESCRIPTION_LENGTH}"),
        (s["quantity"].is_null(), "quantity", "missing (required)"),
        (quantity.is_null(), "quantity", "not a whole number"),
        (~quantity.is_between(-_INT32_MAX - 1, _INT32_MAX), "quantity", "out of range"),
        (s["invoice_date"].is_null(), "invoice_date", "missing (required)"),
        (
            date.is_null() | ~s["invoice_date"].str.contains(_DATE_SHAPES[layout]),
            "invoice_date",
            f"not a date and time like {DATE_FORMATS[layout]}",
        ),
        (s["unit_price"].is_null(), "unit_price", "missing (required)"),
        (
            ~s["unit_price"].str.contains(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$"),
            "unit_price",
            "not a decimal number",
        ),
        (s["unit_price"].str.contains(r"\.[0-9]{4,}$"), "unit_price", "more than 3 decimal places"),
        (unit_price.is_null(), "unit_price", "out of range (at most 9 digits before the point)"),
        (
            (quantity.cast(pl.Float64) * unit_price.cast(pl.Float64)).abs() > MAX_LINE_REVENUE,
            "unit_price",
            f"quantity x unit price is over {MAX_LINE_REVENUE:,} (either sign): not a real line",
        ),
        (
            s["customer_id"].is_not_null() & (customer.is_null() | (customer < 0) | (customer > _INT32_MAX)),
            "customer_id",
            "not a customer number (a whole number, or empty)",
        ),
        (s["country"].is_null(), "country", "missing (required; is the line missing fields?)"),
        (s["country"].str.len_chars() > COUNTRY_LENGTH, "country", f"longer than {COUNTRY_LENGTH}"),
    ]
    bad = typed.select(pl.any_horizontal(check.fill_null(False) for check, _, _ in checks)).to_series()
    clean = typed.filter(~bad) if bad.any() else typed
    valid = clean.select(
        "invoice_no",
        "stock_code",
        "description",
        quantity.cast(pl.Int32).alias("quantity"),
        date.alias("invoice_date"),
        unit_price.alias("unit_price"),
        customer.cast(pl.Int32).alias("customer_id"),
        "country",
    )
    rejects: list[Reject] = []
    if clean is not typed:
        invalid = typed.filter(bad)
        # Only the (usually few) bad lines pay for finding their first failing check.
        column_expr: pl.Expr = pl.lit(None, pl.String)
        reason_expr: pl.Expr = pl.lit(None, pl.String)
        value_expr: pl.Expr = pl.lit(None, pl.String)
        for check, column, reason in reversed(checks):
            failed = check.fill_null(False)
            column_expr = pl.when(failed).then(pl.lit(column)).otherwise(column_expr)
            reason_expr = pl.when(failed).then(pl.lit(reason)).otherwise(reason_expr)
            value_expr = pl.when(failed).then(s[column] if column else pl.col(_EXTRA)).otherwise(value_expr)
        explained = invalid.select(
            "line", column_expr.alias("_column"), value_expr.alias("_value"), reason_expr.alias("_reason"), *COLUMNS
        )
        rejects = [
            Reject(
                line=row[0],
                column=row[1],
                value=row[2],
                reason=row[3],
                fields=tuple(row[4:]),
            )
            for row in explained.iter_rows()
        ]
    return Batch(rows=valid, rejects=rejects, lines_read=lines_read)


def write_rejects_header(file: TextIO, header: tuple[str, ...]) -> None:
    csv.writer(file).writerow(["line", "column", "reason", *header])


def write_rejects(file: TextIO, rejects: list[Reject]) -> None:
    """The rejected lines with their reasons: a CSV the user can fix and import again. A field
    that a spreadsheet would run as a formula (`=cmd|...`) gets a leading `'`."""
    writer = csv.writer(file)
    for reject in rejects:
        writer.writerow([reject.line, reject.column, reject.reason, *map(safe_cell, reject.fields)])
