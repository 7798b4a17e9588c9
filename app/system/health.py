"""Probes for orchestrators and operators: `/health` (the process answers) and `/ready` (it can serve).

Both are public, JSON, and cheap: `/ready` makes one small database read and one Redis PING,
each bounded in time, so a probe never hangs on a dead dependency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
from litestar import Controller, Response, get
from redis.exceptions import RedisError

from app.ingest.service import dataset_tag
from app.lib.db import database_error_message
from app.lib.settings import get_settings
from app.metrics.analytics import tag_version
from app.metrics.service import get_metrics_service

PROBE_TIMEOUT_SECONDS = 3.0


class Health(msgspec.Struct):
    status: str  # always "ok": the process is up and its event loop answers


class Dependency(msgspec.Struct):
    ok: bool
    configured: bool = True
    latency_ms: float | None = None
    error: str | None = None


class DatasetState(msgspec.Struct):
    version: int | None  # None when the database cannot be read
    tag: str | None


class CacheState(msgspec.Struct):
    backend: str  # "redis" or "in-process"
    refreshed_at: datetime | None  # when the current dataset's views were last precomputed
    age_seconds: float | None
    hits: int
    misses: int
    stores: int
    errors: int
    skipped: int  # calls not made because the breaker was open


class ProcessState(msgspec.Struct):
    frame_version: int | None  # the dataset version whose shapes this process holds (None: not read yet)
    answers_computed: int  # answers this process computed itself (cache misses)
    answers_local: int  # answers served from this process's own copy


class Readiness(msgspec.Struct):
    status: str  # "ready", "degraded" (Redis down: answers are computed in-process) or "unavailable"
    database: Dependency
    redis: Dependency
    dataset: DatasetState
    cache: CacheState
    process: ProcessState


def _redis_error(error: Exception) -> str | None:
    if isinstance(error, RedisError | OSError):
        return f"cannot reach Redis ({type(error).__name__}: {error}); answers are computed in each web process"
    return None


async def _timed(
    probe: Callable[[], Awaitable[object]], describe: Callable[[Exception], str | None]
) -> tuple[object, Dependency]:
    """Run one probe within PROBE_TIMEOUT_SECONDS; a failure `describe` knows becomes a Dependency error."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            value = await probe()
    except TimeoutError:
        return None, Dependency(ok=False, error=f"no answer within {PROBE_TIMEOUT_SECONDS:.0f} s")
    except Exception as error:
        message = describe(error)
        if message is None:
            raise
        return None, Dependency(ok=False, error=message)
    return value, Dependency(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 2))


class HealthController(Controller):
    tags = ["health"]  # noqa: RUF012

    @get("/health", summary="The process is up", cache=False, sync_to_thread=False)
    def health(self) -> Health:
        return Health(status="ok")

    @get("/ready", summary="Database and Redis reachable; dataset version; age of the cached results")
    async def ready(self) -> Response[Readiness]:
        service = get_metrics_service()
        if get_settings().redis_url and service.cache.client is not None:
            (tag, database), (_, redis) = await asyncio.gather(
                _timed(dataset_tag, database_error_message), _timed(service.cache.client.ping, _redis_error)
            )
        else:
            tag, database = await _timed(dataset_tag, database_error_message)
            redis = Dependency(ok=True, configured=False)
        report = await service.last_refresh(str(tag)) if tag is not None else None
        refreshed_at = report.refreshed_at if report else None
        age = round((datetime.now(UTC) - refreshed_at).total_seconds(), 1) if refreshed_at else None
        stats = service.cache.stats
        status = "unavailable" if not database.ok else "ready" if redis.ok else "degraded"
        body = Readiness(
            status=status,
            database=database,
            redis=redis,
            dataset=DatasetState(version=tag_version(str(tag)) if tag else None, tag=str(tag) if tag else None),
            cache=CacheState(
                backend="redis" if service.cache.client is not None else "in-process",
                refreshed_at=refreshed_at,
                age_seconds=age,
                hits=stats.hits,
                misses=stats.misses,
                stores=stats.stores,
                errors=stats.errors,
                skipped=stats.skipped,
            ),
            process=ProcessState(
                frame_version=service.held_version, answers_computed=service.computed, answers_local=service.local_hits
            ),
        )
        return Response(body, status_code=200 if database.ok else 503, headers={"cache-control": "no-store"})
