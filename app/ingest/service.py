"""Importing a file into the database: one import is one database transaction.

`import_file` inspects the file, then streams its validated batches into the
transactions table (COPY on PostgreSQL, executemany on SQLite) inside a single
transaction that also records the import and bumps the dataset version. Any
error, an invalid line (unless skip_invalid), Ctrl-C or a killed process leaves
the database exactly as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal, TextIO

import asyncpg
import polars as pl
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import TransactionType

from app.ingest import pgcopy, shapes
from app.ingest.reader import (
    COLUMNS,
    LAYOUTS,
    Batch,
    Reject,
    Source,
    inspect_source,
    read_batches,
    write_rejects,
    write_rejects_header,
)
from app.ingest.tables import LINE_INDEXES, Import, Invoice, Transaction
from app.lib.db import engine, postgres_pool
from app.lib.settings import get_settings

REPORTED_REJECTS = 20  # lines shown in an error report
LOAD_TIMEOUT = 3600  # seconds a PostgreSQL COPY (or the key rebuild after it) may take

_INSERT_COLUMNS = (*COLUMNS, "import_id")


class ImportFailed(Exception):
    """Base of the import errors: the message is what the user reads (`browser`: in the Data
    page's words, where the CLI's names a flag)."""

    def __init__(self, message: str, browser: str | None = None) -> None:
        super().__init__(message)
        self.browser = browser or message


class DuplicateImport(ImportFailed):
    pass


# What to do with a file's invoices that are already stored (an invoice is the unit of overlap):
# refuse the import (the default), skip those invoices, or replace their stored lines.
OverlapMode = Literal["refuse", "skip", "replace"]
OVERLAP_MODES: tuple[OverlapMode, ...] = ("refuse", "skip", "replace")
OVERLAP_EXAMPLES = 5


@dataclass
class Overlap:
    """The file's invoices that are already stored."""

    invoices: int
    file_lines: int  # the file's lines of those invoices
    stored_lines: int  # the stored lines of those invoices
    examples: list[str]  # the first few invoice numbers
    first: datetime | None  # the date range of those invoices in the file
    last: datetime | None
    stored_days: shapes.Days | None = None  # the days of their stored lines

    def describe(self) -> str:
        span = f", {self.first:%Y-%m-%d} to {self.last:%Y-%m-%d}" if self.first and self.last else ""
        more = ", ..." if self.invoices > len(self.examples) else ""
        return (
            f"{self.invoices:,} of its invoices are already stored ({self.file_lines:,} lines in the file, "
            f"{self.stored_lines:,} stored{span}; e.g. {', '.join(self.examples)}{more})"
        )


class OverlapRefused(ImportFailed):
    """The file holds invoices that are already stored, and no overlap mode was chosen: nothing was written."""

    def __init__(self, source: Source, overlap: Overlap) -> None:
        self.overlap = overlap
        super().__init__(f"{source.file_name}: {overlap.describe()}; nothing was imported")


class ImportRejected(ImportFailed):
    """Invalid lines and no skip_invalid: nothing was written."""

    def __init__(self, source: Source, rejects: list[Reject], rejected: int, lines: int) -> None:
        self.source = source
        self.rejects = rejects  # the first REPORTED_REJECTS
        self.rejected = rejected
        self.lines = lines
        invalid = f"{rejected:,} of {lines:,} lines are invalid, nothing was imported"
        browser = None
        if rejected == 0:
            message = "the file has no data lines, only blank ones; nothing was imported"
        elif rejected < lines:
            message = f"{invalid}; fix them or import the valid lines with --skip-invalid"
            browser = f"{invalid}: fix them, or tick “Import the valid lines and skip invalid ones”"
        else:
            message = f"{invalid}; no line is valid: is this the right file?"
        super().__init__(f"{source.file_name}: {message}", f"{source.file_name}: {browser}" if browser else None)


