"""The taskiq broker and scheduler: Redis streams in production, in-process when embedded.

Run the worker and the scheduler from the project root (see README, "Background tasks"):

    PYTHONPATH=. uv run taskiq worker app.worker:broker
    PYTHONPATH=. uv run taskiq scheduler app.worker:scheduler
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AckableMessage, AsyncBroker, InMemoryBroker, TaskiqScheduler
from taskiq.schedule_sources import LabelScheduleSource
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from app.lib.settings import Settings, SettingsError, get_settings

QUEUE = "shop:tasks"
RESULT_TTL_SECONDS = 3600
RETRY_SECONDS = 2  # a worker's pause between attempts while Redis is down

logger = logging.getLogger(__name__)


class StreamBroker(RedisStreamBroker):
    """taskiq-redis's stream broker, made to recover alone:

    - a task left unacknowledged by a killed worker is taken over once it has been idle for
      `idle_timeout`, whether or not new tasks arrive (upstream looks only after a new message
      arrived, so on a quiet queue a lost refresh waited for the next scheduled one);
    - a Redis outage makes the worker wait and retry instead of dying, and a Redis that came
      back empty (its stream and consumer group lost) gets them declared again.
    """

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        async with Redis(connection_pool=self.connection_pool) as redis:
            while True:
                try:
                    # redis-py types these answers loosely; their shapes are XREADGROUP's and XAUTOCLAIM's
                    fetched: Any = await redis.xreadgroup(
                        self.consumer_group_name,
                        self.consumer_name,
                        {self.queue_name: ">"},
                        block=self.block,
                        noack=False,
                        count=self.count,
                    )
                    reclaimed: Any = await redis.xautoclaim(
                        self.queue_name,
                        self.consumer_group_name,
                        self.consumer_name,
                        min_idle_time=self.idle_timeout,
                        count=self.unacknowledged_batch_size,
                    )
                except ResponseError as error:
                    if "NOGROUP" not in str(error):
                        raise
                    logger.warning("the task stream is gone (Redis restarted empty?): declaring it again")
                    await self._declare_consumer_group()
                    continue
                except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                    logger.warning("Redis unavailable (%s); the worker retries in %d s", error, RETRY_SECONDS)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                for stream, messages in fetched or []:
                    for message_id, message in messages:
                        yield AckableMessage(data=message[b"data"], ack=self._ack_generator(message_id, stream))
                for message_id, message in reclaimed[1]:  # [next start id, messages, ...]
                    if message:  # None when the entry was deleted from the stream meanwhile
                        yield AckableMessage(
                            data=message[b"data"], ack=self._ack_generator(message_id, self.queue_name)
                        )


def make_broker(settings: Settings) -> AsyncBroker:
    if not settings.redis_url:
        return InMemoryBroker()
    result_backend: RedisAsyncResultBackend[Any] = RedisAsyncResultBackend(
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
