"""`litestar metrics ...`: precompute the figures by hand, or queue that for the worker."""

from __future__ import annotations

import sys
from typing import Any

import click
import msgspec

from app.lib.cli import run_command
from app.lib.settings import get_settings


def register(cli: click.Group) -> None:
    """Add the `metrics` group to the Litestar CLI."""

    @cli.group(name="metrics")
    def metrics() -> None:
        """Precompute the dashboard's figures."""

    @metrics.command(name="refresh")
    @click.option("--queue", is_flag=True, help="Queue the refresh for the taskiq worker instead of running it here.")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    def refresh_command(queue: bool, as_json: bool) -> None:
        """Compute the default views of the current data and store them in the cache.

        With REDIS_URL set, the results land in Redis, where every web process finds them.
        Embedded (no REDIS_URL), they only live in this command's memory: it then checks
        that every view computes and shows what it costs.
        """
        if queue:
            from app.metrics.jobs import trigger_refresh

            if not get_settings().redis_url:
                click.echo("error: --queue needs REDIS_URL (the worker's queue); run without it instead", err=True)
                sys.exit(1)
            state = run_command(lambda: trigger_refresh(here=False))
            if not state.startswith("queued"):
                click.echo("error: could not reach the queue at REDIS_URL", err=True)
                sys.exit(1)
            click.echo(f"refresh {state}")
            return

        from app.metrics.service import get_metrics_service

        async def refresh() -> Any:
            service = get_metrics_service()
            return service.cache.name, await service.refresh()

        where, report = run_command(refresh)
        if as_json:
            click.echo(msgspec.json.format(msgspec.json.encode(report)).decode())
            return
        stored = f"stored in the {where}" if report.cached else f"NOT stored: the {where} is unavailable"
        click.echo(
            f"dataset version {report.version}: {report.sales_lines:,} sales lines; "
            f"{report.views} views computed and {stored}"
        )
        click.echo(
            f"  load {report.load_seconds:.2f} s, compute {report.compute_seconds:.2f} s, "
            f"store {report.store_seconds:.2f} s, total {report.seconds:.2f} s"
        )
        click.echo(
            "  views: KPIs, alone and against the previous period; series by day, week, month and year; top "
            "countries by revenue, units_sold, orders and customers; every country's page; transactions page 1; "
            "customers, cohorts, RFM segments and the first page of each segment's customers; products by each "
            "measure; the pairs bought together"
        )