@dataclass
class ImportResult:
    import_id: int
    dataset_version: int
    file_name: str
    layout: str
    encoding: str
    rows: int
    rejected_rows: int
    seconds: float
    replaced: bool
    overlap_mode: OverlapMode = "refuse"
    overlap: Overlap | None = None  # the invoices that were already stored, skipped or replaced
    overlap_seconds: float = 0.0  # spent finding the stored invoices and recording the file's
    reject_file: Path | None = None
    rejects: list[Reject] = field(default_factory=list)  # the first REPORTED_REJECTS

    def summary(self) -> str:
        rate = self.rows / self.seconds if self.seconds else 0
        line = (
            f"imported {self.rows:,} rows from {self.file_name} ({self.layout}, {self.encoding}), "
            f"rejected {self.rejected_rows:,}, {self.seconds:.1f} s ({rate:,.0f} rows/s); "
            f"dataset version {self.dataset_version}"
        )
        if self.replaced:
            line += "; previous data replaced"
        if self.overlap is not None:
            done = "skipped" if self.overlap_mode == "skip" else "replaced"
            line += (
                f"; {self.overlap.invoices:,} invoices were already stored: {done} "
                f"({self.overlap.file_lines:,} lines in the file, {self.overlap.stored_lines:,} stored)"
            )
        if self.reject_file:
            line += f"; rejected lines written to {self.reject_file}"
        return line


def reject_file_for(path: Path) -> Path:
    """`orders.csv.gz` -> `orders.rejected.csv`, beside the input."""
    name = path.name
    for suffix in (".gz", ".csv", ".parquet", ".txt"):
        name = name.removesuffix(suffix)
    return path.with_name(f"{name}.rejected.csv")


