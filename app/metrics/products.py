"""Product views (ANALYTICS.md R4, F5, F6), pure functions of the shapes.

A product is a stock code upper-cased (85123a is 85123A); postage, fees and vouchers are not
products (R4): their lines count in revenue, never in a product list. Sales come from the
product grain, returns from the returns grain, and what the product grain cannot give from the
baskets (each sales invoice's distinct product keys, as ranks in `Dataset.keys`): distinct
orders and customers per product, and which products share a basket.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import pairwise
from typing import get_args

import numpy as np
import polars as pl

from app.metrics.analytics import (
    LIMIT_RANGE,
    ORDERS,
    Dataset,
    Filters,
    MetricsError,
    _one_of,
    _points,
    descriptions_of,
    in_range,
    is_product_key,
    money,
    ratio2,
    shape_in,
    window,
)
from app.metrics.schemas import (
    Pair,
    ProductBy,
    ProductCountry,
    ProductDescription,
    ProductDetail,
    ProductPairs,
    ProductRow,
    Products,
)

PRODUCT_BY: tuple[ProductBy, ...] = get_args(ProductBy)
MAX_MIN_UNITS = 10**9
PRUNE_FROM = 50  # F6's first pass: the pairs among this many most-bought products
# the largest basket x product matrix counted by multiplication at once (more baskets: in
# blocks; more products: the join is quicker, as most of a wide matrix is zeros)
DENSE_BYTES, DENSE_PRODUCTS = 64 * 2**20, 400
BLOCK_VALUES = 1 << 20  # the baskets' values counted at a time
INVOICES_PER_PART = 250_000  # F5 counts the customers of this many invoices' rows at a time
FLAT = {"keep_nulls": False, "empty_as_null": False}  # a list column's values, one per row, no more


def descriptions(ds: Dataset, filters: Filters, codes: list[str]) -> dict[str, str | None]:
    """The description of each of `codes` in the filters (R4, `descriptions_of`); None if none."""
    if not codes:
        return {}
    best = descriptions_of(shape_in(ds, "products", filters).filter(pl.col("product").is_in(codes)), [])
    found = dict(zip(best.get_column("product").to_list(), best.get_column("description").to_list(), strict=True))
    return {code: found.get(code) for code in codes}


@dataclass(frozen=True)
class Baskets:
    """Each order's distinct keys (ranks in `Dataset.keys`), flat and in place: list i is
    values[offsets[i]:offsets[i + 1]] (at 50x a row per order and key, or a copy of the lists,
    took hundreds of MB). An order over two rows (an invoice's lines at two timestamps or for
    two customers: rare) is one basket: its rows' lists are left out (`dropped`) and their union
    is one list of `merged`."""

    values: np.ndarray
    offsets: np.ndarray
    is_product: np.ndarray  # per rank
    dropped: np.ndarray  # the indexes of the lists that are not baskets of their own
    merged: Baskets | None = None

    @classmethod
    def of(cls, ds: Dataset, rows: pl.DataFrame) -> Baskets:
        """The orders of `rows` (rows of `ds.baskets`)."""
        whole = cls.of_lists(ds, rows.get_column("products"))
        twice = rows.get_column("order_id").is_duplicated()
        if not twice.any():
            return whole
        merged = rows.filter(twice).group_by("order_id").agg(pl.col("products").list.explode(**FLAT).unique())
        return replace(whole, dropped=np.flatnonzero(twice.to_numpy()), merged=cls.of_lists(ds, merged["products"]))

    @classmethod
    def of_lists(cls, ds: Dataset, lists: pl.Series) -> Baskets:
        """`lists` of ranks, each without repeats, one per basket (no copy of them)."""
        arrow = lists.rechunk().to_arrow()
        values = arrow.values.to_numpy(zero_copy_only=False)
        offsets = arrow.offsets.to_numpy(zero_copy_only=False)
        return cls(values, offsets, ds.key_is_product.to_numpy(), np.zeros(0, dtype=np.int64))

    @property
    def _flat(self) -> np.ndarray:
        return self.values[self.offsets[0] : self.offsets[-1]]

    def holding(self) -> np.ndarray:
        """Per rank, how many orders hold it."""
        flat, counts = self._flat, np.zeros(len(self.is_product), dtype=np.int64)
        for lo in range(0, len(flat), BLOCK_VALUES):  # (bincount makes its input 64-bit: a block at a time)
            counts += np.bincount(flat[lo : lo + BLOCK_VALUES], minlength=len(counts))
        if len(self.dropped):
            starts, ends = self.offsets[self.dropped], self.offsets[self.dropped + 1]
            left_out = np.concatenate([self.values[lo:hi] for lo, hi in zip(starts, ends, strict=True)])
            counts -= np.bincount(left_out, minlength=len(counts))
        if self.merged is not None:
            counts += self.merged.holding()
        return counts

    def _kept(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whether each value's rank is kept (`keep`: a flag per rank), and how many are, per
        list (0 for a dropped one); a block of values at a time (an index or a sum over all at
        once takes 8 bytes a value)."""
        flat, offsets = self._flat, self.offsets - self.offsets[0]
        kept = np.empty(len(flat), dtype=bool)
        per_order = np.zeros(len(offsets) - 1, dtype=np.uint32)
        starts = np.searchsorted(offsets, np.arange(0, len(flat), BLOCK_VALUES))  # a block's first list
        for first, last in pairwise([*starts.tolist(), len(offsets) - 1]):  # lists [first, last)
            if first == last:
                continue
            lo, hi = offsets[first], offsets[last]
            kept[lo:hi] = keep[flat[lo:hi]]
            running = np.zeros(hi - lo + 1, dtype=np.uint32)
            np.cumsum(kept[lo:hi], out=running[1:])
            per_order[first:last] = running[offsets[first + 1 : last + 1] - lo] - running[offsets[first:last] - lo]
        per_order[self.dropped] = 0
        return kept, per_order

    def holding_any(self, keep: np.ndarray) -> np.ndarray:
        """Per list, whether it holds a kept rank (`keep`: a flag per rank)."""
        return self._kept(keep)[1] > 0

    def items(self, keep: np.ndarray, at_least: int = 1) -> pl.DataFrame:
        """(basket, product) of each kept rank (`keep`: a flag per rank) in the orders with at
        least `at_least` of them, numbered from 0 in order; only those values are copied."""
        kept, per_order = self._kept(keep)
        chosen = per_order >= at_least
        if at_least > 1 or len(self.dropped):
            kept &= np.repeat(chosen, np.diff(self.offsets))
        found = int(np.count_nonzero(chosen))
        basket = np.repeat(np.arange(found, dtype=np.uint32), per_order[chosen])
        items = pl.DataFrame({"basket": basket, "product": self._flat[kept]})
        if self.merged is None:
            return items
        more = self.merged.items(keep, at_least).with_columns(pl.col("basket") + found)
        return pl.concat([items, more])

    def count(self) -> int:
        """The baskets: the orders with a product (an order of postage alone is none)."""
        more = self.merged.count() if self.merged is not None else 0
        return int(np.count_nonzero(self._kept(self.is_product)[1])) + more


