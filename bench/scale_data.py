"""N-times data sets for the scale benchmark: the real rows repeated N times.

    uv run python bench/scale_data.py 10 [--out bench/data] [--csv]

Copy k (0 .. N-1) keeps every line (cancellations and adjustments included) and its date,
with the invoice number's digits + k x 1,000,000 (the C or A prefix kept) and the customer
id + k x 100,000: N times the orders and customers on the same days, countries and
products, as a shop N times the size would have. Written as zstd Parquet (row groups of
500,000 rows, as the importer wants); `--csv` also writes a CSV of the same rows for the
`\\copy` baseline. Files are cached: an existing one is reused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "data" / "online_retail.parquet"
OUT = ROOT / "bench" / "data"


def copy(frame: pl.LazyFrame, k: int) -> pl.LazyFrame:
    number = pl.col("InvoiceNo")
    prefix = number.str.extract(r"^([A-Za-z]*)", 1)
    digits = number.str.extract(r"(\d+)$", 1).cast(pl.Int64)
    return frame.with_columns(
        (prefix + (digits + k * 1_000_000).cast(pl.String)).alias("InvoiceNo"),
        (pl.col("CustomerID") + k * 100_000).alias("CustomerID"),
    )


def make(times: int, out: Path = OUT, csv: bool = False) -> tuple[Path, Path | None]:
    """The N-times Parquet file (and CSV), made once."""
    out.mkdir(parents=True, exist_ok=True)
    parquet = out / f"online_retail_x{times}.parquet"
    text = out / f"online_retail_x{times}.csv" if csv else None
    source = pl.scan_parquet(SOURCE)
    rows = pl.concat([copy(source, k) for k in range(times)])
    if not parquet.exists():
        rows.sink_parquet(parquet, compression="zstd", row_group_size=500_000)
    if text is not None and not text.exists():
        pl.scan_parquet(parquet).with_columns(pl.col("InvoiceDate").dt.strftime("%m/%d/%Y %H:%M")).sink_csv(text)
    return parquet, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("times", type=int)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--csv", action="store_true")
    args = parser.parse_args()
    for path in make(args.times, args.out, args.csv):
        if path is not None:
            print(f"{path} ({path.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