async def import_file(
    path: str | Path,
    *,
    replace: bool = False,
    overlap: OverlapMode = "refuse",
    skip_invalid: bool = False,
    reject_file: Path | None = None,
    file_name: str | None = None,
    max_unpacked: int | None = None,
    on_start: Callable[[Source], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import one file. Raises SourceError, DuplicateImport, OverlapRefused or ImportRejected with a
    clear message.

    replace: replace all stored data with the file's. overlap: what to do with the file's
    invoices that are already stored (refuse, skip them, or replace their stored lines).
    file_name: the name to record and show (an upload's original name); default: the path's.
    max_unpacked: the most bytes a Parquet file's data may be once read (uploads).
    """
    if overlap not in OVERLAP_MODES:
        raise ImportFailed(f"overlap must be one of {', '.join(OVERLAP_MODES)}, not {overlap!r}")
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    db = engine()
    rows_cap = get_settings().max_import_rows
    source = await asyncio.to_thread(
        partial(inspect_source, path, file_name, max_rows=rows_cap, max_unpacked=max_unpacked)
    )
    refuse_duplicate = not replace and overlap == "refuse"  # skip/replace of the same file is idempotent
    if refuse_duplicate:  # early, before reading; checked again inside the transaction
        await _refuse_duplicate(source)
    if on_start:
        on_start(source)

    rejects_path = (reject_file or reject_file_for(Path(path))) if skip_invalid else None
    if rejects_path is not None and rejects_path.resolve() == Path(path).resolve():
        raise ImportFailed(f"the rejected lines cannot overwrite the input {rejects_path}; choose another --rejects")
    if rejects_path is not None and not os.access(rejects_path.parent, os.W_OK):
        raise ImportFailed(f"cannot write the rejected lines to {rejects_path}; choose a file with --rejects PATH")
    tally = _Tally(skip_invalid=skip_invalid, rejects_path=rejects_path, layout=source.layout)
    keep_rejects = False
    try:
        postgres = isinstance(db, PostgresEngine)
        transaction = db.transaction() if postgres else db.transaction(transaction_type=TransactionType.immediate)
        async with transaction as tx:
            if postgres:
                # one import at a time: wait for another one to finish, however long it takes
                await tx.connection.execute("LOCK TABLE imports IN EXCLUSIVE MODE", timeout=LOAD_TIMEOUT)
                # delivered at commit (and dropped on rollback): web processes re-read the dataset tag
                await tx.connection.execute(f"NOTIFY {DATASET_CHANNEL}")
            if refuse_duplicate:
                await _refuse_duplicate(source)
            stored_before = not replace and await Transaction.exists().run()
            if not stored_before:  # replace all, or the first import (or the lines were emptied by hand)
                await Invoice.delete(force=True).run()
                await shapes.clear(tx.connection)
            version = await current_version() + 1
            import_row = Import(
                file_name=source.file_name[:255],
                sha256=source.sha256,
                layout=source.layout,
                encoding=source.encoding,
                started_at=started_at,
                status="loading",
                dataset_version=version,
            )
            await import_row.save().run()
            if replace:
                await Import.update({Import.status: "replaced"}).where(Import.id != import_row.id).run()
                if postgres:  # transactional in PostgreSQL; readers wait until the import commits
                    await tx.connection.execute("TRUNCATE transactions", timeout=LOAD_TIMEOUT)
                else:
                    await Transaction.delete(force=True).run()

            if postgres:
                await _postgres_load(tx.connection, source, import_row.id, tally, on_progress)
            else:
                payloads = _prefetch(
                    read_batches(source), tally.summing(_sqlite_rows(import_row.id)), tally, on_progress
                )
                await _sqlite_insert(tx.connection, payloads)
            tally.raise_if_rejected(source)
            checked = time.perf_counter()
            stored = await _stored_invoices(tx.connection, postgres, tally.invoices) if stored_before else set()
            found = await _overlap(tx.connection, postgres, import_row.id, stored) if stored else None
            if found is not None:
                if overlap == "refuse":
                    raise OverlapRefused(source, found)
                await _resolve_overlap(tx.connection, postgres, import_row.id, overlap)
                if overlap == "skip":
                    tally.rows -= found.file_lines
                    if tally.rows == 0:
                        raise ImportFailed(
                            f"{source.file_name}: every invoice in it is already stored; nothing was imported"
                        )
            # the shapes: the file's own when it touched no stored day, else the changed days again
            touched = found is not None or (
                stored_before and tally.days is not None and await shapes.stored_on(tx.connection, postgres, tally.days)
            )
            if not touched:
                await shapes.write(tx.connection, postgres, tally.shapes)
            else:  # the days whose lines changed: the file's, and those of the stored lines it replaced
                changed = tally.days
                if found is not None and overlap == "replace":
                    changed = shapes.widen(changed, found.stored_days)
                await shapes.refresh_days(tx.connection, postgres, changed)
            new_invoices = [(number, import_row.id) for number in tally.invoices - stored]
            await _insert(tx.connection, postgres, "invoices", ("invoice_no", "import_id"), new_invoices)
            overlap_seconds = time.perf_counter() - checked + tally.invoice_seconds
            result = ImportResult(
                import_id=import_row.id,
                dataset_version=version,
                file_name=source.file_name,
                layout=source.layout,
                encoding=source.encoding,
                rows=tally.rows,
                rejected_rows=tally.rejected,
                seconds=time.perf_counter() - started,
                replaced=replace,
                overlap_mode=overlap,
                overlap=found,
                overlap_seconds=overlap_seconds,
                reject_file=rejects_path if tally.rejected else None,
                rejects=tally.sample,
            )
            await (
                Import.update(
                    {
                        Import.rows: tally.rows,
                        Import.rejected_rows: tally.rejected,
                        Import.finished_at: datetime.now(UTC),
                        Import.status: "loaded",
                        Import.summary: result.summary(),
                    }
                )
                .where(Import.id == import_row.id)
                .run()
            )
        keep_rejects = True
    except ImportRejected:
        keep_rejects = True
        raise
    finally:
        tally.close(keep_rejects)

    result.seconds = time.perf_counter() - started  # with the commit
    global _imports_committed
    _imports_committed += 1
    return result


# The overlap check goes through the `invoices` table (every stored invoice number, by key): the
# file's invoice numbers, collected while reading, are looked up there, a few milliseconds where a
# join of the lines costs a scan of the whole table. Only when some are found do the other
# queries (lines, dates, deletions) read the lines, through the temporary table `overlap`.


async def _execute(connection: Any, postgres: bool, sql: str, new: int | None = None) -> list[tuple]:
    """Run `sql` (whose `{new}` is the import's id) inside the import's transaction; its rows."""
    if postgres:
        args = () if new is None else (new,)
        return [tuple(row) for row in await connection.fetch(sql.format(new="$1"), *args, timeout=LOAD_TIMEOUT)]
    cursor = await connection.execute(sql.format(new=":new"), {} if new is None else {"new": new})
    # Piccolo's SQLite connection makes each row a dict
    return [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in await cursor.fetchall()]


async def _insert(connection: Any, postgres: bool, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    if postgres:
        await connection.copy_records_to_table(table, records=rows, columns=columns, timeout=LOAD_TIMEOUT)
    else:
        marks = ", ".join("?" * len(columns))
        await connection.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


async def _stored_invoices(connection: Any, postgres: bool, invoices: set[str]) -> set[str]:
    """Which of these invoice numbers are stored already."""
    if postgres:
        sql = "SELECT invoice_no FROM invoices WHERE invoice_no = ANY($1::text[])"
        return {row[0] for row in await connection.fetch(sql, list(invoices), timeout=LOAD_TIMEOUT)}
    await connection.execute("DROP TABLE IF EXISTS temp.file_invoices")
    await connection.execute("CREATE TEMP TABLE file_invoices (invoice_no TEXT PRIMARY KEY)")
    await _insert(connection, postgres, "file_invoices", ("invoice_no",), [(i,) for i in invoices])
    sql = "SELECT f.invoice_no FROM file_invoices f JOIN invoices i ON i.invoice_no = f.invoice_no"
    return {row[0] for row in await _execute(connection, postgres, sql)}


async def _overlap(connection: Any, postgres: bool, new: int, stored: set[str]) -> Overlap:
    """What the file shares with the stored data: its lines and the stored lines of `stored`."""
    if postgres:
        await connection.execute("CREATE TEMP TABLE overlap (invoice_no text PRIMARY KEY) ON COMMIT DROP")
    else:
        await connection.execute("DROP TABLE IF EXISTS temp.overlap")
        await connection.execute("CREATE TEMP TABLE overlap (invoice_no TEXT PRIMARY KEY)")
    await _insert(connection, postgres, "overlap", ("invoice_no",), [(i,) for i in stored])
    ours = "invoice_no IN (SELECT invoice_no FROM overlap)"
    ((lines, first, last),) = await _execute(
        connection,
        postgres,
        f"SELECT COUNT(*), MIN(invoice_date), MAX(invoice_date) FROM transactions WHERE import_id = {{new}} AND {ours}",
        new,
    )
    ((lines_stored, stored_first, stored_last),) = await _execute(
        connection,
        postgres,
        "SELECT COUNT(*), MIN(invoice_date), MAX(invoice_date) FROM transactions "
        f"WHERE import_id <> {{new}} AND {ours}",
        new,
    )
    return Overlap(
        invoices=len(stored),
        file_lines=lines,
        stored_lines=lines_stored,
        examples=sorted(stored)[:OVERLAP_EXAMPLES],
        first=_timestamp(first),
        last=_timestamp(last),
        stored_days=shapes.day_bounds(stored_first, stored_last),
    )


def _timestamp(value: object) -> datetime | None:
    """A stored invoice date (PostgreSQL gives datetimes, SQLite Piccolo's text)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value)[:19])


async def _resolve_overlap(connection: Any, postgres: bool, new: int, mode: OverlapMode) -> None:
    """skip: drop the file's lines of the overlapping invoices; replace: drop their stored lines."""
    side = "=" if mode == "skip" else "<>"
    sql = f"DELETE FROM transactions WHERE import_id {side} {{new}} AND invoice_no IN (SELECT invoice_no FROM overlap)"
    await _execute(connection, postgres, sql, new)
    if mode == "replace":  # those invoices' lines are now this import's
        sql = "UPDATE invoices SET import_id = {new} WHERE invoice_no IN (SELECT invoice_no FROM overlap)"
        await _execute(connection, postgres, sql, new)


async def _refuse_duplicate(source: Source) -> None:
    same = (
        await Import.select(Import.dataset_version, Import.file_name)
        .where((Import.sha256 == source.sha256) & (Import.status == "loaded"))
        .first()
        .run()
    )
    if same:
        raise DuplicateImport(
            f"{source.file_name}: this content was already imported (as {same['file_name']}, "
            f"dataset version {same['dataset_version']}); use --replace to replace all data with it",
            f"{source.file_name}: this file is already loaded (as {same['file_name']}, dataset version "
            f"{same['dataset_version']}): tick “Replace all data with this file” to load it again",
        )


class _Tally:
    """Counts rows and rejects as batches pass; keeps the report sample and writes the reject file."""

    def __init__(self, skip_invalid: bool, rejects_path: Path | None, layout: str) -> None:
        self.skip_invalid = skip_invalid
        self.rows = 0
        self.rejected = 0
        self.lines = 0
        self.sample: list[Reject] = []
        self.invoices: set[str] = set()  # the invoice numbers of the valid lines
        self.invoice_seconds = 0.0  # spent collecting them (part of the overlap check's cost)
        self.days: shapes.Days | None = None  # the days of the valid lines
        self.shapes = shapes.Accumulator()  # the shapes of the valid lines
        self.rejects_path = rejects_path
        self._layout = layout
        self._file: TextIO | None = None

    @property
    def failed(self) -> bool:
        """Without skip_invalid the first invalid line dooms the import: stop writing rows."""
        return self.rejected > 0 and not self.skip_invalid

    def summing(self, encode: Callable[[pl.DataFrame], Any]) -> Callable[[pl.DataFrame], Any]:
        """`encode`, which also adds the rows to the file's shapes (in the encoder thread)."""

        def encode_and_sum(rows: pl.DataFrame) -> Any:
            self.shapes.add(rows)
            return encode(rows)

        return encode_and_sum

    def add(self, batch: Batch) -> None:
        self.lines += batch.lines_read
        self.rows += batch.rows.height
        collecting = time.perf_counter()
        self.invoices.update(batch.rows.get_column("invoice_no").unique().to_list())
        if batch.rows.height:
            dates = batch.rows.get_column("invoice_date")
            self.days = shapes.widen(self.days, shapes.day_bounds(dates.min(), dates.max()))
        self.invoice_seconds += time.perf_counter() - collecting
        self.rejected += len(batch.rejects)
        room = REPORTED_REJECTS - len(self.sample)
        if room > 0:
            self.sample.extend(batch.rejects[:room])
        if batch.rejects and self.rejects_path is not None:
            if self._file is None:
                self._file = open(self.rejects_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
                write_rejects_header(self._file, LAYOUTS[self._layout])
            write_rejects(self._file, batch.rejects)

    def raise_if_rejected(self, source: Source) -> None:
        if self.failed or self.rows == 0:
            raise ImportRejected(source, self.sample, self.rejected, self.lines)

    def close(self, keep: bool) -> None:
        """Close the reject file; drop it unless the import landed or was refused for its lines."""
        if self._file is not None:
            self._file.close()
            self._file = None
            if not keep and self.rejects_path is not None:
                self.rejects_path.unlink(missing_ok=True)


_DONE = object()


def _prefetch(
    batches: Iterator[Batch],
    encode: Callable[[pl.DataFrame], object],
    tally: _Tally,
    on_progress: Callable[[int], None] | None,
) -> AsyncIterator:
    """Read, validate and encode batches in two background threads, a couple of batches ahead,
    while the database takes the previous ones: reading batch n+1 overlaps encoding batch n.

    Yields the encoded rows to write; once the import is doomed by an invalid line
    it yields nothing more but keeps reading, so the report counts every bad line.
    """
    items: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()  # the consumer is gone: stop reading
    doomed = threading.Event()  # nothing more will be written: stop encoding

    def put(item: tuple) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                items.put(item, timeout=0.2)
                return True
        return False

    def produce() -> None:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-encoder") as encoder:
            try:
                for batch in batches:
                    encoded = encoder.submit(encode, batch.rows) if batch.rows.height and not doomed.is_set() else None
                    if not put((batch, encoded)):
                        return
                put((_DONE, None))
            except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises it
                put((_DONE, error))

    def take() -> tuple:
        # Never blocks for good: a cancelled import (Ctrl-C) must not leave this thread waiting,
        # or the event loop would wait for it on shutdown.
        while True:
            try:
                return items.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    return _DONE, None

    async def consume() -> AsyncIterator:
        worker = threading.Thread(target=produce, name="import-reader", daemon=True)
        worker.start()
        try:
            while True:
                batch, encoded = await asyncio.to_thread(take)
                if batch is _DONE:
                    if encoded is not None:
                        raise encoded
                    return
                tally.add(batch)
                if on_progress:
                    on_progress(batch.lines_read)
                if tally.failed:
                    doomed.set()
                elif encoded is not None:
                    yield await asyncio.wrap_future(encoded)
        finally:
            stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    items.get_nowait()
            await asyncio.to_thread(worker.join, 5)

    return consume()


# COPY's column order: fixed-width columns first, then strings and the nullable customer (pgcopy.encode).
_COPY_FIELDS = tuple(
    pgcopy.Field(name, kind)
    for name, kind in (
        ("id", "int8"),
        ("quantity", "int4"),
        ("invoice_date", "timestamp"),
        ("unit_price", "numeric3"),
        ("import_id", "int4"),
        ("invoice_no", "text"),
        ("stock_code", "text"),
        ("description", "text"),
        ("country", "text"),
        ("customer_id", "int4"),
    )
)


async def _postgres_load(
    connection: asyncpg.Connection,
    source: Source,
    import_id: int,
    tally: _Tally,
    on_progress: Callable[[int], None] | None,
) -> None:
    """Binary COPY. Into an empty table the primary key and the indexes are dropped and rebuilt
    once at the end (the classic bulk-load trick: far cheaper than maintaining them row by row); ids come from a
    block of the table's sequence, numbered here, so the database does no per-row nextval."""
    bulk = not await connection.fetchval("SELECT EXISTS (SELECT 1 FROM transactions)")
    sequence = await connection.fetchval("SELECT pg_get_serial_sequence('transactions', 'id')")
    first_id = await connection.fetchval("SELECT nextval($1::regclass)", sequence)
    if bulk:
        await connection.execute("ALTER TABLE transactions DROP CONSTRAINT transactions_pkey")
        for name in LINE_INDEXES:
            await connection.execute(f"DROP INDEX IF EXISTS {name}")
    payloads = _prefetch(read_batches(source), tally.summing(_postgres_tuples(import_id, first_id)), tally, on_progress)

    async def stream() -> AsyncIterator[bytes | memoryview]:
        yield pgcopy.HEADER
        async for payload in payloads:
            yield payload
        yield pgcopy.TRAILER

    columns = [field.name for field in _COPY_FIELDS]
    # The engine's command timeout suits queries, not a load of any size: one hour here.
    await connection.copy_to_table(
        "transactions", source=stream(), columns=columns, format="binary", timeout=LOAD_TIMEOUT
    )
    if tally.rows:
        await connection.execute("SELECT setval($1::regclass, $2)", sequence, first_id + tally.rows - 1)
    if bulk:
        await connection.execute("SET LOCAL maintenance_work_mem = '256MB'")
        await connection.execute(
            "ALTER TABLE transactions ADD CONSTRAINT transactions_pkey PRIMARY KEY (id)", timeout=LOAD_TIMEOUT
        )
        for statement in LINE_INDEXES.values():
            await connection.execute(statement, timeout=LOAD_TIMEOUT)


def _postgres_tuples(import_id: int, first_id: int) -> Callable[[pl.DataFrame], memoryview]:
    next_id = first_id

    def encode(rows: pl.DataFrame) -> memoryview:
        nonlocal next_id  # batches are encoded one after another, in file order
        rows = rows.with_columns(
            pl.int_range(next_id, next_id + rows.height, dtype=pl.Int64).alias("id"),
            pl.lit(import_id, pl.Int32).alias("import_id"),
        )
        next_id += rows.height
        return pgcopy.encode(rows, _COPY_FIELDS)

    return encode


def _sqlite_rows(import_id: int) -> Callable[[pl.DataFrame], list[tuple]]:
    def encode(rows: pl.DataFrame) -> list[tuple]:
        return rows.with_columns(
            pl.col("invoice_date").dt.strftime("%Y-%m-%d %H:%M:%S"),  # the text Piccolo stores in SQLite
            pl.col("unit_price").cast(pl.Float64),  # Piccolo stores NUMERIC as REAL in SQLite
            pl.lit(import_id, pl.Int64).alias("import_id"),
        ).rows()

    return encode


async def _sqlite_insert(connection, payloads: AsyncIterator) -> None:
    columns = ", ".join(_INSERT_COLUMNS)
    sql = f"INSERT INTO transactions ({columns}) VALUES ({', '.join('?' * len(_INSERT_COLUMNS))})"
    async for rows in payloads:
        await connection.executemany(sql, rows)


@dataclass
class DatasetStatus:
    version: int  # 0 before the first import
    transactions: int
    imports: list[dict]  # newest first


async def dataset_status(limit: int = 50) -> DatasetStatus:
    """The current dataset version, the number of stored rows and the latest imports."""
    imports = await Import.select().order_by(Import.id, ascending=False).limit(limit).run()
    version = await current_version()
    # from the invoice grain: a count of the lines would scan them (and wait for a first import's lock)
    rows = await Transaction.raw("SELECT COALESCE(SUM(all_lines), 0) AS n FROM sales_invoices").run()
    return DatasetStatus(version=version, transactions=int(rows[0]["n"]), imports=imports)


DATASET_CHANNEL = "shop_dataset"  # PostgreSQL NOTIFY channel of committed imports


# the latest import's version and start, which name the stored data (every reader of the tag uses it)
TAG_QUERY = "SELECT dataset_version, started_at FROM imports ORDER BY dataset_version DESC LIMIT 1"


async def dataset_tag() -> str:
    """Names the stored data: changes with every import, and also when the imports table is
    emptied or restored and versions start again (so a cached result can never be mistaken)."""
    pool = postgres_pool()
    if pool is not None:
        async with pool.acquire(timeout=5) as connection:
            row = await connection.fetchrow(TAG_QUERY)
        latest = dict(row) if row else None
    else:
        rows = await Import.raw(TAG_QUERY).run()
        latest = rows[0] if rows else None
    return tag_of(latest["dataset_version"], latest["started_at"]) if latest else "0"


def tag_of(version: int, started: object) -> str:
    """The dataset tag of the latest import's version and start (TAG_QUERY's row)."""
    if isinstance(started, str):  # SQLite's text, "2026-12-01 11:55:40.536292+00:00"
        started = datetime.fromisoformat(started)
    stamp = int(started.timestamp() * 1_000_000) if isinstance(started, datetime) else started
    return f"{version}.{stamp}"


_imports_committed = 0  # imports this process committed (SqliteTag's memo ends at each)


class SqliteTag:
    """The embedded database's dataset tag without a connection (and a thread) per request.

    One read-only sqlite3 connection, kept: `PRAGMA data_version` changes when another
    connection has committed, and only then is the tag read again. Both are microseconds
    and run on the caller's thread. None when the file or the table is not there yet (the
    caller reads the tag the ordinary way).
    """

    # The PRAGMA is an eighth of a warm request: its answer is kept this long, unless this
    # process committed an import meanwhile (seen at once); another process's import is seen
    # within that time (the upload's job and `forget` make it at once for the web's own jobs).
    MEMO_SECONDS = 0.25

    def __init__(self, path: Path) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None
        self._seen: int | None = None
        self._tag: str | None = None
        self._until = 0.0
        self._commits = -1

    def forget(self) -> None:
        self._until = 0.0

    def read(self) -> str | None:
        if self._tag is not None and self._commits == _imports_committed and time.monotonic() < self._until:
            return self._tag
        self._commits, self._until = _imports_committed, time.monotonic() + self.MEMO_SECONDS
        try:
            if self._connection is None:
                self._connection = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, check_same_thread=False)
            (changes,) = self._connection.execute("PRAGMA data_version").fetchone()
            if changes != self._seen or self._tag is None:
                # read after data_version: a commit in between is seen by the next call
                row = self._connection.execute(TAG_QUERY).fetchone()
                self._tag, self._seen = (tag_of(*row) if row else "0"), changes
            return self._tag
        except sqlite3.Error:
            self.close()
            return None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection, self._tag = None, None


async def current_version() -> int:
    """The dataset version: bumped by every import; results cached under an older one are stale."""
    latest = await Import.select(Import.dataset_version).order_by(Import.dataset_version, ascending=False).first().run()
    return latest["dataset_version"] if latest else 0
