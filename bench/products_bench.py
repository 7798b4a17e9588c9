"""The product views (ANALYTICS.md F5, F6, issue 16) on the full data, on both engines.

    uv run python bench/products_bench.py [--rounds 3]

For each engine (the embedded SQLite file; PostgreSQL in a fresh database) the reference data
is imported with the CLI; each measurement runs in a fresh Python process on that database,
with the dataset loaded first. Peak RSS of a computation: the kernel's high-water mark reset
just before it (`/proc/self/clear_refs`), read after it, less the RSS before it.

- **F6, the pairs**: the full data's top 10 cold (nothing of F6 built yet); filtered misses over
  12 windows and countries (median); beside it, once, the naive method (every pair of every
  basket counted, then the top 10) and the two-pass one on the same one-month window, so the
  naive one stays bounded. Targets: full data < 1.5 s and <= 150 MB above the RSS before;
  filtered misses median < 300 ms.
- **A product's page** cold for the top product (22423): < 200 ms.
- **F5**, for the record: the full product table cold.
- **refresh**: a refresh (`MetricsService.refresh`, into the in-process cache) by the code of
  before issue 16 (commit BASELINE, checked out into a temporary git worktree, run on the
  same database) and by the code of now; wall time: <= 1.5x.
- **load**, for the record: a dataset load (read and prepare the shapes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from web_bench import ROOT, engine_with_data

# the app, for the measurements made in this process's children (the baseline's, for its refresh)
APP = Path(os.environ.get("BENCH_APP_ROOT", ROOT))
sys.path.insert(0, str(APP))
BASELINE = "283b499^"  # the commit before issue 16's first

WINDOWS = [
    (date(2011, 1, 1), date(2011, 1, 31), None),
    (date(2011, 3, 1), date(2011, 3, 31), None),
    (date(2011, 5, 1), date(2011, 5, 31), None),
    (date(2011, 9, 1), date(2011, 9, 30), None),
    (date(2011, 11, 1), date(2011, 11, 30), None),
    (date(2011, 4, 1), date(2011, 6, 30), None),
    (date(2011, 10, 1), date(2011, 12, 9), None),
    (None, None, "Germany"),
    (None, None, "France"),
    (None, None, "EIRE"),
    (date(2011, 1, 1), date(2011, 12, 31), "United Kingdom"),
    (date(2011, 6, 1), date(2011, 8, 31), "spain"),
]
NAIVE_WINDOW = (date(2011, 11, 1), date(2011, 11, 30), None)
TARGET_F6_S, TARGET_F6_MB, TARGET_F6_MISS_MS = 1.5, 150, 300
TARGET_PAGE_MS, TARGET_REFRESH = 200, 1.5


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _measured(call) -> tuple[float, float]:
    """(seconds, MB of peak RSS above the RSS before) of one call."""
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark starts again from here
    before = _rss_mb()
    started = time.perf_counter()
    call()
    return time.perf_counter() - started, _rss_mb("VmHWM") - before


def _dataset():
    from app.lib.settings import get_settings
    from app.metrics import loader

    return asyncio.run(loader.load_dataset(get_settings()))


def measure_load() -> dict:
    """A dataset load: the shapes read and prepared."""
    from app.lib.settings import get_settings
    from app.metrics import loader

    seconds, mb = _measured(lambda: asyncio.run(loader.load_dataset(get_settings())))
    return {"seconds": seconds, "mb": mb}


def measure(mode: str) -> dict:
    from app.metrics import products
    from app.metrics.schemas import Filters

    dataset = _dataset()
    if mode == "f6-full":
        seconds, mb = _measured(lambda: products.product_pairs(dataset, Filters(), 10, "GBP"))
        return {"seconds": seconds, "mb": mb}
    if mode == "f6-misses":
        times = []
        for start, end, country in WINDOWS:
            flt = Filters(start, end, country)
            seconds, _ = _measured(lambda flt=flt: products.product_pairs(dataset, flt, 10, "GBP"))
            times.append(seconds)
        return {"median": statistics.median(times), "slowest": max(times)}
    if mode in ("naive", "pruned"):
        start, end, country = NAIVE_WINDOW
        window = Filters(start, end, country)
        if mode == "naive":  # every pair of every basket, then the best ten
            items = products.baskets_of(dataset, window)
            seconds, mb = _measured(lambda: products._top(products.naive_pair_counts(items), 10))
        else:  # F6's way, from the baskets as held
            baskets = products.Baskets.of(dataset, products.shape_in(dataset, "baskets", window))
            seconds, mb = _measured(lambda: products.top_pairs(baskets, 10))
        return {"seconds": seconds, "mb": mb}
    if mode == "page":
        seconds, mb = _measured(lambda: products.product(dataset, Filters(), "22423", "GBP"))
        return {"seconds": seconds, "mb": mb}
    if mode == "f5":
        seconds, mb = _measured(lambda: products.products(dataset, Filters(), "revenue", "desc", 10, 0, "GBP"))
        return {"seconds": seconds, "mb": mb}
    raise SystemExit(f"unknown mode {mode}")


def measure_refresh() -> dict:
    """A refresh into the in-process cache, by the code at APP."""
    from dataclasses import replace

    from app.lib.cache import make_cache
    from app.lib.settings import get_settings
    from app.metrics.service import MetricsService

    settings = get_settings()
    service = MetricsService(settings, make_cache(replace(settings, redis_url="")))
    started = time.perf_counter()
    report = asyncio.run(service.refresh())
    return {"seconds": time.perf_counter() - started, "views": report.views, "rss_mb": _rss_mb("VmHWM")}


@contextmanager
def baseline_tree():
    """The code of BASELINE, in a temporary git worktree."""
    with tempfile.TemporaryDirectory(prefix="products-bench-") as folder:
        tree = Path(folder) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), BASELINE], cwd=ROOT, check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=True)


def child(mode: str, env: dict[str, str], app: Path = ROOT) -> dict:
    env = {**env, "BENCH_APP_ROOT": str(app)}
    out = subprocess.run([sys.executable, __file__, "--child", mode], cwd=app, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the {mode} measurement failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(engine: str, rounds: int, baseline: Path) -> dict:
    with engine_with_data(engine, "products-bench") as env:
        result: dict[str, list[dict]] = {}
        for _ in range(rounds):  # alternating
            for mode in ("load", "f6-full", "f6-misses", "naive", "pruned", "page", "f5", "refresh"):
                result.setdefault(mode, []).append(child(mode, env))
            result.setdefault("refresh-before", []).append(child("refresh", env, baseline))
        return result


def median(runs: list[dict], name: str) -> float:
    return statistics.median(r[name] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        if args.child == "load":
            result = measure_load()
        elif args.child == "refresh":
            result = measure_refresh()
        else:
            result = measure(args.child)
        print(json.dumps(result))
        return
    ok = True
    with baseline_tree() as baseline:
        results = {engine: run(engine, args.rounds, baseline) for engine in ("sqlite", "postgres")}
    for engine, r in results.items():
        print(f"\n{engine}: full data, each figure in a fresh process (medians of {args.rounds})")
        print(f"  dataset load: {median(r['load'], 'seconds'):.2f} s, +{median(r['load'], 'mb'):.0f} MB peak")
        full_s, full_mb = median(r["f6-full"], "seconds"), median(r["f6-full"], "mb")
        met = full_s < TARGET_F6_S and full_mb <= TARGET_F6_MB
        ok = ok and met
        print(
            f"  F6 top 10, full data, cold: {full_s:.2f} s (< {TARGET_F6_S}), +{full_mb:.0f} MB peak "
            f"(<= {TARGET_F6_MB}) {'ok' if met else 'MISSED'}"
        )
        miss, slowest = median(r["f6-misses"], "median") * 1000, median(r["f6-misses"], "slowest") * 1000
        met = miss < TARGET_F6_MISS_MS
        ok = ok and met
        verdict = "ok" if met else "MISSED"
        print(f"  F6 filtered misses: median {miss:.0f} ms, slowest {slowest:.0f} ms (< {TARGET_F6_MISS_MS}) {verdict}")
        naive_s, naive_mb = median(r["naive"], "seconds"), median(r["naive"], "mb")
        pruned_s, pruned_mb = median(r["pruned"], "seconds"), median(r["pruned"], "mb")
        print(
            f"  F6 on November 2011: naive self-join {naive_s:.2f} s, +{naive_mb:.0f} MB; two passes "
            f"{pruned_s:.3f} s, +{pruned_mb:.0f} MB: {naive_s / pruned_s:.0f}x faster, "
            f"{naive_mb / max(pruned_mb, 1):.0f}x less memory"
        )
        page = median(r["page"], "seconds") * 1000
        met = page < TARGET_PAGE_MS
        ok = ok and met
        print(f"  a product's page (22423), cold: {page:.0f} ms (< {TARGET_PAGE_MS}) {'ok' if met else 'MISSED'}")
        print(f"  F5, the product table, cold: {median(r['f5'], 'seconds') * 1000:.0f} ms")
        before, after = median(r["refresh-before"], "seconds"), median(r["refresh"], "seconds")
        met = after / before <= TARGET_REFRESH
        ok = ok and met
        print(
            f"  refresh: before issue 16 {r['refresh-before'][-1]['views']} views in {before:.2f} s, peak RSS "
            f"{median(r['refresh-before'], 'rss_mb'):.0f} MB; now {r['refresh'][-1]['views']} views in "
            f"{after:.2f} s, {median(r['refresh'], 'rss_mb'):.0f} MB: {after / before:.2f}x "
            f"(<= {TARGET_REFRESH}) {'ok' if met else 'MISSED'}"
        )
    print("\nall targets met" if ok else "\nsome targets MISSED")


if __name__ == "__main__":
    main()
