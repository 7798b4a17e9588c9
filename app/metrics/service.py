"""Metrics as JSON bytes: from the cache when the current dataset's answer is there, else computed.

One `MetricsService` per process holds the shapes of the current dataset version (read
again only when an import changes it; they grow with invoices, not lines) and the result
cache. Every answer is keyed by the dataset tag plus the normalised parameters, and the tag
is checked for every request (PostgreSQL: NOTIFY; SQLite: PRAGMA data_version; else a read
that concurrent requests share), so after an import no request gets figures of the old data.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

import msgspec

from app.ingest.service import SqliteTag, dataset_tag
from app.lib import memory
from app.lib.cache import Cache, close_cache, get_cache
from app.lib.lru import LRU
from app.lib.settings import Settings, get_settings
from app.metrics.analytics import Dataset
from app.metrics.loader import load_dataset
from app.metrics.views import VIEWS, Params, View

logger = logging.getLogger(__name__)
P = TypeVar("P", bound=Params)

LOCAL_ENTRIES = 256  # answers kept in the process in front of the shared cache
# answers computed at once per process: Polars already uses every core for one, and each
# holds its intermediates (at 50x, 8 whole-range misses at once took the process to 830 MB)
COMPUTE_SLOTS = max(2, os.cpu_count() or 2)


class RefreshReport(msgspec.Struct):
    version: int
    tag: str
    views: int
    sales_lines: int
    load_seconds: float  # reading and preparing the shapes (0 when they were already held)
    compute_seconds: float
    store_seconds: float
    seconds: float
    cached: bool  # False when the cache was unavailable
    refreshed_at: datetime


class Batched:
    """Calls `fetch` for many concurrent callers at once, each served by a call that started after it asked."""

    def __init__(self, fetch: Callable[[], Awaitable[Any]]) -> None:
        self._fetch = fetch
        self._next: asyncio.Future | None = None
        self._runner: asyncio.Task | None = None

    async def __call__(self) -> Any:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        waiter = self._next
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await asyncio.shield(waiter)

    async def _run(self) -> None:
        while self._next is not None:
            waiter, self._next = self._next, None
            try:
                waiter.set_result(await self._fetch())
            except Exception as error:  # noqa: BLE001 - handed to every waiter
                waiter.set_exception(error)


@lru_cache(maxsize=4096)  # warm requests ask for the same few views (Params are frozen, so hashable)
def cache_key(tag: str, view: str, params: Params) -> str:
    """`metrics:<dataset tag>:<view>:<digest of the sorted, normalised parameters>`."""
    return _cache_key(tag, view, tuple(sorted(params.key().items())))


def _cache_key(tag: str, view: str, params: tuple[tuple[str, object], ...]) -> str:
    canonical = "&".join(f"{name}={'' if value is None else value}" for name, value in params)
    return f"metrics:{tag}:{view}:{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"


class MetricsService:
    def __init__(
        self,
        settings: Settings,
        cache: Cache,
        load: Callable[[Settings], Awaitable[Dataset]] = load_dataset,
        tag: Callable[[], Awaitable[str]] = dataset_tag,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self._load = load
        self._tag = Batched(tag)
        # embedded: the tag from one kept connection (PostgreSQL processes follow NOTIFY instead)
        self._sqlite = SqliteTag(settings.sqlite_path) if tag is dataset_tag and not settings.is_postgres else None
        self._dataset: Dataset | None = None
        self._reading: asyncio.Future[Dataset] | None = None
        self._known_tag: str | None = None
        self._listening = False
        self._listener: Any = None
        self._lost: Any = None
        self._relisten: asyncio.Task | None = None
        self.tag_reads = 0
        # answers kept in the process in front of the shared cache: no round trip to Redis, and
        # embedded, no trip through the store's lock and expiry (the bytes are shared, not copied)
        self._local: LRU[str, bytes] = LRU(LOCAL_ENTRIES)
        self.local_hits = 0
        self.loads = 0  # shapes read from the database
        self.computed = 0  # answers computed (not served from the cache)
        self._computing = asyncio.Semaphore(COMPUTE_SLOTS)

    # -- the shapes --------------------------------------------------------------------

    async def tag(self) -> str:
        """The current dataset tag: while this process listens to PostgreSQL's import
        notifications, the last one read (re-read after each import); embedded, through the
        kept SQLite connection (re-read when another connection committed); else read."""
        if self._listening and self._known_tag is not None:
            return self._known_tag
        if self._sqlite is not None and (known := self._sqlite.read()) is not None:
            return known
        self.tag_reads += 1
        tag = await self._tag()
        if self._listening:
            self._known_tag = tag
        return tag

    def forget_tag(self) -> None:
        """An import committed: the next request reads the tag again."""
        self._known_tag = None
        if self._sqlite is not None:
            self._sqlite.forget()

    async def listen(self, dsn: str) -> None:
        """Follow imports through PostgreSQL LISTEN/NOTIFY, so requests need not read the tag.

        If the listening connection is lost, every request reads the tag again until it is
        back (tried every few seconds); a notification is never needed for correctness.
        """
        import asyncpg

        from app.auth.users import USERS_CHANNEL
        from app.ingest.service import DATASET_CHANNEL

        def notified(*_: object) -> None:
            self.forget_tag()

        def user_changed(_connection: object, _pid: object, _channel: object, payload: str) -> None:
            if payload.isdigit():
                self.forget_user(int(payload))

        def lost(*_: object) -> None:
            self._listening = False
            self._known_tag = None
            logger.warning("lost the PostgreSQL connection that follows imports; reading the tag per request")
            self._relisten = asyncio.get_running_loop().create_task(self._listen_again(dsn))

        try:
            connection = await asyncpg.connect(dsn, timeout=5)
            await connection.add_listener(DATASET_CHANNEL, notified)
            await connection.add_listener(USERS_CHANNEL, user_changed)
        except (OSError, asyncpg.PostgresError, TimeoutError) as error:
            logger.warning("cannot follow imports (%s); reading the tag per request", error)
            self._relisten = asyncio.get_running_loop().create_task(self._listen_again(dsn))
            return
        connection.add_termination_listener(lost)
        self._listener, self._lost = connection, lost
        self._known_tag = None
        self._listening = True

    def forget_user(self, user_id: int) -> None:
        """An admin deactivated, reset or demoted this user in some web process (app.auth.users
        notifies on the same connection): this process checks their tokens again at once."""
        from app.auth.deps import get_accounts

        get_accounts().forget_user(user_id)

    async def _listen_again(self, dsn: str) -> None:
        await asyncio.sleep(5)
        await self.listen(dsn)

    @property
    def held_version(self) -> int | None:
        """The dataset version of the shapes this process holds, if any."""
        return self._dataset.version if self._dataset is not None else None

    async def dataset(self, tag: str | None = None) -> Dataset:
        """The shapes of the dataset `tag` (default: the current one), read once per version.

        Concurrent callers share one read, which goes on even if they give up (a request
        past its deadline), so a slow read is never started twice.
        """
        tag = tag or await self.tag()
        held = self._dataset
        if held is not None and held.tag == tag:
            return held
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._read())
        return await asyncio.shield(self._reading)

    async def _read(self) -> Dataset:
        self._dataset = None  # let the old shapes go before the new ones are read
        started = time.perf_counter()
        dataset = await self._load(self.settings)
        self.loads += 1
        logger.info(
            "dataset version %d loaded: %d sales lines in %.2f s",
            dataset.version,
            dataset.sales_lines,
            time.perf_counter() - started,
        )
        self._dataset = dataset
        return dataset

    # -- answers ---------------------------------------------------------------------------

    async def answer(self, view: View[P, Any], params: P) -> bytes:
        """The JSON bytes of `view` for `params`: this process's copy, the shared cache, or computed."""
        tag = await self.tag()
        key = cache_key(tag, view.name, params)
        # a small in-process copy in front of Redis: keys carry the dataset tag, so it is never stale
        body = self._local.get(key)
        if body is not None:
            self.local_hits += 1
            return body
        body = await self.cache.get(key)
        if body is not None:
            self._remember(key, body)
            return body
        dataset = await self.dataset(tag)
        async with self._computing:
            if view.fetch is not None:
                body = msgspec.json.encode(await view.fetch(dataset, params, self.settings.currency))
            else:
                compute, currency = view.compute, self.settings.currency
                assert compute is not None  # a view has one of the two (View.__post_init__)
                body = await asyncio.to_thread(lambda: _computed(compute, dataset, params, currency))
        self.computed += 1
        # stored under the tag of the shapes it came from, which may be newer than `tag`
        key = cache_key(dataset.tag, view.name, params)
        self._remember(key, body)
        await self.cache.set(key, body, self.settings.cache_ttl_seconds)
        return body

    def _remember(self, key: str, body: bytes) -> None:
        self._local.put(key, body)

    # -- refresh ---------------------------------------------------------------------------

    async def refresh(self) -> RefreshReport:
        """Precompute the default views of the current dataset into the cache (idempotent)."""
        started = time.perf_counter()
        tag = await self.tag()
        loads = self.loads
        dataset = await self.dataset(tag)
        loaded = time.perf_counter()
        entries = await asyncio.to_thread(self._default_views, dataset)
        for view in VIEWS:
            entries += [
                (cache_key(dataset.tag, view.name, params), msgspec.json.encode(result))
                for params, result in await view.prefetch(dataset, self.settings.currency)
            ]
        computed = time.perf_counter()
        cached = True
        for key, body in entries:
            cached = await self.cache.set(key, body, self.settings.cache_ttl_seconds) and cached
        report = RefreshReport(
            version=dataset.version,
            tag=dataset.tag,
            views=len(entries),
            sales_lines=dataset.sales_lines,
            load_seconds=round(loaded - started, 3) if self.loads > loads else 0.0,
            compute_seconds=round(computed - loaded, 3),
            store_seconds=round(time.perf_counter() - computed, 3),
            seconds=round(time.perf_counter() - started, 3),
            cached=cached,
            refreshed_at=datetime.now(UTC),
        )
        await self.cache.set(refresh_marker(dataset.tag), msgspec.json.encode(report), self.settings.cache_ttl_seconds)
        return report

    def _default_views(self, dataset: Dataset) -> list[tuple[str, bytes]]:
        """What a refresh precomputes (each view's `defaults`), under the keys the requests for them use."""
        encode = msgspec.json.encode
        return [
            (cache_key(dataset.tag, view.name, params), encode(result))
            for view in VIEWS
            for params, result in view.precompute(dataset, self.settings.currency)
        ]

    async def last_refresh(self, tag: str | None = None) -> RefreshReport | None:
        """The report of the last refresh of the dataset `tag` (default: the current one), if cached."""
        body = await self.cache.get(refresh_marker(tag or await self.tag()))
        return msgspec.json.decode(body, type=RefreshReport) if body else None

    async def close(self) -> None:
        await self.stop_listening()
        if self._sqlite is not None:
            self._sqlite.close()
        await self.cache.close()

    async def stop_listening(self) -> None:
        self._listening = False
        if self._relisten is not None:
            self._relisten.cancel()
        if self._listener is not None:
            listener, self._listener = self._listener, None
            listener.remove_termination_listener(self._lost)  # a close on purpose is not a loss
            await listener.close(timeout=2)


def _computed(compute: Callable[[Dataset, Any, str], Any], dataset: Dataset, params: Any, currency: str) -> bytes:
    """A view's answer as JSON, its intermediates' memory handed back (app.lib.memory)."""
    try:
        return msgspec.json.encode(compute(dataset, params, currency))
    finally:
        memory.release()


def refresh_marker(tag: str) -> str:
    return f"metrics:{tag}:refreshed"


_service: MetricsService | None = None


def get_metrics_service() -> MetricsService:
    """The process's service (one copy of the shapes, one cache per process)."""
    global _service
    if _service is None:
        _service = MetricsService(get_settings(), get_cache())
    return _service


async def reset_metrics_service() -> None:
    """Close and forget the process's service (app shutdown, tests)."""
    global _service
    if _service is not None:
        await _service.stop_listening()
    _service = None
    await close_cache()
