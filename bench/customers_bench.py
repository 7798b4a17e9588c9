"""The customer views (ANALYTICS.md F2-F4, issue 15) on the full data, on both engines.

    uv run python bench/customers_bench.py [--rounds 5]

For each engine (the embedded SQLite file; PostgreSQL in a fresh database) the reference data
is imported with the CLI, then, each in a fresh Python process on that database:

- **cold**: the dataset loaded afresh for every measurement (no answer cached, no per-version
  aggregate built but what the load builds), then one view computed for the whole data. The
  KPIs, computed the same way in the same rounds, are the baseline: target <= 2x.
- **filtered misses**: 24 filter sets (months, quarters, single days, countries, any case),
  each view computed once per set on a loaded dataset; a country's first set pays its own
  customer aggregate. Target: median < 100 ms. The same through HTTP: one uvicorn web
  process (request log on), each address asked once (a miss), client-side time.
- **refresh**: the refresh task's work (load, then every view's precomputed answers) in a
  fresh process, with the views as they were before issue 15 (no customer view, no customer
  aggregate) and as they are; wall time and peak RSS (ru_maxrss) of each. Targets: time
  <= 1.5x, RSS at most 100 MB more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from web_bench import ROOT, engine_with_data, serve

sys.path.insert(0, str(ROOT))  # the app, for the measurements made in this process's children

NEW_VIEWS = ("customers", "cohorts", "rfm", "rfm-customers", "customer")
COLD_VIEWS = ("kpis", "customers", "cohorts", "rfm", "rfm-customers")
FILTERS = [
    *((date(2011, m, 1), date(2011, m, 28), None) for m in range(1, 13)),  # months
    (date(2011, 1, 1), date(2011, 3, 31), None),  # quarters
    (date(2011, 4, 1), date(2011, 6, 30), None),
    (date(2011, 7, 1), date(2011, 9, 30), None),
    (date(2011, 5, 5), date(2011, 5, 5), None),  # single days
    (date(2011, 11, 14), date(2011, 11, 14), None),
    (None, None, "Germany"),  # countries, the first set of each pays its aggregate
    (None, None, "france"),
    (date(2011, 1, 1), date(2011, 12, 31), "United Kingdom"),
    (None, None, "EIRE"),
    (date(2011, 6, 1), date(2011, 8, 31), "spain"),
    (None, None, "Saudi Arabia"),
    (date(2010, 12, 1), date(2011, 2, 14), None),
]
TARGET_COLD = 2.0
TARGET_MISS_MS = 100
TARGET_REFRESH = 1.5
TARGET_RSS_MB = 100


# -- measurements, in a child process on one engine ------------------------------------------


def _compute(view_name: str, dataset, flt) -> None:
    from app.metrics import views
    from app.metrics.views import KpisParams, RfmCustomersParams, Scope

    view = {v.name: v for v in views.VIEWS}[view_name]
    start, end, country = flt
    params = (
        KpisParams(start=start, end=end, country=country)
        if view_name == "kpis"
        else RfmCustomersParams(start=start, end=end, country=country)
        if view_name == "rfm-customers"
        else Scope(start=start, end=end, country=country)
    )
    assert view.compute is not None
    view.compute(dataset, params, "GBP")


def measure_compute(rounds: int) -> dict:
    from app.lib.settings import get_settings
    from app.metrics import analytics, loader

    settings = get_settings()
    shapes, tag = loader.read_shapes(settings)
    cold: dict[str, list[float]] = {name: [] for name in COLD_VIEWS}
    loads: dict[str, list[float]] = {"frames": [], "frames and customer aggregate": []}
    for _ in range(rounds):
        for name in COLD_VIEWS:  # alternating: every view's cold figure in each round
            started = time.perf_counter()
            analytics.prepare(shapes, tag)
            loads["frames"].append(time.perf_counter() - started)
            started = time.perf_counter()
            dataset = loader.prepared(shapes, tag)
            loads["frames and customer aggregate"].append(time.perf_counter() - started)
            started = time.perf_counter()
            _compute(name, dataset, (None, None, None))
            cold[name].append(time.perf_counter() - started)
    dataset = loader.prepared(shapes, tag)
    misses: dict[str, list[float]] = {name: [] for name in COLD_VIEWS}
    for flt in FILTERS:
        for name in COLD_VIEWS:
            started = time.perf_counter()
            _compute(name, dataset, flt)
            misses[name].append(time.perf_counter() - started)
    return {
        "cold_ms": {name: statistics.median(times) * 1000 for name, times in cold.items()},
        "load_ms": {name: statistics.median(times) * 1000 for name, times in loads.items()},
        "miss_median_ms": {name: statistics.median(times) * 1000 for name, times in misses.items()},
        "miss_max_ms": {name: max(times) * 1000 for name, times in misses.items()},
    }


def measure_refresh(before: bool) -> dict:
    """The refresh's work as the task does it (app.metrics.service.refresh), with or without
    the views issue 15 added; in a fresh process, so ru_maxrss is this refresh's peak."""
    from app.lib.settings import get_settings
    from app.metrics import analytics, loader, views

    settings = get_settings()
    chosen = [view for view in views.VIEWS if not (before and view.name in NEW_VIEWS)]

    async def refresh() -> int:
        shapes, tag = await asyncio.to_thread(loader.read_shapes, settings)
        if before:  # before issue 15: no customer aggregate
            dataset = await asyncio.to_thread(analytics.prepare, shapes, tag)
        else:
            dataset = await asyncio.to_thread(loader.prepared, shapes, tag)
        count = 0
        for view in chosen:
            answers = await asyncio.to_thread(view.precompute, dataset, "GBP")
            answers += await view.prefetch(dataset, "GBP")
            count += len(answers)
        return count

    started = time.perf_counter()
    count = asyncio.run(refresh())
    return {
        "seconds": time.perf_counter() - started,
        "views": count,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child(mode: str, env: dict[str, str], rounds: int = 0) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--rounds", str(rounds)],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"the {mode} measurement failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- through HTTP ----------------------------------------------------------------------------


def http_misses(env: dict[str, str]) -> dict[str, float]:
    server, base = serve("app:create_app", env, factory=True)
    try:
        account = {"username": "bench", "password": "bench password"}
        httpx.post(f"{base}/auth/register", json=account).raise_for_status()
        token = httpx.post(f"{base}/auth/login", json=account).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            client.get("/metrics/kpis").raise_for_status()  # the dataset loaded, the refresh done
            times: dict[str, list[float]] = {}
            paths = {
                "kpis": "/metrics/kpis",
                "customers": "/metrics/customers",
                "cohorts": "/metrics/cohorts",
                "rfm": "/metrics/rfm",
                "rfm-customers": "/metrics/rfm/customers",
                "customer page": "/metrics/customers/14911",
            }
            for start, end, country in FILTERS:
                query = {"start": start, "end": end, "country": country}
                text = "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
                for name, path in paths.items():
                    started = time.perf_counter()
                    client.get(f"{path}?{text}").raise_for_status()
                    times.setdefault(name, []).append(time.perf_counter() - started)
            return {name: statistics.median(values) * 1000 for name, values in times.items()}
    finally:
        server.terminate()
        server.wait(timeout=30)


# -- the run ---------------------------------------------------------------------------------


def run(engine: str, rounds: int) -> dict:
    with engine_with_data(engine, "customers-bench") as env:
        result = {"compute": child("compute", env, rounds)}
        refreshes: dict[str, list[dict]] = {"before": [], "after": []}
        for _ in range(3):  # alternating
            refreshes["before"].append(child("refresh-before", env))
            refreshes["after"].append(child("refresh-after", env))
        result["refresh"] = {
            side: {
                "seconds": statistics.median(r["seconds"] for r in runs),
                "rss_mb": statistics.median(r["rss_mb"] for r in runs),
                "views": runs[-1]["views"],
            }
            for side, runs in refreshes.items()
        }
        result["http_ms"] = http_misses(env)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", choices=["compute", "refresh-before", "refresh-after"])
    args = parser.parse_args()
    if args.child == "compute":
        print(json.dumps(measure_compute(args.rounds)))
        return
    if args.child:
        print(json.dumps(measure_refresh(before=args.child == "refresh-before")))
        return
    ok = True
    for engine in ("sqlite", "postgres"):
        result = run(engine, args.rounds)
        compute, refresh, http = result["compute"], result["refresh"], result["http_ms"]
        kpis = compute["cold_ms"]["kpis"]
        print(f"\n{engine}: full data, in-process compute (medians of {args.rounds} rounds)")
        loads = compute["load_ms"]
        print(
            f"  load: frames {loads['frames']:.0f} ms; with the customer aggregate "
            f"{loads['frames and customer aggregate']:.0f} ms"
        )
        for name, ms in compute["cold_ms"].items():
            ratio = ms / kpis
            met = name == "kpis" or ratio <= TARGET_COLD
            ok = ok and met
            verdict = "" if name == "kpis" else "ok" if met else "MISSED"
            print(f"  cold {name:<14} {ms:6.2f} ms  {ratio:4.2f}x the KPIs  {verdict}")
        for name, ms in compute["miss_median_ms"].items():
            met = ms < TARGET_MISS_MS
            ok = ok and met
            print(
                f"  filtered miss {name:<14} median {ms:6.2f} ms, slowest {compute['miss_max_ms'][name]:6.1f} ms "
                f"(< {TARGET_MISS_MS}) {'ok' if met else 'MISSED'}"
            )
        for name, ms in http.items():
            met = ms < TARGET_MISS_MS
            ok = ok and met
            verdict = "ok" if met else "MISSED"
            print(f"  HTTP miss {name:<14} median {ms:6.2f} ms (one web process, request log on) {verdict}")
        before, after = refresh["before"], refresh["after"]
        ratio, grown = after["seconds"] / before["seconds"], after["rss_mb"] - before["rss_mb"]
        met = ratio <= TARGET_REFRESH and grown <= TARGET_RSS_MB
        ok = ok and met
        print(
            f"  refresh: before issue 15 {before['views']} views in {before['seconds']:.2f} s, peak RSS "
            f"{before['rss_mb']:.0f} MB; now {after['views']} views in {after['seconds']:.2f} s, "
            f"{after['rss_mb']:.0f} MB: {ratio:.2f}x (<= {TARGET_REFRESH}), {grown:+.0f} MB (<= {TARGET_RSS_MB}) "
            f"{'ok' if met else 'MISSED'}"
        )
    print("\nall targets met" if ok else "\nsome targets MISSED")


if __name__ == "__main__":
    main()
