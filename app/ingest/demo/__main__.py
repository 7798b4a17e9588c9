"""`python -m app.ingest.demo FULL_FILE`: rebuild the demo data set from the full export."""

import sys
from pathlib import Path

from app.ingest.demo import DEMO_FILE, build

if len(sys.argv) != 2:
    sys.exit("usage: python -m app.ingest.demo path/to/online_retail.parquet")
print(f"{build(Path(sys.argv[1])):,} lines written to {DEMO_FILE}")
