"""Import benchmark: our importer against psql's \\copy, on the full Online Retail file.

    uv run python bench/import_bench.py [--rounds 5]

PostgreSQL: each round loads the same UTF-8 CSV (the shared .csv.gz, unpacked once)
with psql's `\\copy` into a bare table of the same column types (no key, no index),
then with our importer (`import_file`, in a fresh process, into an empty
transactions table; the figure is the import call's wall time, Python start-up
excluded). Rounds alternate so both see the same machine; medians and their ratio
are printed. SQLite: the same file imported into a fresh embedded database. Peak
RSS is the importing process's maximum resident set size (ru_maxrss).

Needs PostgreSQL at BENCH_PG (default postgresql://postgres@127.0.0.1:5432) with
permission to create a database; it creates and drops its own.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
TARGET_RATIO = 1.5
TARGET_SQLITE_SECONDS = 30
TARGET_RSS_MB = 600

BARE_TABLE = """
CREATE TABLE bare_transactions (
    id bigint, invoice_no varchar(20), stock_code varchar(32), description text, quantity integer,
    invoice_date timestamp, unit_price numeric(12, 3), customer_id integer, country varchar(64)
)"""


# the importer builds these on the lines too (app/ingest/tables.py: the key and LINE_INDEXES)
BARE_INDEX_NAMES = ("bare_pkey", "bare_day_id", "bare_country_day_id", "bare_invoice_no")
BARE_INDEXES = (
    "CREATE UNIQUE INDEX bare_pkey ON bare_transactions (id)",
    "CREATE INDEX bare_day_id ON bare_transactions (invoice_date, id)",
    "CREATE INDEX bare_country_day_id ON bare_transactions (country, invoice_date, id)",
    "CREATE INDEX bare_invoice_no ON bare_transactions (invoice_no)",
)


def child(path: str) -> None:
    """Runs in a fresh process with DATABASE_URL set: one import into an empty table, as JSON."""
    sys.path.insert(0, str(ROOT))
    from app.ingest.service import import_file
    from app.lib.db import prepare_schema
    from app.lib.settings import get_settings

    async def main() -> dict:
        await prepare_schema(get_settings())
        started = time.perf_counter()
        result = await import_file(path, replace=True)
        return {"seconds": time.perf_counter() - started, "rows": result.rows}

    outcome = asyncio.run(main())
    outcome["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(outcome))


def run_child(path: Path, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"import failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def psql(url: str, *commands: str) -> float:
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url]
    for command in commands:
        args += ["-c", command]
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if not DATA.exists():
        sys.exit(f"{DATA} not found: the benchmark needs the shared data set")
    if shutil.which("psql") is None:
        sys.exit("psql not found: install the PostgreSQL client")

    work = Path(tempfile.mkdtemp(prefix="shop-bench-"))
    csv_path = work / "online_retail.csv"
    with gzip.open(DATA, "rb") as source, open(csv_path, "wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)
    # the baseline's copy, with the id the importer numbers itself (no per-row nextval either side)
    numbered_path = work / "numbered.csv"
    with open(csv_path, newline="", encoding="utf-8") as source, open(numbered_path, "w", newline="") as target:
        rows, out = csv.reader(source), csv.writer(target)
        out.writerow(["id", *next(rows)])
        out.writerows([number, *row] for number, row in enumerate(rows, 1))

    database = f"bench_import_{os.getpid()}"
    url = f"{PG}/{database}"
    psql(f"{PG}/postgres", f"CREATE DATABASE {database}")
    env_pg = {"DATABASE_URL": url, "SECRET_KEY": "bench-" + "x" * 40}
    try:
        subprocess.run(
            [sys.executable, "-m", "piccolo.main", "migrations", "forwards", "all"],
            cwd=ROOT,
            env={**os.environ, **env_pg, "PYTHONPATH": str(ROOT)},
            check=True,
            capture_output=True,
        )
        psql(url, BARE_TABLE)
        copy_times, indexed_times, ours, rss = [], [], [], []
        for number in range(1, args.rounds + 1):
            # Each load starts from a checkpoint, so neither pays for flushing the other's pages.
            psql(url, "TRUNCATE bare_transactions", "CHECKPOINT")
            copy_times.append(
                psql(url, f"\\copy bare_transactions FROM '{numbered_path}' WITH (FORMAT csv, HEADER true)")
            )
            # the same load with what the importer also builds on the lines: key and indexes
            indexed_times.append(copy_times[-1] + psql(url, "SET maintenance_work_mem = '256MB'", *BARE_INDEXES))
            psql(url, *(f"DROP INDEX {name}" for name in BARE_INDEX_NAMES))
            psql(url, "TRUNCATE transactions, imports", "CHECKPOINT")
            outcome = run_child(csv_path, env_pg)
            assert outcome["rows"] == 541_909, outcome
            ours.append(outcome["seconds"])
            rss.append(outcome["max_rss_mb"])
            print(
                f"round {number}: \\copy {copy_times[-1]:.2f} s (+ indexes {indexed_times[-1]:.2f} s),"
                f" importer {ours[-1]:.2f} s",
                flush=True,
            )

        sqlite_dir = work / "sqlite"
        sqlite = run_child(DATA, {"DATABASE_URL": "", "DATA_DIR": str(sqlite_dir)})
        gz_pg = run_child(DATA, env_pg)
    finally:
        psql(f"{PG}/postgres", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(work, ignore_errors=True)

    copy_median, ours_median = statistics.median(copy_times), statistics.median(ours)
    indexed_median = statistics.median(indexed_times)
    ratio = ours_median / indexed_median  # the equivalent table has the same key and indexes
    rows = [
        ("PostgreSQL: psql \\copy into a bare table (median)", f"{copy_median:.2f} s", ""),
        ("PostgreSQL: the same, then its key and indexes built (median)", f"{indexed_median:.2f} s", ""),
        ("PostgreSQL: importer, same CSV (median)", f"{ours_median:.2f} s", ""),
        ("PostgreSQL: ratio importer / bare \\copy", f"{ours_median / copy_median:.2f}x", ""),
        ("PostgreSQL: ratio importer / (\\copy + key and indexes)", f"{ratio:.2f}x", f"<= {TARGET_RATIO}x"),
        ("PostgreSQL: importer, the .csv.gz", f"{gz_pg['seconds']:.2f} s", ""),
        ("SQLite: importer, the .csv.gz", f"{sqlite['seconds']:.2f} s", f"< {TARGET_SQLITE_SECONDS} s"),
        ("peak RSS, importer (max of PostgreSQL runs)", f"{max(rss):.0f} MB", f"< {TARGET_RSS_MB} MB"),
        ("peak RSS, importer (SQLite, .csv.gz)", f"{sqlite['max_rss_mb']:.0f} MB", f"< {TARGET_RSS_MB} MB"),
    ]
    print()
    width = max(len(row[0]) for row in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>9}  {target}")
    met = (
        ratio <= TARGET_RATIO
        and sqlite["seconds"] < TARGET_SQLITE_SECONDS
        and max(max(rss), sqlite["max_rss_mb"]) < TARGET_RSS_MB
    )
    print("\nall targets met" if met else "\nTARGET MISSED")


if __name__ == "__main__":
    main()
