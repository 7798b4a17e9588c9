"""Product views (ANALYTICS.md R4, F5, F6), pure functions of the shapes.

A product is a stock code upper-cased (85123a is 85123A); postage, fees and vouchers are not
products (R4): their lines count in revenue, never in a product list. The basket grain
(one row per invoice and product, app/ingest/shapes.py) gives what the product grain cannot:
distinct orders and customers per product, returns, and which products share a basket.
"""

from __future__ import annotations

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
# the largest basket x product matrix counted by multiplication (more products: the join is
# quicker, as most of a wide matrix is zeros)
DENSE_BYTES, DENSE_PRODUCTS = 64 * 2**20, 400


def descriptions(ds: Dataset, filters: Filters, codes: list[str]) -> dict[str, str | None]:
    """The description of each of `codes` in the filters (R4, `descriptions_of`); None if none."""
    if not codes:
        return {}
    best = descriptions_of(shape_in(ds, "products", filters).filter(pl.col("product").is_in(codes)), [])
    found = dict(zip(best.get_column("product").to_list(), best.get_column("description").to_list(), strict=True))
    return {code: found.get(code) for code in codes}


# -- F5 ------------------------------------------------------------------------------------


def _per_product(baskets: pl.DataFrame) -> pl.DataFrame:
    """Per product with a sales line in `baskets`: its sales, orders, customers and returns."""
    rows = baskets.lazy().filter(pl.col("product").is_not_null())  # lazily: no copy of the rows
    sold = ~pl.col("cancelled")
    return (
        rows.group_by("product")
        .agg(
            pl.col("revenue_milli").filter(sold).sum().alias("milli"),
            pl.col("units").filter(sold).sum().alias("units"),
            pl.col("order_id").filter(sold).n_unique().alias("orders"),
            pl.col("customer_id").filter(sold).drop_nulls().n_unique().alias("customers"),
            (-pl.col("units").filter(~sold)).sum().alias("returned_units"),
            (-pl.col("revenue_milli").filter(~sold)).sum().alias("returned_milli"),
            sold.any().alias("sold"),
        )
        .filter(pl.col("sold"))  # a product only returned in the window is not listed
        .drop("sold")
        .collect()
    )


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
        table = _per_product(shape_in(ds, "baskets", filters))
    count, total = table.height, int(table.get_column("milli").sum() or 0)
    table = table.with_columns(
        ((pl.col("milli") + 5) // 10).alias("cents"),  # the reported revenue (sales are positive): half up
        # the reported rate (2 places) is what the list is ordered by; exact integer arithmetic
        ((pl.col("returned_units") * 10_000 * 2 + pl.col("units")) // (2 * pl.col("units"))).alias("rate_bp"),
    ).filter(pl.col("units") >= min_units)
    column = {"revenue": "cents", "units_sold": "units", "return_rate_pct": "rate_bp"}.get(by, by)
    # ties by stock code ascending in both directions (the Enum's order is the codes' order)
    ranked = table.sort([column, "product"], descending=[order == "desc", False]).head(limit)
    codes = [str(code) for code in ranked.get_column("product").to_list()]
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
            tables[filters] = _per_product(shape_in(ds, "baskets", filters))
        answers.append(products(ds, filters, by, order, limit, min_units, currency, tables[filters]))
    return answers


# -- F6 ------------------------------------------------------------------------------------


def _pair_counts(items: pl.DataFrame, keep: pl.Series | None) -> pl.DataFrame:
    """Baskets per pair (a < b) among the products `keep` (None: all) of `items` (order_id,
    product; distinct rows): a basket x product 0/1 matrix multiplied by its transpose when it is
    small (every count at once, in a few MB), else a self-join of the baskets."""
    if keep is not None:
        items = items.filter(pl.col("product").is_in(keep.implode()))
    chosen = items.get_column("product").unique().sort()  # the Enum's order: the codes' order
    size = len(chosen)
    baskets = items.get_column("order_id").n_unique() if items.height else 0
    if size < 2:
        return pl.DataFrame(
            schema={"product": items.schema["product"], "product_b": items.schema["product"], "orders": pl.UInt32}
        )
    if size <= DENSE_PRODUCTS and baskets * size * 4 <= DENSE_BYTES:
        column = {code: index for index, code in enumerate(chosen.to_physical().to_list())}
        rows = items.get_column("order_id").rank("dense").cast(pl.Int64).to_numpy() - 1
        columns = items.get_column("product").to_physical().replace_strict(column, return_dtype=pl.Int64).to_numpy()
        matrix = np.zeros((baskets, size), dtype=np.float32)
        matrix[rows, columns] = 1.0
        together = matrix.T @ matrix  # exact: whole numbers below 2**24
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
    return naive_pair_counts(items)


def naive_pair_counts(items: pl.DataFrame) -> pl.DataFrame:
    """Every pair of every basket by a self-join (the benchmark's and the tests' brute force)."""
    joined = items.join(items, on="order_id", suffix="_b").filter(
        pl.col("product").to_physical() < pl.col("product_b").to_physical()
    )
    return joined.group_by("product", "product_b").len("orders")


def _top(counts: pl.DataFrame, limit: int) -> pl.DataFrame:
    return counts.sort(["orders", "product", "product_b"], descending=[True, False, False]).head(limit)


def baskets_of(ds: Dataset, filters: Filters) -> pl.DataFrame:
    """The distinct products of each basket (a sales invoice) in the filters: (order_id, product);
    a whole country's (or all) kept with the dataset version, as the product pages reuse it."""

    def build() -> pl.DataFrame:
        sold = ~pl.col("cancelled") & pl.col("product").is_not_null()
        # lazily: the filter copies the two columns only
        rows = shape_in(ds, "baskets", filters).lazy().filter(sold).select("order_id", "product")
        return rows.unique().collect()

    if filters.start is None and filters.end is None:
        country = ds.country(filters.country) if filters.country is not None else None
        return ds.derived("basket_products", country, build)
    return build()


def top_pairs(items: pl.DataFrame, limit: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The `limit` pairs in most baskets, exactly, without counting every pair (F6's two passes):

    1. count the pairs among the PRUNE_FROM most-bought products; c = the limit-th best count
       (1 if there are fewer pairs);
    2. count the pairs among the products in at least c baskets, and take the best `limit`.

    Exact: every pair of the first pass is in at least c baskets, so the true top `limit` are
    in at least c baskets each, and a pair in c baskets needs both its products in c baskets.
    Returns the pairs (product, product_b, orders) and each product's basket count."""
    per_product = items.group_by("product").len("baskets")
    if items.is_empty():
        return pl.DataFrame(
            schema={"product": items.schema["product"], "product_b": items.schema["product"], "orders": pl.UInt32}
        ), per_product
    most = per_product.sort(["baskets", "product"], descending=[True, False]).head(PRUNE_FROM)
    first = _top(_pair_counts(items, most.get_column("product")), limit)
    threshold = int(first.get_column("orders")[-1]) if first.height >= limit else 1
    candidates = per_product.filter(pl.col("baskets") >= threshold).get_column("product")
    return _top(_pair_counts(items, candidates), limit), per_product


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
    items = baskets_of(ds, filters)
    baskets = items.get_column("order_id").n_unique() if items.height else 0
    pairs, per_product = top_pairs(items, limit)
    with_product = dict(
        zip(per_product.get_column("product").to_list(), per_product.get_column("baskets").to_list(), strict=True)
    )
    rows = pairs.rows()
    described = descriptions(ds, filters, sorted({str(code) for a, b, _ in rows for code in (a, b)}))
    result = []
    for rank, (a, b, together) in enumerate(rows, start=1):
        with_a, with_b = with_product[a], with_product[b]
        result.append(_pair(rank, str(a), str(b), together, with_a, with_b, baskets, described))
    return ProductPairs(currency=currency, limit=limit, baskets=baskets, items=result)


# -- one product -----------------------------------------------------------------------------


class UnknownProduct(MetricsError):
    status_code = 404

    def __init__(self, code: str) -> None:
        super().__init__(f"unknown product {code!r}: no sales or cancellation line has this stock code")
        self.code = code


def _codes(ds: Dataset) -> frozenset[str]:
    return ds.derived("codes", None, lambda: frozenset(ds.baskets.schema["code"].categories.to_list()))  # type: ignore[attr-defined]  # an Enum's categories


def product(ds: Dataset, filters: Filters, stock_code: str, currency: str) -> ProductDetail:
    """A product's figures in the filters: sales, returns, months, countries, its descriptions
    and the products bought with it; for a postage or fee code, what it brought in."""
    key = stock_code.strip().upper()
    if key not in _codes(ds):
        raise UnknownProduct(stock_code)
    rows = shape_in(ds, "baskets", filters).filter(pl.col("code") == key)
    is_product = is_product_key(key)
    sold = rows.filter(~pl.col("cancelled"))
    returned = rows.filter(pl.col("cancelled"))
    milli, units, orders, customers = sold.select(
        pl.col("revenue_milli").sum(),
        pl.col("units").sum(),
        pl.col("order_id").n_unique(),
        pl.col("customer_id").drop_nulls().n_unique(),
    ).row(0)
    milli, units = int(milli or 0), int(units or 0)
    back_units, back_milli = returned.select(-pl.col("units").sum(), -pl.col("revenue_milli").sum()).row(0)
    back_units, back_milli = int(back_units or 0), int(back_milli or 0)
    months = sold.group_by(pl.col("day").dt.month_start().alias("period")).agg(
        pl.col("revenue_milli").sum(), pl.col("units").sum(), pl.col("order_id").n_unique()
    )
    span = window(ds, filters)
    countries = (
        sold.group_by("country")
        .agg(
            pl.col("revenue_milli").sum().alias("milli"),
            pl.col("units").sum(),
            pl.col("order_id").n_unique().alias("orders"),
            pl.col("customer_id").drop_nulls().n_unique().alias("customers"),
        )
        .with_columns(pl.col("country").cast(pl.String))
        .sort(["milli", "country"], descending=[True, False])
        .head(10)
    )
    texts = (
        shape_in(ds, "products", filters)
        .filter((pl.col("code") == key) & pl.col("description").is_not_null())
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
        series=_points(sorted(months.rows()), "month", span),
        countries=[
            ProductCountry(country=c, revenue=money(m), units_sold=u, orders=o, customers=n)
            for c, m, u, o, n in countries.rows()
        ],
        bought_with=_bought_with(ds, filters, key) if is_product else [],
    )


def _bought_with(ds: Dataset, filters: Filters, key: str, limit: int = 10) -> list[Pair]:
    """The pairs that hold `key`, with F6's measures: the products in most of its baskets."""
    items = baskets_of(ds, filters)
    mine = items.filter(pl.col("product") == key).get_column("order_id")
    if mine.is_empty():
        return []
    shared = items.filter(pl.col("order_id").is_in(mine.implode()) & (pl.col("product") != key))
    others = shared.group_by("product").len("orders").sort(["orders", "product"], descending=[True, False]).head(limit)
    if others.is_empty():
        return []
    wanted = [key, *(str(code) for code in others.get_column("product").to_list())]
    counts = dict(
        items.filter(pl.col("product").is_in(wanted))
        .group_by("product")
        .len("n")
        .with_columns(pl.col("product").cast(pl.String))
        .rows()
    )
    baskets = items.get_column("order_id").n_unique()
    described = descriptions(ds, filters, wanted)
    pairs = []
    for rank, (other, together) in enumerate(others.rows(), start=1):
        a, b = sorted((key, str(other)))
        with_a, with_b = counts[a], counts[b]
        pairs.append(_pair(rank, a, b, together, with_a, with_b, baskets, described))
    return pairs
