"""The taskiq broker and scheduler: Redis streams in production, in-process when embedded.

Run the worker and the scheduler from the project root (see README, "Background tasks"):

    PYTHONPATH=. uv run taskiq worker app.worker:broker
    PYTHONPATH=. uv run taskiq scheduler app.worker:scheduler
"""

from __future__ import annotations

from taskiq import AsyncBroker, InMemoryBroker, TaskiqScheduler
from taskiq.schedule_sources import LabelScheduleSource
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from app.lib.settings import Settings, SettingsError, get_settings

QUEUE = "shop:tasks"
# A task left unacknowledged this long (its worker was killed) is handed to another worker;
# longer than the slowest refresh (about 25 s on ten times the reference data).
IDLE_TIMEOUT_MS = 60_000
RESULT_TTL_SECONDS = 3600


def make_broker(settings: Settings) -> AsyncBroker:
    if not settings.redis_url:
        return InMemoryBroker()
    result_backend = RedisAsyncResultBackend(
        redis_url=settings.redis_url, result_ex_time=RESULT_TTL_SECONDS, socket_connect_timeout=2, socket_timeout=5
    )
    return RedisStreamBroker(
        url=settings.redis_url,
        queue_name=QUEUE,
        consumer_group_name="shop-workers",
        idle_timeout=IDLE_TIMEOUT_MS,
        socket_connect_timeout=2,
        socket_timeout=10,  # above xread_block (2 s)
    ).with_result_backend(result_backend)


def refresh_schedule(settings: Settings) -> list[dict]:
    if settings.refresh_interval_seconds:
        return [{"interval": settings.refresh_interval_seconds}]
    return [{"cron": settings.refresh_cron}]


def _settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as error:
        raise SystemExit(f"error: {error}") from None


settings = _settings()
broker = make_broker(settings)
scheduler = TaskiqScheduler(broker, sources=[LabelScheduleSource(broker)])
