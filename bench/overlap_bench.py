"""Overlap check benchmark: what looking for already-stored invoices adds to an import on PostgreSQL.

    uv run python bench/overlap_bench.py [--rounds 3]

Each round, in a fresh process: the transactions table is truncated and loaded with a
copy of the reference file whose invoice numbers are offset (536365 -> 1536365: the same
541,909 rows, no invoice in common), then the reference file is imported on top. The
importer looks for stored invoices (none are found), so its time includes the whole check;
`overlap_seconds` is the check's own time (staging the file's invoice numbers, the join with
the `invoices` table, recording the new invoices), and the ratio is import / (import - check).
Then the same rows as Parquet, whose 25,900 invoices are all stored: the time until the
refusal, with its report. Medians over the rounds.

Needs PostgreSQL at BENCH_PG (default postgresql://postgres@127.0.0.1:5432); it creates
and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
TARGET = 1.20


def offset_copy(target: Path) -> None:
    """The reference file with every invoice number moved up by 1,000,000 (prefix kept)."""
    invoice = re.compile(rb"^([CA]?)(\d+),", re.MULTILINE)
    with gzip.open(DATA, "rb") as source:
        content = source.read()
    header, _, body = content.partition(b"\n")
    moved = invoice.sub(lambda m: m.group(1) + str(int(m.group(2)) + 1_000_000).encode() + b",", body)
    target.write_bytes(header + b"\n" + moved)


def child(offset: str) -> None:
    """In a fresh process with DATABASE_URL set: the two imports of one round, as JSON."""
    sys.path.insert(0, str(ROOT))
    from app.ingest.service import OverlapRefused, import_file
    from app.lib.db import prepare_schema
    from app.lib.settings import get_settings

    async def main() -> dict:
        await prepare_schema(get_settings())
        await import_file(offset, replace=True)
        started = time.perf_counter()
        result = await import_file(DATA)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        try:
            await import_file(DATA.with_name("online_retail.parquet"))  # the same rows, other bytes
            refusal = None
        except OverlapRefused as refused:
            refusal = {"seconds": time.perf_counter() - started, "invoices": refused.overlap.invoices}
        return {"seconds": seconds, "check": result.overlap_seconds, "rows": result.rows, "refusal": refusal}

    print(json.dumps(asyncio.run(main())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found: the benchmark reads the real data from ../shared/data")
    database = f"overlap_bench_{os.getpid()}"
    subprocess.run(["psql", f"{PG}/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
    env = {**os.environ, "DATABASE_URL": f"{PG}/{database}", "SECRET_KEY": "bench-" + "x" * 40, "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    folder = Path(tempfile.mkdtemp(prefix="overlap-bench-"))
    try:
        offset = folder / "offset.csv"
        offset_copy(offset)
        subprocess.run(
            [sys.executable, "-m", "piccolo.main", "migrations", "forwards", "all"],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip
        runs = []
        for _ in range(args.rounds):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(offset)], cwd=ROOT, env=env, check=False, capture_output=True
            )
            if out.returncode:
                raise SystemExit(f"the import failed:\n{out.stderr.decode()[-3000:]}")
            runs.append(json.loads(out.stdout.decode().strip().splitlines()[-1]))
        seconds = statistics.median(r["seconds"] for r in runs)
        check = statistics.median(r["check"] for r in runs)
        ratio = statistics.median(r["seconds"] / (r["seconds"] - r["check"]) for r in runs)
        refusal = statistics.median(r["refusal"]["seconds"] for r in runs)
        print(f"\nPostgreSQL, {args.rounds} rounds, full reference file (541,909 lines) onto 541,909 stored lines:")
        print(f"  import with the overlap check (none found)   {seconds:6.2f} s")
        print(f"  of which the check                           {check:6.2f} s")
        print(
            f"  ratio import / import without the check      {ratio:6.2f}  (target <= {TARGET:.2f}) "
            f"{'ok' if ratio <= TARGET else 'MISSED'}"
        )
        print(
            f"  the same rows as Parquet: refused after         {refusal:6.2f} s "
            f"({runs[0]['refusal']['invoices']:,} invoices already stored)"
        )
        print(json.dumps(runs))
    finally:
        subprocess.run(
            ["psql", f"{PG}/postgres", "-qc", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], check=False
        )
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