def _keyed(ds: Dataset, counts: np.ndarray, name: str) -> pl.DataFrame:
    """(product, `name`) for each key with a count above 0."""
    ranks = np.flatnonzero(counts)
    return pl.DataFrame({"product": ds.keys.gather(ranks), name: counts[ranks]})


@dataclass(frozen=True)
class BasketCounts:
    """The baskets in some filters: how many hold each rank (`holding`), and how many hold a product."""

    holding: np.ndarray
    baskets: int


def basket_counts(ds: Dataset, filters: Filters) -> BasketCounts:
    """The orders holding each key, and the baskets in the filters, for the product pages'
    pairs; a whole country's (or all) kept with the dataset version, as every product page
    reads them."""

    def build() -> BasketCounts:
        baskets = Baskets.of(ds, shape_in(ds, "baskets", filters))
        return BasketCounts(baskets.holding(), baskets.count())

    if filters.start is None and filters.end is None:
        country = ds.country(filters.country) if filters.country is not None else None
        return ds.derived("basket_counts", country, build)
    return build()


# -- F5 ------------------------------------------------------------------------------------


def _per_product(ds: Dataset, filters: Filters) -> pl.DataFrame:
    """Per product with a sales line in the filters: its sales, orders, customers and returns."""
    sold = (
        shape_in(ds, "products", filters)
        .lazy()
        .filter(pl.col("product").is_not_null())
        .group_by("product")
        .agg(pl.col("revenue_milli").sum().alias("milli"), pl.col("units").sum())
    )
    rows = shape_in(ds, "baskets", filters)
    orders = Baskets.of(ds, rows).holding()
    # per customer first: their distinct products, then how many customers hold each; a share
    # of the customers at a time (at 50x, all at once took 100 MB more)
    parts = max(1, rows.height // INVOICES_PER_PART)
    customers = sum(
        (
            Baskets.of_lists(ds, _products_of_customers(rows, pl.col("customer_id") % parts == part)).holding()
            for part in range(parts)
        ),
        start=np.zeros(len(ds.keys), dtype=np.int64),
    )
    returned = (
        shape_in(ds, "returns", filters)
        .lazy()
        .filter(pl.col("product").is_not_null())
        .group_by("product")
        .agg(pl.col("units").sum().alias("returned_units"), pl.col("revenue_milli").sum().alias("returned_milli"))
    )
    return (
        sold.join(_keyed(ds, orders, "orders").lazy(), on="product", how="left")
        .join(_keyed(ds, customers, "customers").lazy(), on="product", how="left")
        .join(returned, on="product", how="left")
        .with_columns(pl.col("customers", "returned_units", "returned_milli").fill_null(0))
        .collect()
    )


def _products_of_customers(rows: pl.DataFrame, which: pl.Expr) -> pl.Series:
    """Each customer's distinct keys over `rows` (rows of `ds.baskets`), for the customers `which` picks."""
    by_customer = (
        rows.lazy().filter(which).group_by("customer_id").agg(pl.col("products").list.explode(**FLAT).unique())
    )
    return by_customer.collect().get_column("products")


def products(
    ds: Dataset,
    filters: Filters,
    by: str,
    order: str,
    limit: int,
    min_units: int,
    currency: str,
    table: pl.DataFrame | None = None,
) -> Products:
    """F5: the products in the filters ranked by `by`, with their returns (`table`: the
    filters' per-product table, when the caller has it already)."""
    _one_of("by", by, PRODUCT_BY)
    _one_of("order", order, ORDERS)
    in_range("limit", limit, LIMIT_RANGE)
    in_range("min_units", min_units, (0, MAX_MIN_UNITS))
    if table is None:
        table = _per_product(ds, filters)
    count, total = table.height, int(table.get_column("milli").sum() or 0)
    table = table.with_columns(
        ((pl.col("milli") + 5) // 10).alias("cents"),  # the reported revenue (sales are positive): half up
        # the reported rate (2 places) is what the list is ordered by; exact integer arithmetic
        ((pl.col("returned_units") * 10_000 * 2 + pl.col("units")) // (2 * pl.col("units"))).alias("rate_bp"),
    ).filter(pl.col("units") >= min_units)
    column = {"revenue": "cents", "units_sold": "units", "return_rate_pct": "rate_bp"}.get(by, by)
    # ties by stock code ascending in both directions (code-point order)
    ranked = table.sort([column, "product"], descending=[order == "desc", False]).head(limit)
    codes = ranked.get_column("product").to_list()
    described = descriptions(ds, filters, codes)
    items = [
        ProductRow(
            rank=rank,
            stock_code=code,
            description=described[code],
            revenue=money(row["milli"]),
            units_sold=row["units"],
            orders=row["orders"],
            customers=row["customers"],
            revenue_share_pct=ratio2(100 * row["milli"], total) if total else None,
            returned_units=row["returned_units"],
            returned_revenue=money(row["returned_milli"]),
            return_rate_pct=ratio2(100 * row["returned_units"], row["units"]) if row["units"] else None,
        )
        for rank, (code, row) in enumerate(zip(codes, ranked.iter_rows(named=True), strict=True), start=1)
    ]
    return Products(
        currency=currency,
        by=by,  # type: ignore[arg-type]  # checked against PRODUCT_BY
        order=order,  # type: ignore[arg-type]  # checked against ORDERS
        limit=limit,
        min_units=min_units,
        products=count,
        revenue=money(total),
        items=items,
    )


def many_products(ds: Dataset, sets: list[tuple[Filters, str, str, int, int]], currency: str) -> list[Products]:
    """F5 for several parameter sets (what a refresh precomputes): one per-product table per filters."""
    tables: dict[Filters, pl.DataFrame] = {}
    answers = []
    for filters, by, order, limit, min_units in sets:
        if filters not in tables:
            tables[filters] = _per_product(ds, filters)
        answers.append(products(ds, filters, by, order, limit, min_units, currency, tables[filters]))
    return answers


# -- F6 ------------------------------------------------------------------------------------


def baskets_of(ds: Dataset, filters: Filters) -> pl.DataFrame:
    """The distinct products of each basket in the filters: (basket, product), a basket
    numbered from 0, a product as its rank in `ds.keys` (the tests' and the benchmark's
    brute force reads it)."""
    return Baskets.of(ds, shape_in(ds, "baskets", filters)).items(ds.key_is_product.to_numpy())


def _pair_counts(items: pl.DataFrame) -> pl.DataFrame:
    """Baskets per pair (a < b) of `items` (basket, product; distinct rows, the baskets
    numbered from 0 in order, as `Baskets.items` gives them): a basket x product 0/1 matrix
    multiplied by its transpose, in blocks of baskets of a few MB (every count at once), while
    the products are few; else a self-join of the baskets."""
    kind = items.schema["product"]
    chosen = items.get_column("product").unique().sort()
    size = len(chosen)
    if size < 2:
        return pl.DataFrame(schema={"product": kind, "product_b": kind, "orders": pl.UInt32})
    if size > DENSE_PRODUCTS:
        return naive_pair_counts(items)
    rows = items.get_column("basket").to_numpy()
    lookup = np.zeros(int(chosen.max()) + 1, dtype=np.int32)  # type: ignore[arg-type]  # an integer column's max
    lookup[chosen.to_numpy()] = np.arange(size, dtype=np.int32)
    columns = lookup[items.get_column("product").to_numpy()]
    together = np.zeros((size, size), dtype=np.float64)
    block = max(1, DENSE_BYTES // (4 * size))  # baskets per block
    baskets = int(rows[-1]) + 1 if len(rows) else 0
    bounds = np.searchsorted(rows, np.arange(0, baskets + block, block))  # rows are sorted by basket
    for first, lo, hi in zip(range(0, baskets, block), bounds[:-1], bounds[1:], strict=False):
        matrix = np.zeros((min(block, baskets - first), size), dtype=np.float32)
        matrix[rows[lo:hi] - first, columns[lo:hi]] = 1.0
        together += matrix.T @ matrix  # exact: each block's counts are whole numbers below 2**24
    a, b = np.triu_indices(size, 1)
    counts = together[a, b].astype(np.int64)
    found = counts > 0
    return pl.DataFrame(
        {
            "product": chosen.gather(a[found]),
            "product_b": chosen.gather(b[found]),
            "orders": counts[found].astype(np.uint32),
        }
    )


def naive_pair_counts(items: pl.DataFrame) -> pl.DataFrame:
    """Every pair of every basket by a self-join (the benchmark's and the tests' brute force)."""
    joined = items.join(items, on="basket", suffix="_b").filter(pl.col("product") < pl.col("product_b"))
    return joined.group_by("product", "product_b").len("orders").with_columns(pl.col("orders").cast(pl.UInt32))


def _top(counts: pl.DataFrame, limit: int) -> pl.DataFrame:
    return counts.sort(["orders", "product", "product_b"], descending=[True, False, False]).head(limit)


def top_pairs(baskets: Baskets, limit: int) -> tuple[pl.DataFrame, np.ndarray]:
    """The `limit` pairs in most baskets, exactly, without counting every pair (F6's two passes):

    1. count the pairs among the PRUNE_FROM most-bought products; c = the limit-th best count
       (1 if there are fewer pairs);
    2. count the pairs among the products in at least c baskets, and take the best `limit`.

    Exact: every pair of the first pass is in at least c baskets, so the true top `limit` are
    in at least c baskets each, and a pair in c baskets needs both its products in c baskets.
    Returns the pairs (product, product_b, orders) and each rank's basket count (0 for a fee)."""
    holding = np.where(baskets.is_product, baskets.holding(), 0)
    ranks = np.flatnonzero(holding)
    most = np.zeros(len(holding), dtype=bool)
    most[ranks[np.lexsort((ranks, -holding[ranks]))][:PRUNE_FROM]] = True  # most baskets, ties by code
    # (only baskets with two of the products can hold a pair)
    first = _top(_pair_counts(baskets.items(most, at_least=2)), limit)
    threshold = int(first.get_column("orders")[-1]) if first.height >= limit else 1
    return _top(_pair_counts(baskets.items(holding >= max(threshold, 1), at_least=2)), limit), holding


def _pair(
    rank: int, a: str, b: str, together: int, with_a: int, with_b: int, baskets: int, described: dict[str, str | None]
) -> Pair:
    """A pair's row with F6's measures (2 places)."""
    return Pair(
        rank=rank,
        stock_code_a=a,
        description_a=described[a],
        stock_code_b=b,
        description_b=described[b],
        orders=together,
        orders_with_a=with_a,
        orders_with_b=with_b,
        support_pct=ratio2(100 * together, baskets),
        confidence_a_to_b_pct=ratio2(100 * together, with_a),
        confidence_b_to_a_pct=ratio2(100 * together, with_b),
        lift=ratio2(together * baskets, with_a * with_b),
    )


def product_pairs(ds: Dataset, filters: Filters, limit: int, currency: str) -> ProductPairs:
    """F6: the pairs of products bought together in the most baskets, with support, confidence
    both ways and lift."""
    in_range("limit", limit, LIMIT_RANGE)
    orders = Baskets.of(ds, shape_in(ds, "baskets", filters))
    baskets = orders.count()
    pairs, holding = top_pairs(orders, limit)
    rows = [(ds.keys[a], ds.keys[b], together, int(holding[a]), int(holding[b])) for a, b, together in pairs.rows()]
    described = descriptions(ds, filters, sorted({code for a, b, *_ in rows for code in (a, b)}))
    result = [_pair(rank, *row, baskets, described) for rank, row in enumerate(rows, start=1)]
    return ProductPairs(currency=currency, limit=limit, baskets=baskets, items=result)


# -- one product -----------------------------------------------------------------------------


class UnknownProduct(MetricsError):
    status_code = 404

    def __init__(self, code: str) -> None:
        super().__init__(f"unknown product {code!r}: no sales or cancellation line has this stock code")
        self.code = code


def _codes(ds: Dataset) -> frozenset[str]:
    """The keys of every sales and cancellation line."""

    def build() -> frozenset[str]:
        return frozenset(ds.products.get_column("code").unique().to_list()) | frozenset(
            ds.returns.get_column("code").unique().to_list()
        )

    return ds.derived("codes", None, build)


def _holding(ds: Dataset, rows: pl.DataFrame, rank: int) -> pl.Series:
    """Per row of `rows` (rows of `ds.baskets`), whether its list holds the key of `rank`."""
    wanted = np.zeros(len(ds.keys), dtype=bool)
    wanted[rank] = True
    return pl.Series(Baskets.of_lists(ds, rows.get_column("products")).holding_any(wanted))


def product(ds: Dataset, filters: Filters, stock_code: str, currency: str) -> ProductDetail:
    """A product's figures in the filters: sales, returns, months, countries, its descriptions
    and the products bought with it; for a postage or fee code, what it brought in."""
    key = stock_code.strip().upper()
    if key not in _codes(ds):
        raise UnknownProduct(stock_code)
    is_product = is_product_key(key)
    sold = shape_in(ds, "products", filters).filter(pl.col("code") == key)
    rank = int(ds.keys.search_sorted(key))  # (a key with sales lines only; else no basket holds it)
    holding = rank < len(ds.keys) and ds.keys[rank] == key
    baskets = shape_in(ds, "baskets", filters)
    mine = baskets.filter(_holding(ds, baskets, rank)) if holding else baskets.clear()
    returned = shape_in(ds, "returns", filters).filter(pl.col("code") == key)
    milli, units = (
        int(value or 0) for value in sold.select(pl.col("revenue_milli").sum(), pl.col("units").sum()).row(0)
    )
    back_units, back_milli = (
        int(value or 0) for value in returned.select(pl.col("units").sum(), pl.col("revenue_milli").sum()).row(0)
    )
    orders, customers = mine.select(pl.col("order_id").n_unique(), pl.col("customer_id").drop_nulls().n_unique()).row(0)
    months = (
        sold.group_by(pl.col("day").dt.month_start().alias("period"))
        .agg(pl.col("revenue_milli").sum(), pl.col("units").sum())
        .join(
            mine.group_by(pl.col("month").alias("period")).agg(pl.col("order_id").n_unique().alias("orders")),
            on="period",
            how="left",
        )
        .with_columns(pl.col("orders").fill_null(0))
    )
    countries = (
        sold.group_by("country")
        .agg(pl.col("revenue_milli").sum().alias("milli"), pl.col("units").sum())
        .join(
            mine.group_by("country").agg(
                pl.col("order_id").n_unique().alias("orders"),
                pl.col("customer_id").drop_nulls().n_unique().alias("customers"),
            ),
            on="country",
            how="left",
        )
        .with_columns(pl.col("country").cast(pl.String), pl.col("orders", "customers").fill_null(0))
        .sort(["milli", "country"], descending=[True, False])
        .head(10)
        .select("country", "milli", "units", "orders", "customers")
    )
    texts = (
        sold.filter(pl.col("description").is_not_null())
        .group_by("description")
        .agg(pl.col("lines").sum())
        .sort(["lines", "description"], descending=[True, False])
        .head(5)
    )
    descriptions_found = [ProductDescription(description=d, lines=n) for d, n in texts.rows()]
    return ProductDetail(
        currency=currency,
        stock_code=key,
        is_product=is_product,
        description=descriptions_found[0].description if descriptions_found else None,
        descriptions=descriptions_found,
        revenue=money(milli),
        units_sold=units,
        orders=orders or 0,
        customers=customers or 0,
        returned_units=back_units,
        returned_revenue=money(back_milli),
        return_rate_pct=ratio2(100 * back_units, units) if units else None,
        series=_points(
            sorted(months.select("period", "revenue_milli", "units", "orders").rows()), "month", window(ds, filters)
        ),
        countries=[
            ProductCountry(country=c, revenue=money(m), units_sold=u, orders=o, customers=n)
            for c, m, u, o, n in countries.rows()
        ],
        bought_with=_bought_with(ds, filters, baskets, mine, rank) if is_product and holding else [],
    )


def _bought_with(
    ds: Dataset, filters: Filters, baskets: pl.DataFrame, mine: pl.DataFrame, rank: int, limit: int = 10
) -> list[Pair]:
    """The pairs that hold the key of `rank` (`mine`: the rows of `baskets` that hold it), with
    F6's measures: the products in most of its baskets."""
    orders = baskets.filter(pl.col("order_id").is_in(mine.get_column("order_id").implode()))  # their every row
    together = Baskets.of(ds, orders).holding()
    together[rank] = 0
    together[~ds.key_is_product.to_numpy()] = 0
    others = [int(r) for r in np.lexsort((np.arange(len(together)), -together))[:limit] if together[r]]
    if not others:
        return []
    counts = basket_counts(ds, filters)
    described = descriptions(ds, filters, [ds.keys[r] for r in [rank, *others]])
    pairs = []
    for place, other in enumerate(others, start=1):
        a, b = sorted((rank, other))  # ranks are in code-point order
        with_a, with_b = int(counts.holding[a]), int(counts.holding[b])
        pairs.append(
            _pair(place, ds.keys[a], ds.keys[b], int(together[other]), with_a, with_b, counts.baskets, described)
        )
    return pairs
