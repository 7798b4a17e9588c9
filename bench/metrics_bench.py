"""Metrics benchmark: refresh, cache misses and hits, deep pages, memory and growth.

    uv run python bench/metrics_bench.py [--rounds 5] [--growth 1,5,10]

Loads the full Online Retail file into a fresh PostgreSQL database, then measures,
each against a baseline of the same run:

- refresh: frame load + every precomputed view (stored in Redis), in a fresh process,
  against the bare ADBC load of the same columns plus one Polars group-by over them;
  rounds alternate, medians compared;
- a filtered query that misses the cache (a different filter every time, full data),
  and a cache hit (in-process store), through the service as the web layer calls it;
- transactions page 10,000 (size 50) against page 1;
- RSS of a process holding the full frame, after it settles;
- growth: the data replicated N times (invoice numbers and dates shifted), refresh
  time and RSS at each size, and the ratio to 1x.

Needs PostgreSQL at BENCH_PG (default postgresql://postgres@127.0.0.1:5432, it
creates and drops its own database) and Redis at BENCH_REDIS (default
redis://127.0.0.1:6379/0; keys under the namespace `shop-bench`, deleted after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
NAMESPACE = "shop-bench"

TARGETS = {
    "refresh_ratio": 2.0,
    "miss_ms": 50.0,
    "hit_ms": 2.0,
    "page_ratio": 1.5,
    "rss_mb": 400.0,
    "growth_10x": 12.0,
}


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- child processes (fresh interpreter each: clean memory, no warm caches) -----------------


def child_baseline() -> dict:
    import polars as pl

    from app.lib.settings import get_settings
    from app.metrics.loader import QUERY, adbc_uri

    started = time.perf_counter()
    frame = pl.read_database_uri(QUERY, adbc_uri(get_settings().database_url), engine="adbc")
    frame.group_by("country").agg(
        pl.col("quantity").sum(),
        (pl.col("quantity") * pl.col("unit_price")).sum().alias("revenue"),
        pl.col("invoice_no").n_unique(),
    )
    return {"seconds": time.perf_counter() - started, "rows": frame.height}


def child_refresh() -> dict:
    from app.lib.cache import make_cache
    from app.lib.settings import get_settings
    from app.metrics.service import MetricsService

    async def main() -> dict:
        from app.lib.db import engine

        await engine().start_connection_pool(min_size=1, max_size=4)
        service = MetricsService(get_settings(), make_cache(get_settings(), namespace=NAMESPACE))
        started = time.perf_counter()
        report = await service.refresh()
        seconds = time.perf_counter() - started
        peak = peak_mb()
        await asyncio.sleep(1.5)
        await service.kpis(_filters(0))  # some activity, so the allocator hands freed pages back
        settled = rss_mb()
        await service.close()
        await engine().close_connection_pool()
        return {
            "seconds": seconds,
            "load": report.load_seconds,
            "compute": report.compute_seconds,
            "store": report.store_seconds,
            "views": report.views,
            "rows": report.sales_lines,
            "cached": report.cached,
            "peak_mb": peak,
            "rss_mb": settled,
        }

    assert get_settings().redis_url
    return asyncio.run(main())


def _filters(i: int):
    from app.metrics.schemas import Filters

    rng = random.Random(i)
    start = date(2010, 12, 1) + timedelta(days=rng.randrange(0, 300))
    end = start + timedelta(days=rng.randrange(0, 90))
    country = rng.choice([None, None, "United Kingdom", "germany", "France", "EIRE", "Spain", "netherlands"])
    return Filters(start=start, end=end, country=country)


def child_queries(count: int) -> dict:
    from dataclasses import replace

    from app.lib.cache import make_cache
    from app.lib.settings import get_settings
    from app.metrics import analytics
    from app.metrics.schemas import Filters
    from app.metrics.service import MetricsService

    async def main() -> dict:
        from app.lib.db import engine

        await engine().start_connection_pool(min_size=1, max_size=4)
        settings = replace(get_settings(), redis_url="")  # the in-process store
        service = MetricsService(settings, make_cache(settings))
        dataset = await service.dataset()

        async def timed(call) -> float:
            started = time.perf_counter()
            await call
            return (time.perf_counter() - started) * 1000

        misses: dict[str, list[float]] = {"kpis": [], "series": [], "top-countries": [], "country": [], "page": []}
        for i in range(count):
            f = _filters(i)
            freq = ("day", "week", "month", "year")[i % 4]
            by = analytics.RANK_BY[i % 4]
            misses["kpis"].append(await timed(service.kpis(f)))
            misses["series"].append(await timed(service.series(f, freq)))
            misses["top-countries"].append(await timed(service.top_countries(f, by)))
            misses["country"].append(await timed(service.country(f.country or "United Kingdom", f)))
            misses["page"].append(await timed(service.page(f, None if i % 2 else "bag", 1 + i % 7)))
        # the widest filter: the biggest country over the whole range (a different end date each time)
        widest: dict[str, list[float]] = {"kpis": [], "series": [], "top-countries": [], "country": [], "page": []}
        for i in range(5):
            f = Filters(start=date(2010, 12, 1), end=date(2011, 12, 9) - timedelta(days=i), country="United Kingdom")
            widest["kpis"].append(await timed(service.kpis(f)))
            widest["series"].append(await timed(service.series(f, "day")))
            widest["top-countries"].append(await timed(service.top_countries(f)))
            widest["country"].append(await timed(service.country("United Kingdom", f)))
            widest["page"].append(await timed(service.page(f, "bag", 100)))
        computed = service.computed
        hits = [await timed(service.kpis(_filters(i % count))) for i in range(count * 5)]
        hit_stats = service.cache.stats.hits
        assert service.computed == computed, "the hits were not served from the cache"

        def page_ms(page: int, filters: Filters, q: str | None) -> float:
            samples = []
            for _ in range(101):
                started = time.perf_counter()
                analytics.page(dataset, filters, q, page, 50)
                samples.append((time.perf_counter() - started) * 1000)
            return statistics.median(samples)

        pages = {}
        for label, filters, q in [
            ("all", Filters(), None),
            ("United Kingdom", Filters(country="United Kingdom"), None),
        ]:
            pages[label] = {"page_1": page_ms(1, filters, q), "page_10000": page_ms(10_000, filters, q)}
        await asyncio.sleep(1.5)
        await service.kpis(Filters())
        result = {
            "miss_ms": {view: statistics.median(values) for view, values in misses.items()},
            "widest_ms": {view: statistics.median(values) for view, values in widest.items()},
            "miss_all_ms": statistics.median([v for values in misses.values() for v in values]),
            "miss_p90_ms": statistics.quantiles([v for values in misses.values() for v in values], n=10)[-1],
            "hit_ms": statistics.median(hits),
            "hits": hit_stats,
            "pages": pages,
            "rss_mb": rss_mb(),
            "peak_mb": peak_mb(),
        }
        await service.close()
        await engine().close_connection_pool()
        return result

    return asyncio.run(main())


# -- orchestration ------------------------------------------------------------------------


def run_child(kind: str, env: dict[str, str], *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def psql(database: str, sql: str) -> None:
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", f"{PG}/{database}", "-c", sql], check=True)


def replicate(database: str, times: int) -> None:
    """Copies 2..times of the original rows: invoice numbers + k million, dates + k x 53 weeks."""
    psql(database, "DELETE FROM transactions WHERE import_id <> (SELECT min(import_id) FROM transactions)")
    for k in range(1, times):
        psql(
            database,
            f"""
            INSERT INTO transactions (id, invoice_no, stock_code, description, quantity, invoice_date,
                                      unit_price, customer_id, country, import_id)
            SELECT id + {k} * 10000000,
                   CASE WHEN invoice_no ~ '^[A-Z]'
                        THEN left(invoice_no, 1) || (substr(invoice_no, 2)::int + {k} * 1000000)::text
                        ELSE (invoice_no::int + {k} * 1000000)::text END,
                   stock_code, description, quantity, invoice_date + interval '{k * 371} days',
                   unit_price, customer_id, country, import_id + {k}
            FROM transactions WHERE import_id = (SELECT min(import_id) FROM transactions)
            """,
        )
    # a new dataset version, so nothing cached for the previous size is served
    psql(database, "UPDATE imports SET dataset_version = dataset_version + 1000, started_at = now()")
    psql(database, "VACUUM ANALYZE transactions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=40, help="filtered queries per view (each a cache miss)")
    parser.add_argument("--growth", default="1,5,10", help="replication factors, comma-separated")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("child_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        kinds = {"baseline": child_baseline, "refresh": child_refresh}
        if args.child == "queries":
            print(json.dumps(child_queries(int(args.child_args[0]))))
        else:
            print(json.dumps(kinds[args.child]()))
        return
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found: the benchmark reads the real data from ../shared/data")

    database = f"metrics_bench_{os.getpid()}"
    subprocess.run(["psql", f"{PG}/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{database}",
        "SECRET_KEY": "bench-" + "x" * 40,
        "REDIS_URL": REDIS,
        "LOG_LEVEL": "WARNING",
    }
    try:
        subprocess.run(
            [sys.executable, "-m", "piccolo.main", "migrations", "forwards", "all"],
            cwd=ROOT,
            env={**env, "PYTHONPATH": str(ROOT)},
            check=True,
            capture_output=True,
        )
        litestar = Path(sys.executable).with_name("litestar")
        subprocess.run([str(litestar), "data", "import", str(DATA)], cwd=ROOT, env={**env, "REDIS_URL": ""}, check=True)
        report(env, database, args)
    finally:
        subprocess.run(["psql", f"{PG}/postgres", "-qc", f"DROP DATABASE IF EXISTS {database}"], check=False)
        import redis

        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(f"{NAMESPACE}*"))
        if keys:
            client.delete(*keys)


def report(env: dict[str, str], database: str, args: argparse.Namespace) -> None:
    ok = True

    def line(label: str, value: str, target: str = "", passed: bool | None = None) -> None:
        nonlocal ok
        mark = "" if passed is None else ("  ok" if passed else "  MISSED")
        ok = ok and passed is not False
        print(f"  {label:<52} {value:>14}  {target:<10}{mark}")

    print(f"\nrefresh from PostgreSQL, full data, {args.rounds} rounds alternating (fresh process each):")
    base, refresh = [], []
    for _ in range(args.rounds):
        base.append(run_child("baseline", env))
        refresh.append(run_child("refresh", env))
    base_s = statistics.median(r["seconds"] for r in base)
    refresh_s = statistics.median(r["seconds"] for r in refresh)
    line("bare ADBC load + one group-by (median)", f"{base_s:.2f} s")
    last = refresh[-1]
    line(
        f"refresh: load + {last['views']} views + store (median)",
        f"{refresh_s:.2f} s",
    )
    line(
        "  of which load / compute / store (medians)",
        "/".join(f"{statistics.median(r[k] for r in refresh):.2f}" for k in ("load", "compute", "store")) + " s",
    )
    ratio = refresh_s / base_s
    line(
        "ratio refresh / baseline",
        f"{ratio:.2f}x",
        f"<= {TARGETS['refresh_ratio']}x",
        ratio <= TARGETS["refresh_ratio"],
    )
    rss = statistics.median(r["rss_mb"] for r in refresh)
    line(
        "RSS holding the full frame, settled (median)",
        f"{rss:.0f} MB",
        f"< {TARGETS['rss_mb']:.0f} MB",
        rss < TARGETS["rss_mb"],
    )
    line("peak RSS during the refresh (median)", f"{statistics.median(r['peak_mb'] for r in refresh):.0f} MB")

    print(f"\nqueries through the service, full data ({args.queries} different filters per view):")
    q = run_child("queries", {**env, "REDIS_URL": ""}, str(args.queries))
    for view, ms in q["miss_ms"].items():
        line(f"cache miss, {view} (median)", f"{ms:.1f} ms")
    line(
        "cache miss, all views (median)",
        f"{q['miss_all_ms']:.1f} ms",
        f"<= {TARGETS['miss_ms']:.0f} ms",
        q["miss_all_ms"] <= TARGETS["miss_ms"],
    )
    line("cache miss, all views (90th percentile)", f"{q['miss_p90_ms']:.1f} ms")
    for view, ms in q["widest_ms"].items():
        line(f"cache miss, {view}, United Kingdom, whole range", f"{ms:.1f} ms")
    line(
        f"cache hit, in-process ({q['hits']} hits, median)",
        f"{q['hit_ms']:.2f} ms",
        f"<= {TARGETS['hit_ms']:.0f} ms",
        q["hit_ms"] <= TARGETS["hit_ms"],
    )
    for label, pages in q["pages"].items():
        page_ratio = pages["page_10000"] / pages["page_1"]
        line(f"page 1 / page 10,000, size 50, {label}", f"{pages['page_1']:.2f}/{pages['page_10000']:.2f} ms")
        line(
            f"ratio page 10,000 / page 1, {label}",
            f"{page_ratio:.2f}x",
            f"<= {TARGETS['page_ratio']}x",
            page_ratio <= TARGETS["page_ratio"],
        )
    line(
        "RSS of that process, settled",
        f"{q['rss_mb']:.0f} MB",
        f"< {TARGETS['rss_mb']:.0f} MB",
        q["rss_mb"] < TARGETS["rss_mb"],
    )

    factors = [int(f) for f in args.growth.split(",") if f.strip()]
    if factors:
        print("\ngrowth: the data replicated N times (refresh in a fresh process, median of 3):")
        times: dict[int, float] = {}
        for factor in factors:
            replicate(database, factor)
            runs = [run_child("refresh", env) for _ in range(3)]
            times[factor] = statistics.median(r["seconds"] for r in runs)
            rows = runs[0]["rows"]
            line(
                f"{factor:>2}x: {rows:,} sales lines",
                f"{times[factor]:.2f} s",
                f"RSS {statistics.median(r['rss_mb'] for r in runs):.0f} MB, "
                f"peak {statistics.median(r['peak_mb'] for r in runs):.0f}",
            )
        if 1 in times:
            for factor in factors[1:]:
                growth = times[factor] / times[1]
                target = TARGETS["growth_10x"] if factor == 10 else None
                line(
                    f"ratio {factor}x / 1x",
                    f"{growth:.2f}x",
                    f"<= {target}x" if target else "",
                    growth <= target if target else None,
                )
    print("\nall targets met" if ok else "\nsome targets MISSED")


if __name__ == "__main__":
    main()
