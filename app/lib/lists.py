"""List columns: the baskets (each invoice's product key ids) are Polars lists of integers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa


def renumbered(lists: pl.Series, lookup: np.ndarray) -> pl.Series:
    """`lists` (lists of small non-negative integers, none null) with each number n replaced by
    lookup[n], in lookup's type, the lists' bounds kept: one gather over the flat values
    (an element-wise replace in Polars took seconds at 50x)."""
    arrow = lists.rechunk().to_arrow()
    if arrow.null_count:
        raise ValueError(f"{lists.name}: a list is null")
    values = np.asarray(arrow.values.to_numpy(zero_copy_only=False), dtype=np.intp)
    rebuilt = type(arrow).from_arrays(arrow.offsets, pa.array(lookup[values]))
    return pl.Series(lists.name, rebuilt)
