"""The demo data set: a third of the real UCI "Online Retail" export, shipped in the package.

Every third customer's invoices (whole histories, so repeat buying and the customer views
stay true to the shop) and every third guest invoice (no customer id): about 191,000 of the
541,909 lines, every day and country of the original, 1 MB as zstd Parquet. Loading it is
an ordinary import (`litestar data demo`, or the button on the empty dashboard).

Rebuild it from the full file (the shared reference data) with

    uv run python -m app.ingest.demo path/to/online_retail.parquet

Source and license: see README.md beside the file.
"""

from __future__ import annotations

from pathlib import Path

DEMO_FILE = Path(__file__).with_name("online_retail_demo.parquet")
EVERY = 3  # keep one customer (and one guest invoice) in EVERY


def build(source: Path, target: Path = DEMO_FILE) -> int:
    """Write the demo subset of the full export at `source` to `target`; the number of lines."""
    import polars as pl

    rows = pl.read_parquet(source)
    number = pl.col("InvoiceNo").str.extract(r"(\d+)").cast(pl.Int64)
    kept = rows.filter(
        pl.when(pl.col("CustomerID").is_not_null())
        .then(pl.col("CustomerID") % EVERY == 0)
        .otherwise(number % EVERY == 0)
    )
    kept.write_parquet(target, compression="zstd", compression_level=19, statistics=False)
    return kept.height
