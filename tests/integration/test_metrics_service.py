"""The metrics service: answers as JSON, served from the cache, never stale, and Redis optional."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from pathlib import Path

import msgspec
import pytest

from app.ingest.service import dataset_tag, import_file
from app.lib.cache import BoundedMemoryStore, Cache, make_cache
from app.lib.settings import get_settings
from app.metrics.analytics import UnknownCountry
from app.metrics.service import Batched, MetricsService
from app.metrics.views import (
    COUNTRY,
    KPIS,
    PAGE,
    SERIES,
    TOP_COUNTRIES,
    CountryParams,
    KpisParams,
    PageParams,
    SeriesParams,
    TopCountriesParams,
)
from tests import small_data
from tests.helpers import invoke_cli

pytestmark = pytest.mark.usefixtures("empty_db")


async def load_small(tmp_path: Path, name: str = "first.csv", text: str = small_data.FIRST) -> None:
    path = tmp_path / name
    path.write_text(text)
    await import_file(path)


def memory_service() -> MetricsService:
    return MetricsService(get_settings(), make_cache(replace(get_settings(), redis_url="")))


def redis_service(url: str, cooldown: float = 0.5) -> MetricsService:
    service = MetricsService(get_settings(), make_cache(replace(get_settings(), redis_url=url)))
    service.cache.cooldown = cooldown
    return service


async def test_figures_of_a_small_file_worked_out_by_hand(tmp_path):
    await load_small(tmp_path)
    service = memory_service()
    assert msgspec.json.decode(await service.answer(KPIS, KpisParams())) == small_data.FIRST_KPIS
    series = msgspec.json.decode(await service.answer(SERIES, SeriesParams(freq="month")))
    assert series == {"currency": "GBP", "freq": "month", "points": small_data.FIRST_MONTHS}
    top = msgspec.json.decode(await service.answer(TOP_COUNTRIES, TopCountriesParams()))
    assert top["items"] == [
        {
            "rank": 1,
            "country": "Germany",
            "revenue": 17.5,
            "units_sold": 3,
            "orders": 1,
            "customers": 1,
            "revenue_share_pct": 67.74,
        },
        {
            "rank": 2,
            "country": "United Kingdom",
            "revenue": 8.33,
            "units_sold": 5,
            "orders": 2,
            "customers": 1,
            "revenue_share_pct": 32.26,
        },
    ]
    germany = msgspec.json.decode(await service.answer(COUNTRY, CountryParams(country_name="germany")))
    assert (germany["country"], germany["rank"]) == ("Germany", 1)
    # postage is revenue, not a product; "a1" and "A1" are one product
    assert germany["top_products"] == [{"stock_code": "A1", "description": "RED MUG", "revenue": 2.5, "units_sold": 2}]
    uk = msgspec.json.decode(await service.answer(COUNTRY, CountryParams(country_name="United Kingdom")))
    assert [p["stock_code"] for p in uk["top_products"]] == ["A1", "B2"]
    assert uk["kpis"]["cancelled_revenue"] == 1.25
    france = msgspec.json.decode(await service.answer(COUNTRY, CountryParams(country_name="FRANCE")))
    assert (france["rank"], france["kpis"]["revenue"], france["top_products"]) == (None, 0.0, [])
    page = msgspec.json.decode(await service.answer(PAGE, PageParams(q="mug", page=1, size=2)))
    assert (page["total"], page["pages"], [i["invoice_no"] for i in page["items"]]) == (2, 1, ["100001", "100002"])
    assert page["items"][1] == {
        "invoice_no": "100002",
        "stock_code": "a1",
        "description": "RED MUG",
        "quantity": 4,
        "invoice_date": "2011-01-10T09:30:00",
        "unit_price": 1.25,
        "customer_id": None,
        "country": "United Kingdom",
        "line_revenue": 5.0,
    }


async def test_a_second_call_is_served_from_the_cache(tmp_path):
    await load_small(tmp_path)
    service = memory_service()
    first = await service.answer(KPIS, KpisParams(country="Germany"))
    assert (service.computed, service.cache.stats.hits) == (1, 0)
    # the same question, spelled differently, is the same cache entry
    for spelling in ["germany", " GERMANY ", "Germany"]:
        assert await service.answer(KPIS, KpisParams(country=spelling)) == first
    # served by the process's own copy in front of the store: no store lookup at all
    assert (service.computed, service.local_hits, service.cache.stats.hits, service.loads) == (1, 3, 0, 1)


async def test_an_import_changes_the_figures_immediately(tmp_path):
    await load_small(tmp_path)
    service = memory_service()
    assert msgspec.json.decode(await service.answer(KPIS, KpisParams())) == small_data.FIRST_KPIS
    await load_small(tmp_path, "second.csv", small_data.SECOND)
    assert msgspec.json.decode(await service.answer(KPIS, KpisParams())) == small_data.SECOND_KPIS
    assert (service.computed, service.loads) == (2, 2)


async def test_figures_of_an_empty_database(tmp_path):
    service = memory_service()
    kpis = msgspec.json.decode(await service.answer(KPIS, KpisParams()))
    assert (kpis["revenue"], kpis["orders"], kpis["average_order_value"], kpis["first_sale"]) == (0, 0, None, None)
    assert msgspec.json.decode(await service.answer(PAGE, PageParams()))["items"] == []
    with pytest.raises(UnknownCountry):
        await service.answer(KPIS, KpisParams(country="Germany"))


async def test_errors_are_not_cached(tmp_path):
    await load_small(tmp_path)
    service = memory_service()
    for _ in range(2):
        with pytest.raises(UnknownCountry, match="Atlantis"):
            await service.answer(KPIS, KpisParams(country="Atlantis"))
    assert service.cache.stats.stores == 0


async def test_refresh_precomputes_the_default_views(tmp_path):
    await load_small(tmp_path)
    service = memory_service()
    report = await service.refresh()
    assert (report.views, report.sales_lines, report.cached) == (
        12 + 3 + 13 + 6,
        4,
        True,
    )  # 3 countries: DE, FR, UK; cohorts, rfm, 11 rfm lists; 5 product lists and the pairs
    assert (await service.last_refresh()).tag == await dataset_tag()
    for answer in [
        service.answer(KPIS, KpisParams()),
        service.answer(SERIES, SeriesParams(freq="day")),
        service.answer(SERIES, SeriesParams(freq="year")),
        service.answer(TOP_COUNTRIES, TopCountriesParams(by="customers")),
        service.answer(COUNTRY, CountryParams(country_name="france")),
        service.answer(PAGE, PageParams()),
    ]:
        await answer
    assert service.computed == 0
    again = await service.refresh()  # idempotent: the same keys again, the frame not re-read
    assert (again.views, again.tag, again.load_seconds, service.loads) == (report.views, report.tag, 0.0, 1)


async def test_concurrent_requests_share_one_version_read(tmp_path):
    await load_small(tmp_path)
    reads = 0

    async def counted() -> str:
        nonlocal reads
        reads += 1
        return await dataset_tag()

    batched = Batched(counted)
    tags = await asyncio.gather(*(batched() for _ in range(50)))
    assert len(set(tags)) == 1
    assert reads <= 2  # one read started before the others arrived, one after


# -- Redis ---------------------------------------------------------------------------------


async def test_redis_cache_survives_redis_going_away_and_coming_back(tmp_path, redis_server, caplog):
    await load_small(tmp_path)
    # a breaker window long enough for a busy machine; the dataset loaded before it starts
    first, second = redis_service(redis_server.url), redis_service(redis_server.url, cooldown=2)
    try:
        await second.dataset()
        body = await first.answer(KPIS, KpisParams())
        assert await first.answer(KPIS, KpisParams()) == body  # from its in-process copy
        assert (first.computed, first.local_hits) == (1, 1)
        assert await second.answer(KPIS, KpisParams()) == body  # another process: from Redis
        assert (second.computed, second.cache.stats.hits) == (0, 1)

        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="app.lib.cache"):
            germany = msgspec.json.decode(await second.answer(KPIS, KpisParams(country="germany")))
        assert germany["revenue"] == 17.5 and germany["orders"] == 1
        assert "Redis cache unavailable" in caplog.text
        assert second.cache.stats.errors >= 1
        # while the breaker is open, Redis is not even tried
        errors = second.cache.stats.errors
        uk = msgspec.json.decode(await second.answer(KPIS, KpisParams(country="united kingdom")))
        assert uk["revenue"] == 8.33
        assert second.cache.stats.errors == errors and second.cache.stats.skipped >= 1

        redis_server.start()  # empty again, same port
        await asyncio.sleep(second.cache.cooldown + 0.1)
        stores = second.cache.stats.stores
        await second.answer(KPIS, KpisParams(country="france"))
        assert second.cache.stats.stores == stores + 1  # caching resumed, without a restart
        hits = second.cache.stats.hits
        second._local.clear()  # forget the process's own copy: the answer must come from Redis
        await second.answer(KPIS, KpisParams(country="france"))
        assert second.cache.stats.hits == hits + 1
    finally:
        await first.close()
        await second.close()


async def test_a_hung_redis_costs_a_short_timeout_not_an_error(tmp_path, redis_server):
    await load_small(tmp_path)
    service = redis_service(redis_server.url, cooldown=30)
    try:
        await service.answer(KPIS, KpisParams())
        redis_server.pause()  # asked next: a question not in the process's own copy
        started = time.monotonic()
        assert msgspec.json.decode(await service.answer(KPIS, KpisParams(country="germany")))["revenue"] == 17.5
        assert time.monotonic() - started < 5  # not redis-py's default of 5 s per try, ten tries
        errors = service.cache.stats.errors
        assert errors >= 1
        await service.answer(KPIS, KpisParams(country="united kingdom"))  # breaker open: Redis not tried
        assert service.cache.stats.errors == errors and service.cache.stats.skipped >= 2
    finally:
        redis_server.resume()
        await service.close()


async def test_the_cache_interface_is_the_same_for_both_stores(redis_server):
    from litestar.stores.redis import RedisStore

    from app.lib.cache import redis_client

    client = redis_client(redis_server.url)
    for cache in [Cache(BoundedMemoryStore(), name="memory"), Cache(RedisStore(client, namespace="t"), name="redis")]:
        assert await cache.get("k") is None
        assert await cache.set("k", b"v", expires_in=60)
        assert await cache.get("k") == b"v"
        assert (cache.stats.hits, cache.stats.misses, cache.stats.stores) == (1, 1, 1)
    await client.aclose()


async def test_postgres_import_notifications_spare_the_tag_reads(tmp_path, engine_name):
    if engine_name != "postgres":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; the embedded mode reads the tag per request")
    await load_small(tmp_path)
    service = memory_service()
    await service.listen(get_settings().database_url)
    try:
        for _ in range(5):
            assert msgspec.json.decode(await service.answer(KPIS, KpisParams())) == small_data.FIRST_KPIS
        assert service.tag_reads == 1
        (tmp_path / "second.csv").write_text(small_data.SECOND)
        # another connection imports: the CLI, in a thread (its asyncio.run has its own loop), as another process would
        assert (await asyncio.to_thread(invoke_cli, "data", "import", str(tmp_path / "second.csv"))).returncode == 0
        for _ in range(100):  # the notification arrives within milliseconds of the commit
            if service._known_tag is None:
                break
            await asyncio.sleep(0.02)
        assert msgspec.json.decode(await service.answer(KPIS, KpisParams())) == small_data.SECOND_KPIS
        assert service.tag_reads == 2

        # the listening connection dies: every request reads the tag again, figures stay right
        from app.ingest.tables import Import

        await Import.raw(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND query LIKE 'LISTEN%'"
        ).run()
        await asyncio.sleep(0.3)
        reads = service.tag_reads
        assert msgspec.json.decode(await service.answer(KPIS, KpisParams())) == small_data.SECOND_KPIS
        assert msgspec.json.decode(await service.answer(KPIS, KpisParams())) == small_data.SECOND_KPIS
        assert service.tag_reads == reads + 2
    finally:
        await service.close()


async def test_sqlite_data_version_spares_the_tag_reads(tmp_path, engine_name):
    if engine_name != "sqlite":
        pytest.skip("PRAGMA data_version is SQLite's; PostgreSQL processes follow NOTIFY")
    await load_small(tmp_path)
    service = memory_service()
    try:
        for _ in range(5):
            assert msgspec.json.decode(await service.answer(KPIS, KpisParams())) == small_data.FIRST_KPIS
        assert service.tag_reads == 0  # no connection, no thread: the one kept connection answered
        (tmp_path / "second.csv").write_text(small_data.SECOND)
        # another connection commits an import: the very next request sees it
        assert (await asyncio.to_thread(invoke_cli, "data", "import", str(tmp_path / "second.csv"))).returncode == 0
        assert msgspec.json.decode(await service.answer(KPIS, KpisParams())) == small_data.SECOND_KPIS
        assert service.tag_reads == 0
    finally:
        await service.close()
