"""Running a CLI command's async work: schema checked first, known failures as one `error:` line."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import click

from app.lib.settings import get_settings


def run_command(work: Callable[[], Awaitable[Any]], known: tuple[type[Exception], ...] = ()) -> Any:
    """`work()`'s result; exit 1 with one line for an outdated schema, a database that cannot be
    used, Ctrl-C or one of `known` (whose message is shown as it is)."""
    from app.lib.db import SchemaOutOfDate, database_error_message, prepare_schema

    async def main() -> Any:
        from app.metrics.service import reset_metrics_service

        await prepare_schema(get_settings())
        try:
            return await work()
        finally:
            await reset_metrics_service()  # closes the process's cache (Redis connections)

    shown: tuple[type[Exception], ...] = (SchemaOutOfDate, *known)
    try:
        return asyncio.run(main())
    except shown as error:
        click.echo(f"error: {error}", err=True)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
    except Exception as error:
        message = database_error_message(error)
        if message is None:
            raise
        click.echo(f"error: {message}", err=True)
    sys.exit(1)
