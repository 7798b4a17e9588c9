"""The baskets as the views hold them: stored key ids become ranks of the keys in code-point
order (app.metrics.analytics.key_ranks), gathered in the sales' order (app.lib.lists.gathered)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from app.lib import lists
from app.metrics.analytics import key_ranks


def test_ids_become_ranks_in_code_point_order():
    keys = pl.DataFrame({"id": [7, 3, 5], "key": ["b", "é", "A"]}, schema={"id": pl.Int32, "key": pl.String})
    lookup, by_rank = key_ranks(keys)
    assert by_rank.to_list() == ["A", "b", "é"]  # code points: A < b < é
    baskets = pl.Series("products", [[7, 3], [], [5, 7, 3]], dtype=pl.List(pl.Int32))
    ranked = lists.gathered(baskets, np.arange(3), lookup)
    assert ranked.to_list() == [[1, 2], [], [0, 1, 2]] and ranked.dtype == pl.List(pl.UInt16)


def test_more_keys_than_16_bits_hold_take_32():
    count = 2**16 + 5
    keys = pl.DataFrame({"id": np.arange(1, count + 1, dtype=np.int32), "key": [f"K{n:06}" for n in range(count)]})
    lookup, _ = key_ranks(keys)
    ranked = lists.gathered(pl.Series("products", [[count, 1]], dtype=pl.List(pl.Int32)), np.arange(1), lookup)
    assert ranked.to_list() == [[count - 1, 0]] and ranked.dtype == pl.List(pl.UInt32)


@pytest.mark.parametrize("block", [1, 2, 1000])
def test_gathered_takes_the_rows_in_order_across_blocks_and_slices(monkeypatch, block):
    monkeypatch.setattr(lists, "BLOCK_ROWS", block)
    source = pl.Series("p", [[9], [3, 1], [], [2], [0, 0, 1]], dtype=pl.List(pl.Int64)).slice(1, 4)
    out = lists.gathered(source, np.array([3, 0, 1, 3, 2]), np.array([9, 8, 7, 6], dtype=np.uint16))
    assert out.to_list() == [[9, 9, 8], [6, 8], [], [9, 9, 8], [7]] and out.name == "p"


def test_rows_in_order_whose_others_are_empty_are_gathered_without_a_copy():
    source = pl.Series("p", [[], [3, 1], [], [2], [0, 4]], dtype=pl.List(pl.UInt16))
    fast = lists.gathered(source, np.array([1, 3, 4]))
    slow = lists.gathered(source, np.array([1, 3, 4]), np.arange(5, dtype=np.uint32))  # a lookup: copied
    assert fast.to_list() == slow.to_list() == [[3, 1], [2], [0, 4]] and fast.dtype == pl.List(pl.UInt16)
    flat = fast.to_arrow().values.to_numpy()
    assert np.shares_memory(flat, source.to_arrow().values.to_numpy())  # no value copied
    out_of_order = lists.gathered(source, np.array([3, 1]))
    assert out_of_order.to_list() == [[2], [3, 1]] and out_of_order.dtype == pl.List(pl.UInt16)


@pytest.mark.parametrize("block", [1, 2, 3, 1 << 20])
def test_the_baskets_counts_in_blocks_equal_plain_python(monkeypatch, block):
    from app.metrics import products

    monkeypatch.setattr(products, "BLOCK_VALUES", block)
    baskets = [[0, 2], [], [1, 2, 3, 4], [4], [], [0, 1, 2, 3, 4], [2]]
    series = pl.Series("products", baskets, dtype=pl.List(pl.UInt16)).slice(0, 7)
    arrow = series.to_arrow()
    is_product = np.array([True, True, True, False, True])
    made = products.Baskets(
        arrow.values.to_numpy(), arrow.offsets.to_numpy(), is_product, dropped=np.array([3, 6], dtype=np.int64)
    )
    keep = np.array([True, False, True, True, True])
    kept, per_order = made._kept(keep)
    assert kept.tolist() == [keep[v] for b in baskets for v in b]
    expected = [0 if i in (3, 6) else sum(keep[v] for v in b) for i, b in enumerate(baskets)]
    assert per_order.tolist() == expected
    counts = made.holding()  # the dropped lists count nowhere (`merged` would hold their orders)
    assert counts.tolist() == [sum(r in b for i, b in enumerate(baskets) if i not in (3, 6)) for r in range(5)]
    assert made.items(keep, at_least=3).rows() == [(0, 2), (0, 3), (0, 4), (1, 0), (1, 2), (1, 3), (1, 4)]
