"""Scale benchmark: the figures of issue 12 for the real data repeated N times.

    uv run python bench/scale_bench.py [--sizes 1,10] [--rounds 5]
    uv run python bench/scale_bench.py --sizes 50        # by hand: ~30 min, ~10 GB of disk

Production mode: PostgreSQL at BENCH_PG (a fresh database per size, dropped after) and
Redis at BENCH_REDIS (database 15, flushed), one uvicorn web process (request log on, the
production default), the CLI for imports and the refresh. Data sets come from
bench/scale_data.py (cached under bench/data/). For each size it prints:

- import: the importer's wall time against the database's own load of the same rows
  (psql `\\copy` of the CSV into the empty table with its indexes dropped, then the same
  indexes built: what the importer's bulk path does, minus shapes, validation and
  encoding); the ratio is importer / that;
- the web process: seconds from start until its first answer (it reads the shapes),
  RSS settled (1 s after the misses below, and 15 s after them, once the allocator has
  handed freed pages back) and peak (VmHWM);
- cache misses (each request a different filter): kpis for the United Kingdom over the
  whole range; Germany's country page over 3 months; 8 concurrent whole-range kpis; the
  product table (F5), the pairs (F6) and product pages over the whole range;
- the transactions page: a deep page filtered by Germany (by number, and by its key), and
  with `q=heart`;
- `litestar metrics refresh`: wall time and peak RSS (the worker runs the same code);
- after an import of one new invoice, seconds from the CLI's exit until the web's first
  answer that counts it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from scale_data import make  # noqa: E402

from app.ingest.tables import LINE_INDEXES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/15")
LITESTAR = str(Path(sys.executable).with_name("litestar"))
UVICORN = str(Path(sys.executable).with_name("uvicorn"))

NEW_INVOICE = (
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    "999999,22423,REGENCY CAKESTAND 3 TIER,1,12/9/2011 13:00,12.75,99999,United Kingdom\n"
)


def psql(url: str, *commands: str) -> None:
    args = ["psql", "-q", "-v", "ON_ERROR_STOP=1", url]
    for command in commands:
        args += ["-c", command]
    subprocess.run(args, check=True, capture_output=True)


def status(pid: int, field: str) -> float:
    """VmRSS or VmHWM of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed_run(*command: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a command, run under a fresh Python that waits for it."""
    wrapper = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *command], env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{command} failed:\n{out.stderr}")
    seconds, peak = out.stdout.split()
    return float(seconds), float(peak)


def ms(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def measure(times: int, rounds: int) -> dict[str, str]:
    parquet, csv = make(times, csv=True)
    database = f"scale_bench_{times}x_{os.getpid()}"
    url = f"{PG}/{database}"
    psql(f"{PG}/postgres", f"CREATE DATABASE {database}")
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": "bench-" + "x" * 40,
        "REDIS_URL": REDIS,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    figures: dict[str, str] = {}
    web: subprocess.Popen | None = None
    try:
        subprocess.run(
            [sys.executable, "-m", "piccolo.main", "migrations", "forwards", "all"],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip
        # the database's own load: \copy into the empty table without its key and indexes,
        # then those built (the importer's bulk path, minus shapes, validation and encoding)
        columns = "invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country"
        drops = [f"DROP INDEX {name}" for name in LINE_INDEXES]
        psql(url, "ALTER TABLE transactions DROP CONSTRAINT transactions_pkey", *drops)
        started = time.perf_counter()
        psql(url, "SET datestyle = 'ISO, MDY'", f"\\copy transactions ({columns}) FROM '{csv}' CSV HEADER")
        copied = time.perf_counter() - started
        rebuild = ["ALTER TABLE transactions ADD CONSTRAINT transactions_pkey PRIMARY KEY (id)", *LINE_INDEXES.values()]
        psql(url, "SET maintenance_work_mem = '256MB'", *rebuild)
        baseline = time.perf_counter() - started
        psql(url, "TRUNCATE transactions")
        imported, import_peak = timed_run(LITESTAR, "data", "import", str(parquet), env={**env, "REDIS_URL": ""})
        lines = subprocess.run(
            ["psql", "-At", url, "-c", "SELECT count(*) FROM transactions"], capture_output=True, text=True
        ).stdout.strip()
        figures["lines"] = f"{int(lines):,}"
        figures["import s (importer / load+indexes = ratio)"] = (
            f"{imported:.1f} / {baseline:.1f} = {imported / baseline:.2f}x"
        )
        figures["  bare \\copy, no index built"] = f"{copied:.1f} s"
        figures["  importer peak RSS"] = f"{import_peak:.0f} MB"

        # the web process, production defaults (request log on)
        port = 8700 + times
        base = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        web = subprocess.Popen(
            [UVICORN, "app:create_app", "--factory", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        while True:
            try:
                httpx.get(base + "/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        account = {"username": "bench", "password": "bench password"}
        httpx.post(base + "/auth/register", json=account).raise_for_status()
        token = httpx.post(base + "/auth/login", json=account).json()["access_token"]
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        # (a load that outlasts a request's deadline is a 503 while it goes on: asked again)
        while client.get("/metrics/kpis", params={"country": "France"}).status_code == 503:
            time.sleep(0.2)
        client.get("/metrics/kpis", params={"country": "France"}).raise_for_status()
        figures["web: start until its first answer"] = f"{time.perf_counter() - started:.1f} s"
        figures["  web RSS / peak once loaded"] = f"{status(web.pid, 'VmRSS'):.0f} / {status(web.pid, 'VmHWM'):.0f} MB"

        def get(path: str, **params: object) -> None:
            answer = client.get(path, params=params)
            assert answer.status_code == 200, (path, params, answer.status_code, answer.text[:200])

        uk = [
            ms(lambda d=d: get("/metrics/kpis", country="United Kingdom", end=f"2011-12-{d:02}"))
            for d in range(1, 1 + rounds)
        ]
        figures["miss: kpis, United Kingdom, whole range (median)"] = f"{statistics.median(uk):.1f} ms"
        germany = [
            ms(lambda m=m: get("/metrics/top-countries/Germany", start=f"2011-{m:02}-01", end=f"2011-{m + 2:02}-28"))
            for m in range(1, 1 + rounds)
        ]
        figures["miss: Germany's country page, 3 months (median)"] = f"{statistics.median(germany):.1f} ms"

        def one(day: int) -> tuple[int, float]:
            started = time.perf_counter()
            answer = httpx.get(
                base + "/metrics/kpis",
                params={"start": f"2010-12-{day:02}"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            return answer.status_code, (time.perf_counter() - started) * 1000

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, range(2, 10)))
        codes = sorted({code for code, _ in answers})
        figures["8 concurrent whole-range misses: status, slowest"] = f"{codes} {max(t for _, t in answers):.0f} ms"

        germany_lines = client.get("/metrics/page", params={"country": "Germany", "size": 50}).json()
        deep = germany_lines["pages"]
        by_number = [ms(lambda s=s: get("/metrics/page", country="Germany", page=deep - s)) for s in range(rounds)]
        figures["last pages of Germany, by number (median)"] = f"{statistics.median(by_number):.1f} ms"
        last = client.get("/metrics/page", params={"country": "Germany", "page": deep - 1}).json()
        by_key = [
            ms(lambda s=s: get("/metrics/page", country="Germany", page=deep, after=last["next_after"], size=50 - s))
            for s in range(rounds)
        ]
        figures["  the same, by its key (median)"] = f"{statistics.median(by_key):.1f} ms"
        heart = [ms(lambda p=p: get("/metrics/page", q="heart", page=p)) for p in (1, 2, 10, 100, 1000)]
        figures["q=heart, pages 1, 2, 10, 100, 1000 (median / slowest)"] = (
            f"{statistics.median(heart):.1f} / {max(heart):.1f} ms"
        )
        rare = [ms(lambda p=p: get("/metrics/page", q="5363", page=p)) for p in (1, 2, 3)]
        figures["q=5363 (invoices and codes), pages 1-3 (median)"] = f"{statistics.median(rare):.1f} ms"
        # the product views (issue 16): misses over the whole range, and pages of products not asked yet
        f5 = [ms(lambda d=d: get("/metrics/products", end=f"2011-12-{d:02}")) for d in range(1, 1 + rounds)]
        figures["miss: products (F5), whole range (median)"] = f"{statistics.median(f5):.1f} ms"
        f6 = [ms(lambda d=d: get("/metrics/product-pairs", end=f"2011-12-{d:02}")) for d in range(1, 1 + rounds)]
        figures["miss: product pairs (F6), whole range (median)"] = f"{statistics.median(f6):.1f} ms"
        codes = ["22423", "85123A", "47566", "85099B", "23084", "POST", "22086", "84879", "79321", "22197"]
        pages = [ms(lambda c=c: get(f"/metrics/products/{c}")) for c in codes[:rounds]]
        figures["miss: a product's page, whole range (median)"] = f"{statistics.median(pages):.1f} ms"
        time.sleep(1)
        figures["web RSS settled / peak"] = f"{status(web.pid, 'VmRSS'):.0f} / {status(web.pid, 'VmHWM'):.0f} MB"
        # Polars' allocator (jemalloc) hands freed pages back to the system after about 10 s
        time.sleep(14)
        figures["  web RSS 15 s later"] = f"{status(web.pid, 'VmRSS'):.0f} MB"

        refreshed, refresh_peak = timed_run(LITESTAR, "metrics", "refresh", env=env)
        figures["refresh: wall / peak RSS"] = f"{refreshed:.1f} s / {refresh_peak:.0f} MB"

        before = client.get("/metrics/kpis").json()["orders"]
        new = ROOT / "bench" / "data" / "new_invoice.csv"
        new.write_text(NEW_INVOICE)
        subprocess.run([LITESTAR, "data", "import", str(new)], cwd=ROOT, env=env, check=True, capture_output=True)
        committed = time.perf_counter()
        while client.get("/metrics/kpis").json()["orders"] == before:
            time.sleep(0.02)
        figures["after an import: first fresh answer"] = f"{time.perf_counter() - committed:.2f} s"
        return figures
    finally:
        if web is not None:
            web.terminate()
            web.wait(timeout=30)
        psql(f"{PG}/postgres", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10", help="replication factors, comma-separated (50 by hand)")
    parser.add_argument("--rounds", type=int, default=5, help="requests per miss figure")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    columns = {size: measure(size, args.rounds) for size in sizes}
    labels = list(next(iter(columns.values())))
    print(f"\nproduction mode (PostgreSQL + Redis, request log on), {args.rounds} requests per miss figure\n")
    print(f"  {'figure':<56}" + "".join(f"{f'{size}x':>26}" for size in sizes))
    for label in labels:
        print(f"  {label:<56}" + "".join(f"{columns[size].get(label, ''):>26}" for size in sizes))


if __name__ == "__main__":
    main()
