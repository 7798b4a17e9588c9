"""The taskiq broker and scheduler: Redis streams in production, in-process when embedded.

Run the worker and the scheduler from the project root (see README, "Background tasks"):

    PYTHONPATH=. uv run taskiq worker app.worker:broker
    PYTHONPATH=. uv run taskiq scheduler app.worker:scheduler
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from redis.asyncio import Redis
from taskiq import AckableMessage, AsyncBroker, InMemoryBroker, TaskiqScheduler
from taskiq.schedule_sources import LabelScheduleSource
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from app.lib.settings import Settings, SettingsError, get_settings

QUEUE = "shop:tasks"
RESULT_TTL_SECONDS = 3600


class StreamBroker(RedisStreamBroker):
    """taskiq-redis's stream broker, but a task left unacknowledged by a killed worker is taken
    over once it has been idle for `idle_timeout`, whether or not new tasks arrive.

    (Upstream looks for such tasks only after a new message arrived, so on a quiet queue a
    refresh lost with its worker waited for the next scheduled one.)
    """

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        async with Redis(connection_pool=self.connection_pool) as redis:
            while True:
                fetched = await redis.xreadgroup(
                    self.consumer_group_name,
                    self.consumer_name,
                    {self.queue_name: ">"},
                    block=self.block,
                    noack=False,
                    count=self.count,
                )
                for stream, messages in fetched or []:
                    for message_id, message in messages:
                        yield AckableMessage(data=message[b"data"], ack=self._ack_generator(message_id, stream))
                reclaimed = await redis.xautoclaim(
                    self.queue_name,
                    self.consumer_group_name,
                    self.consumer_name,
                    min_idle_time=self.idle_timeout,
                    count=self.unacknowledged_batch_size,
                )
                for message_id, message in reclaimed[1]:  # [next start id, messages, ...]
                    if message:  # None when the entry was deleted from the stream meanwhile
                        yield AckableMessage(
                            data=message[b"data"], ack=self._ack_generator(message_id, self.queue_name)
                        )


def make_broker(settings: Settings) -> AsyncBroker:
    if not settings.redis_url:
        return InMemoryBroker()
    result_backend = RedisAsyncResultBackend(
        redis_url=settings.redis_url, result_ex_time=RESULT_TTL_SECONDS, socket_connect_timeout=2, socket_timeout=5
    )
    return StreamBroker(
        url=settings.redis_url,
        queue_name=QUEUE,
        consumer_group_name="shop-workers",
        # A task left unacknowledged this long (its worker was killed) goes to another worker:
        # longer than the slowest refresh (about 25 s on ten times the reference data).
        idle_timeout=settings.task_redeliver_seconds * 1000,
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
