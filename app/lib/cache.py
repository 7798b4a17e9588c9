"""The shared key-value cache: Redis in production, a bounded in-process store when embedded.

`Cache` wraps either Litestar store behind a circuit breaker: when Redis fails or is slow,
callers get a miss (and their `set` is dropped) for a short cooldown instead of an error,
so a dead Redis makes requests slower, never broken, and costs nothing per request.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from litestar.stores.base import Store
from litestar.stores.redis import RedisStore
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from app.lib.lru import LRU
from app.lib.settings import Settings

logger = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 0.25  # per command; redis-py's default would wait 5 s, ten times
BREAKER_COOLDOWN_SECONDS = 5.0
MEMORY_MAX_ENTRIES = 4096


def _seconds(value: int | timedelta | None) -> float | None:
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class BoundedMemoryStore(Store):
    """An in-process store with expiry that forgets the least recently used entries past `max_entries`."""

    def __init__(self, max_entries: int = MEMORY_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._data: LRU[str, tuple[bytes, float | None]] = LRU(max_entries)

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        ttl = _seconds(expires_in)
        data = value.encode() if isinstance(value, str) else value
        self._data.put(key, (data, time.monotonic() + ttl if ttl else None))

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at is not None and expires_at <= time.monotonic():
            self._data.pop(key)
            return None
        if renew_for and expires_at is not None:
            self._data.put(key, (value, time.monotonic() + (_seconds(renew_for) or 0)))
        return value

    async def delete(self, key: str) -> None:
        self._data.pop(key)

    async def delete_all(self) -> None:
        self._data.clear()

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        entry = self._data.get(key)
        if entry is None or entry[1] is None:
            return None
        return max(int(entry[1] - time.monotonic()), 0)


def redis_client(url: str) -> Redis:
    """A client that gives up quickly: short timeouts, one retry."""
    return Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), retries=1),
        health_check_interval=30,
    )


class Failed(enum.Enum):
    FAILED = "failed"


FAILED = Failed.FAILED  # what Cache.call answers instead of raising
T = TypeVar("T")


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    stores: int = 0
    errors: int = 0  # failed calls to the backing store
    skipped: int = 0  # calls not made because the breaker was open


class Cache:
    """get/set of bytes on a Litestar store; failures open a breaker instead of raising."""

    def __init__(
        self, store: Store, *, name: str, cooldown: float = BREAKER_COOLDOWN_SECONDS, client: Redis | None = None
    ) -> None:
        self.store = store
        self.client = client
        self.name = name
        self.cooldown = cooldown
        self.stats = CacheStats()
        self._open_until = 0.0

    @property
    def available(self) -> bool:
        """False while the breaker is open (the store failed less than `cooldown` seconds ago)."""
        return time.monotonic() >= self._open_until

    def _failed(self, error: BaseException) -> None:
        self.stats.errors += 1
        if self.available:
            logger.warning(
                "%s unavailable (%s: %s); computing without it for %.0f s",
                self.name,
                type(error).__name__,
                error,
                self.cooldown,
            )
        self._open_until = time.monotonic() + self.cooldown

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T | Failed:
        """One call to the backing store under the breaker: FAILED when the breaker is open or
        the call fails or hangs (which opens it), never an exception."""
        if not self.available:
            self.stats.skipped += 1
            return FAILED
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS * 4):
                return await operation()
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(error)
            return FAILED

    async def get(self, key: str) -> bytes | None:
        value = await self.call(lambda: self.store.get(key))
        if value is FAILED:
            return None
        if value is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return value

    async def set(self, key: str, value: bytes, expires_in: int | None = None) -> bool:
        if await self.call(lambda: self.store.set(key, value, expires_in=expires_in)) is FAILED:
            return False
        self.stats.stores += 1
        return True

    async def pop(self, key: str) -> bytes | None:
        """Get and delete: a value meant to be read once."""
        value = await self.get(key)
        if value is not None:
            await self.call(lambda: self.store.delete(key))
        return value

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def make_cache(settings: Settings, namespace: str = "shop") -> Cache:
    """Redis when REDIS_URL is set, else the bounded in-process store."""
    if settings.redis_url:
        client = redis_client(settings.redis_url)
        return Cache(RedisStore(client, namespace=namespace), name="Redis cache", client=client)
    return Cache(BoundedMemoryStore(), name="in-process cache")


_shared: Cache | None = None


def get_cache() -> Cache:
    """The process's cache, shared by the metrics and the token denylist."""
    global _shared
    if _shared is None:
        from app.lib.settings import get_settings

        _shared = make_cache(get_settings())
    return _shared


async def close_cache() -> None:
    global _shared
    if _shared is not None:
        await _shared.close()
        _shared = None
