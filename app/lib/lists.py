"""List columns: the baskets (each invoice's product key ids) are Polars lists of integers."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl
import pyarrow as pa

BLOCK_ROWS = 1 << 16  # lists gathered at a time (their values' indexes: a few MB)


def gathered(lists: pl.Series, rows: np.ndarray, lookup: np.ndarray | None = None) -> pl.Series:
    """The lists at `rows` (in that order), each number n in them replaced by lookup[n], in
    lookup's type (without `lookup`, as they are). A block of lists at a time: Polars' own
    gather of a list column peaked at three times its size, and a NumPy index of every value at
    once takes 8 bytes a value."""
    arrow = lists.rechunk().to_arrow()
    if arrow.null_count:
        raise ValueError(f"{lists.name}: a list is null")
    offsets = arrow.offsets.to_numpy(zero_copy_only=False)  # into `values`, maybe not from 0
    values = arrow.values.to_numpy(zero_copy_only=False)
    starts = offsets[:-1][rows]
    lengths = offsets[1:][rows] - starts
    if lookup is None and _in_place(rows, lengths, offsets):
        # (the sales of a grain stored in time order: no list moves, so no value is copied)
        bounds = np.append(starts, offsets[-1]) - offsets[0]
        flat = values[offsets[0] : offsets[-1]]
        return pl.Series(lists.name, pa.LargeListArray.from_arrays(pa.array(bounds), pa.array(flat)))
    bounds = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=bounds[1:])
    out = np.empty(int(bounds[-1]), dtype=values.dtype if lookup is None else lookup.dtype)
    for lo in range(0, len(rows), BLOCK_ROWS):
        hi = min(lo + BLOCK_ROWS, len(rows))
        # each value's index in `values`: its list's start there, plus its place in the list
        index = np.repeat(starts[lo:hi] - bounds[lo:hi], lengths[lo:hi]) + np.arange(bounds[lo], bounds[hi])
        out[bounds[lo] : bounds[hi]] = values[index] if lookup is None else lookup[values[index]]
    return pl.Series(lists.name, pa.LargeListArray.from_arrays(pa.array(bounds), pa.array(out)))


def _in_place(rows: np.ndarray, lengths: np.ndarray, offsets: np.ndarray) -> bool:
    """Whether `rows` are in order and hold every value: the lists left out are all empty."""
    return bool(np.all(rows[1:] > rows[:-1])) and int(lengths.sum()) == int(offsets[-1] - offsets[0])


def mapped(name: str, parts: Iterable[pa.ListArray | pa.LargeListArray], lookup: np.ndarray) -> pl.Series:
    """The lists of `parts`, one after another, each number n in them replaced by lookup[n], in
    lookup's type; a part at a time, so that only the result is ever held whole."""
    values, lengths = [], []
    for part in parts:
        if part.null_count:
            raise ValueError(f"{name}: a list is null")
        values.append(lookup[part.flatten().to_numpy(zero_copy_only=False)])
        lengths.append(np.diff(part.offsets.to_numpy(zero_copy_only=False)))
    sizes = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    flat = np.concatenate(values) if values else lookup[:0]
    return pl.Series(name, pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat)))
