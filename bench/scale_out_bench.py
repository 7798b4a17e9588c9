"""Scale-out benchmark: 1 web process + 1 worker against 2 + 2, on 10x the reference data.

    uv run python bench/scale_out_bench.py [--times 10] [--seconds 10]

Production mode: PostgreSQL at BENCH_PG (a fresh database, dropped after), Redis at
BENCH_REDIS (database 14, flushed), the data of bench/scale_data.py imported by the CLI.
For each setup: uvicorn with N worker processes on one port (the kernel spreads the
connections) and N taskiq workers, request log on. Measured: warm throughput of
`GET /metrics/kpis` with wrk (answers in Redis), and 16 concurrent cache misses (each a
different filter, so each is computed by whichever web process takes it): median and
slowest. The machine has 2 cores, which wrk and the servers share.
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

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from scale_data import make  # noqa: E402
from web_bench import wrk  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14")
BIN = Path(sys.executable).parent


def start(env: dict[str, str], processes: int, port: int) -> list[subprocess.Popen]:
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": ROOT, "env": env}
    web = subprocess.Popen(
        [str(BIN / "uvicorn"), "app:create_app", "--factory", "--port", str(port), "--workers", str(processes)],
        **quiet,  # type: ignore[arg-type]
    )
    workers = [
        subprocess.Popen([str(BIN / "taskiq"), "worker", "app.worker:broker", "--workers", "1"], **quiet)  # type: ignore[arg-type]
        for _ in range(processes)
    ]
    return [web, *workers]


def measure(env: dict[str, str], processes: int, seconds: int) -> dict[str, float]:
    import redis

    redis.Redis.from_url(REDIS).flushdb()  # every setup starts with nothing cached
    port = 8800 + processes
    base = f"http://127.0.0.1:{port}"
    running = start(env, processes, port)
    try:
        while True:
            try:
                httpx.get(base + "/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        account = {"username": "bench", "password": "bench password"}
        httpx.post(base + "/auth/register", json=account)  # exists after the first setup
        token = httpx.post(base + "/auth/login", json=account).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(4 * processes):  # every web process has read the shapes and answered once
            httpx.get(base + "/metrics/kpis", headers=auth, timeout=60).raise_for_status()

        def miss(i: int) -> float:
            started = time.perf_counter()
            answer = httpx.get(
                base + "/metrics/kpis",
                params={"start": f"2011-{1 + i % 12:02}-01", "end": f"2011-12-{1 + i:02}"},
                headers=auth,
                timeout=30,
            )
            answer.raise_for_status()
            return (time.perf_counter() - started) * 1000

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            misses = list(pool.map(miss, range(16)))
        warm = wrk(base + "/metrics/kpis", {**auth, "Accept": "application/json"}, seconds, 32)
        return {
            "rps": warm["rps"],
            "non_2xx": warm["non_2xx"],
            "miss_median_ms": statistics.median(misses),
            "miss_max_ms": max(misses),
        }
    finally:
        for process in running:
            process.terminate()
        for process in running:
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--times", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    parquet, _ = make(args.times)
    database = f"scale_out_{os.getpid()}"
    subprocess.run(["psql", "-q", f"{PG}/postgres", "-c", f"CREATE DATABASE {database}"], check=True)
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{database}",
        "SECRET_KEY": "bench-" + "x" * 40,
        "REDIS_URL": REDIS,
        "LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }
    try:
        subprocess.run(
            [sys.executable, "-m", "piccolo.main", "migrations", "forwards", "all"],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip
        litestar = str(BIN / "litestar")
        subprocess.run([litestar, "data", "import", str(parquet)], cwd=ROOT, env=env, check=True, capture_output=True)
        results = {n: measure(env, n, args.seconds) for n in (1, 2)}
    finally:
        subprocess.run(["psql", "-q", f"{PG}/postgres", "-c", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"])
    print(f"\n{args.times}x the reference data, production mode, request log on; wrk -t2 -c32 -d{args.seconds}s")
    print(f"  {'':<44}{'1 web + 1 worker':>18}{'2 web + 2 workers':>20}{'ratio':>8}")
    for key, label in [
        ("rps", "warm GET /metrics/kpis, req/s"),
        ("miss_median_ms", "16 concurrent misses, median ms"),
        ("miss_max_ms", "16 concurrent misses, slowest ms"),
        ("non_2xx", "non-2xx answers under wrk"),
    ]:
        one, two = results[1][key], results[2][key]
        ratio = f"{two / one:.2f}" if one else ""
        print(f"  {label:<44}{one:>18.1f}{two:>20.1f}{ratio:>8}")


if __name__ == "__main__":
    main()
