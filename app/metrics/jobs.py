"""Background work on the metrics: the `refresh` task and enqueueing it after an import."""

from __future__ import annotations

import logging

import msgspec
from redis.exceptions import RedisError

from app.lib.broker import broker, refresh_schedule, settings
from app.metrics.service import get_metrics_service

logger = logging.getLogger(__name__)


@broker.task(task_name="metrics.refresh", schedule=refresh_schedule(settings))
async def refresh() -> dict:
    """Precompute the default views of the current dataset into the cache. Idempotent."""
    report = await get_metrics_service().refresh()
    logger.info(
        "refresh: dataset version %d, %d views in %.2f s (load %.2f s)",
        report.version,
        report.views,
        report.seconds,
        report.load_seconds,
    )
    return msgspec.to_builtins(report)


async def trigger_refresh(here: bool = True) -> str:
    """The one way to ask for a refresh (after an import, by hand, at start): queued for a worker
    in production; embedded, run in this process in the background when `here` (the web
    process), else left to the web process's first requests. Says what happened, for the user."""
    if settings.redis_url:
        return (
            "queued for the worker, which precomputes the figures"
            if await enqueue_refresh()
            else "not queued (Redis unreachable)"
        )
    if not here:
        return "not queued (no worker in the embedded mode: the web computes each view on first request)"
    await broker.startup()  # idempotent; the in-process broker runs the task as a background task
    await refresh.kiq()
    return "running in the background"


async def enqueue_refresh() -> bool:
    """Ask a worker to refresh, from a process that does not run the broker (the import CLI).

    False when there is no worker to ask (embedded mode: the web process computes each
    view on first request) or, with a warning, when the queue is unreachable.
    """
    if not settings.redis_url:
        return False
    try:
        await broker.startup()
        try:
            await refresh.kiq()
        finally:
            await broker.shutdown()
    except (RedisError, OSError, TimeoutError) as error:
        logger.warning("could not queue a refresh (%s); the figures are computed on first view", error)
        return False
    return True
