"""CSV export of the whole transactions table (ANALYTICS.md F7, issue 14), on both engines.

    uv run python bench/export_bench.py [--rounds 2]

For each engine (the embedded SQLite file; PostgreSQL in a fresh database): the reference
data is imported with the CLI, one uvicorn web process serves the app (request log on, the
defaults), and `GET /metrics/page?format=csv` is read to its end as a client would, in
chunks. Measured: the time to the first byte and to the last, the rows, and the web
process's RSS before the export and its highest during it (VmRSS sampled every 20 ms).
Baseline, in the same run: the same lines read straight from the database by a client
(psql `\\copy (SELECT ...) TO` a file; Python's sqlite3 fetching every row), so the ratio says
what the web tier adds. Targets: peak RSS at most 50 MB above the RSS before, first byte
within 1 s.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from web_bench import engine_with_data, serve

TARGET_RSS_MB = 50
TARGET_FIRST_BYTE_S = 1.0
LINES_SQL = (
    "SELECT invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country "
    "FROM transactions WHERE substr(invoice_no, 1, 1) NOT IN ('C', 'A') AND quantity > 0 AND unit_price > 0 "
    "ORDER BY invoice_date, id"
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def export(base: str, token: str, pid: int) -> dict:
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(rss_mb(pid))
            time.sleep(0.02)

    before = rss_mb(pid)
    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    first = None
    size = lines = 0
    try:
        with httpx.stream(
            "GET", f"{base}/metrics/page?format=csv", headers={"Authorization": f"Bearer {token}"}, timeout=600
        ) as answer:
            answer.raise_for_status()
            for chunk in answer.iter_bytes():
                if first is None:
                    first = time.perf_counter() - started
                size += len(chunk)
                lines += chunk.count(b"\n")  # CRLF ends every line; no text holds a line break
    finally:
        done.set()
        sampler.join()
    return {
        "seconds": time.perf_counter() - started,
        "first_byte": first or 0.0,
        "rows": lines - 1,  # the header
        "mb": size / 1e6,
        "before": before,
        "peak": max(samples, default=before),
    }


def baseline(engine: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    if engine == "postgres":
        out = Path(tempfile.mkstemp(suffix=".csv")[1])
        subprocess.run(
            ["psql", "-X", "-q", env["DATABASE_URL"], "-c", f"\\copy ({LINES_SQL}) TO '{out}' WITH (FORMAT csv)"],
            check=True,
        )
        out.unlink()
    else:
        with sqlite3.connect(Path(env["DATA_DIR"]) / "shop.sqlite3") as db:
            for _ in db.execute(LINES_SQL):
                pass
    return time.perf_counter() - started


def run(engine: str, rounds: int) -> dict:
    with engine_with_data(engine, "export-bench") as env:
        server, base = serve("app:create_app", env, factory=True)
        try:
            account = {"username": "bench", "password": "bench password"}
            httpx.post(f"{base}/auth/register", json=account).raise_for_status()
            token = httpx.post(f"{base}/auth/login", json=account).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            httpx.get(f"{base}/metrics/page", headers=auth, timeout=60).raise_for_status()
            runs, bases = [], []
            for _ in range(rounds):  # alternating: the database read, then the export
                bases.append(baseline(engine, env))
                runs.append(export(base, token, server.pid))
            return {"runs": runs, "baseline": statistics.median(bases)}
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ok = True
    print("GET /metrics/page?format=csv, the whole table; one uvicorn web process, request log on")
    for engine in ("sqlite", "postgres"):
        result = run(engine, args.rounds)
        runs = result["runs"]
        seconds = statistics.median(r["seconds"] for r in runs)
        first = max(r["first_byte"] for r in runs)
        growth = max(r["peak"] - r["before"] for r in runs)
        rows = runs[-1]["rows"]
        met = growth <= TARGET_RSS_MB and first <= TARGET_FIRST_BYTE_S and rows == 530_103
        ok = ok and met
        print(
            f"  {engine:<9} {rows:,} rows, {runs[-1]['mb']:.0f} MB in {seconds:.1f} s "
            f"({rows / seconds:,.0f} rows/s); the database alone {result['baseline']:.1f} s: "
            f"ratio {seconds / result['baseline']:.1f}x; first byte {first * 1000:.0f} ms "
            f"(<= {TARGET_FIRST_BYTE_S * 1000:.0f}); RSS {runs[-1]['before']:.0f} MB before, "
            f"+{growth:.0f} MB at most during it (<= {TARGET_RSS_MB}) {'ok' if met else 'MISSED'}"
        )
    print("\nall targets met" if ok else "\nsome targets MISSED")


if __name__ == "__main__":
    main()
