"""The baskets as the views hold them: stored key ids become ranks of the keys in code-point
order (app.metrics.analytics._key_ranks), gathered in the sales' order (app.lib.lists.gathered)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from app.lib import lists
from app.metrics.analytics import _key_ranks


def test_ids_become_ranks_in_code_point_order():
    keys = pl.DataFrame({"id": [7, 3, 5], "key": ["b", "é", "A"]}, schema={"id": pl.Int32, "key": pl.String})
    lookup, by_rank = _key_ranks(keys)
    assert by_rank.to_list() == ["A", "b", "é"]  # code points: A < b < é
    baskets = pl.Series("products", [[7, 3], [], [5, 7, 3]], dtype=pl.List(pl.Int32))
    ranked = lists.gathered(baskets, np.arange(3), lookup)
    assert ranked.to_list() == [[1, 2], [], [0, 1, 2]] and ranked.dtype == pl.List(pl.UInt16)


def test_more_keys_than_16_bits_hold_take_32():
    count = 2**16 + 5
    keys = pl.DataFrame({"id": np.arange(1, count + 1, dtype=np.int32), "key": [f"K{n:06}" for n in range(count)]})
    lookup, _ = _key_ranks(keys)
    ranked = lists.gathered(pl.Series("products", [[count, 1]], dtype=pl.List(pl.Int32)), np.arange(1), lookup)
    assert ranked.to_list() == [[count - 1, 0]] and ranked.dtype == pl.List(pl.UInt32)


@pytest.mark.parametrize("block", [1, 2, 1000])
def test_gathered_takes_the_rows_in_order_across_blocks_and_slices(monkeypatch, block):
    monkeypatch.setattr(lists, "BLOCK_ROWS", block)
    source = pl.Series("p", [[9], [3, 1], [], [2], [0, 0, 1]], dtype=pl.List(pl.Int64)).slice(1, 4)
    out = lists.gathered(source, np.array([3, 0, 1, 3, 2]), np.array([9, 8, 7, 6], dtype=np.uint16))
    assert out.to_list() == [[9, 9, 8], [6, 8], [], [9, 9, 8], [7]] and out.name == "p"
