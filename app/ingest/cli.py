"""`litestar data ...`: import a file or the demo data, replace all data, show what is loaded.

The importer and the database are imported inside the commands: `litestar data --help`
loads none of them (app/__init__.py builds no routes for the CLI's own commands)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app.lib.settings import get_settings

if TYPE_CHECKING:
    from app.ingest.service import ImportResult, OverlapMode


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _run(work: Callable[[], Awaitable[Any]]) -> Any:
    """Run `work()` with the schema ready; known failures become one `error:` line and exit 1."""
    from app.ingest.reader import SourceError
    from app.ingest.service import ImportFailed, ImportRejected, OverlapRefused
    from app.lib.db import SchemaOutOfDate, database_error_message, prepare_schema

    async def main() -> Any:
        await prepare_schema(get_settings())
        return await work()

    try:
        return asyncio.run(main())
    except ImportRejected as error:
        click.echo(f"error: {error}", err=True)
        for reject in error.rejects:
            where = f"{reject.column} = {reject.value!r}: " if reject.column else ""
            click.echo(f"  line {reject.line}: {where}{reject.reason}", err=True)
        if error.rejected > len(error.rejects):
            click.echo(f"  ... and {error.rejected - len(error.rejects):,} more", err=True)
        sys.exit(1)
    except OverlapRefused as error:
        _fail(
            f"{error}. Choose: skip those invoices (--skip-overlap), replace their stored lines with the "
            "file's (--replace-overlap), or replace all data with the file (--replace)"
        )
    except (SourceError, ImportFailed, SchemaOutOfDate) as error:
        _fail(str(error))
    except KeyboardInterrupt:
        _fail("interrupted: nothing was written, the database is as it was")
    except OSError as error:
        if (message := database_error_message(error)) is not None:
            _fail(message)
        where = f": {error.filename}" if error.filename else ""
        _fail(f"{error.strerror or error}{where}; nothing was written")
    except Exception as error:
        message = database_error_message(error)
        if message is None:
            raise
        _fail(message)


def _import(
    path: str, replace: bool, skip_invalid: bool, rejects: str | None, overlap: OverlapMode = "refuse"
) -> ImportResult:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from app.ingest.reader import Source
    from app.ingest.service import import_file

    class RowsPerSecond(TextColumn):
        def __init__(self) -> None:
            super().__init__("")

        def render(self, task):
            speed = task.finished_speed or task.speed
            return f"{speed:,.0f} rows/s" if speed else "… rows/s"

    console = Console(stderr=True)
    show_progress = console.is_terminal
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=24),
        TextColumn("{task.completed:>9,.0f} / {task.total:,.0f} lines"),
        RowsPerSecond(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not show_progress,
    )
    task_id = None

    def on_start(source: Source) -> None:
        nonlocal task_id
        task_id = progress.add_task(f"importing {source.file_name}", total=source.rows_estimate)

    def on_progress(lines: int) -> None:
        if task_id is not None:
            progress.advance(task_id, lines)

    with progress:
        result = _run(
            lambda: import_file(
                path,
                replace=replace,
                overlap=overlap,
                skip_invalid=skip_invalid,
                reject_file=Path(rejects) if rejects else None,
                on_start=on_start,
                on_progress=on_progress,
            )
        )
    click.echo(result.summary())
    if get_settings().redis_url:
        state = _run(_trigger_refresh)
        click.echo(f"refresh {state}")
    return result


async def _trigger_refresh() -> str:
    from app.metrics.jobs import trigger_refresh

    return await trigger_refresh(here=False)


_file_argument = click.argument("file", type=click.Path(dir_okay=True, path_type=str))
_skip_option = click.option(
    "--skip-invalid",
    is_flag=True,
    help="Import the valid lines and write the rejected ones, with their reasons, to a file beside FILE.",
)
_rejects_option = click.option(
    "--rejects",
    type=click.Path(dir_okay=False, writable=True),
    help="Where --skip-invalid writes the rejected lines (default: FILE's name + .rejected.csv, beside it).",
)


def register(cli: click.Group) -> None:
    """Add the `data` group to the Litestar CLI."""

    @cli.group(name="data")
    def data() -> None:
        """Import transaction exports and inspect the loaded data."""

    @data.command(name="import")
    @_file_argument
    @click.option(
        "--replace", is_flag=True, help="Replace all transactions with this file's (also allows a re-import)."
    )
    @click.option(
        "--skip-overlap", is_flag=True, help="Import only the invoices that are not stored yet (skip the others)."
    )
    @click.option(
        "--replace-overlap",
        is_flag=True,
        help="Replace the stored lines of the file's invoices that are already stored with the file's lines.",
    )
    @_skip_option
    @_rejects_option
    def import_command(
        file: str, replace: bool, skip_overlap: bool, replace_overlap: bool, skip_invalid: bool, rejects: str | None
    ) -> None:
        """Import FILE (.csv, .csv.gz or .parquet; Kaggle or Online Retail II layout).

        By default a file with any invalid line is refused and nothing is written, and so is a
        file with invoices that are already stored (an overlapping export): the error says how
        many; then choose --skip-overlap, --replace-overlap or --replace.
        """
        if sum((replace, skip_overlap, replace_overlap)) > 1:
            _fail("choose one of --replace, --skip-overlap and --replace-overlap")
        mode: OverlapMode = "skip" if skip_overlap else "replace" if replace_overlap else "refuse"
        _import(file, replace, skip_invalid, rejects, mode)

    @data.command(name="replace")
    @_file_argument
    @_skip_option
    @_rejects_option
    def replace_command(file: str, skip_invalid: bool, rejects: str | None) -> None:
        """Replace all transactions with FILE's, in one transaction (same as `data import --replace`)."""
        _import(file, True, skip_invalid, rejects)

    @data.command(name="demo")
    @click.option("--replace", is_flag=True, help="Replace all stored transactions with the demo data.")
    def demo_command(replace: bool) -> None:
        """Load the demo data set: a third of the real UCI Online Retail shop (191,404 lines).

        An ordinary import of the file shipped in app/ingest/demo/ (CC BY 4.0, see its README):
        replace it later with your own export (`data import FILE --replace`).
        """
        from app.ingest.demo import DEMO_FILE

        _import(str(DEMO_FILE), replace, False, None)

    @data.command(name="status")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    def status_command(as_json: bool) -> None:
        """Show the dataset version, the number of stored rows and the latest imports."""
        from app.ingest.service import dataset_status

        status = _run(dataset_status)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "dataset_version": status.version,
                        "transactions": status.transactions,
                        "imports": status.imports,
                    },
                    default=str,
                    indent=2,
                )
            )
            return
        click.echo(f"dataset version {status.version}, {status.transactions:,} transactions stored")
        if not status.imports:
            click.echo("no imports yet: run `uv run litestar data import FILE`")
            return
        click.echo(
            f"{'id':>4}  {'version':>7}  {'status':<8}  {'rows':>9}  {'rejected':>8}  "
            f"{'layout':<16}  {'encoding':<8}  {'finished (UTC)':<19}  file"
        )
        for row in status.imports:
            finished = row["finished_at"].strftime("%Y-%m-%d %H:%M:%S") if row["finished_at"] else ""
            click.echo(
                f"{row['id']:>4}  {row['dataset_version']:>7}  {row['status']:<8}  {row['rows']:>9,}  "
                f"{row['rejected_rows']:>8,}  {row['layout']:<16}  {row['encoding']:<8}  {finished:<19}  "
                f"{row['file_name']}"
            )
