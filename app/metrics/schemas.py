"""The shapes of every figure, with the field names of METRICS.md (the JSON contract), and how
OpenAPI describes the ones its formats do not (a local time)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from litestar.openapi.spec import OpenAPIType, Schema

# The shop's local time, as the export has it: no time zone (OpenAPI's date-time would need one).
_LOCAL = "Local time of the shop, YYYY-MM-DDTHH:MM:SS, no time zone (as in the export)"
_LOCAL_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$"
LocalTime = Annotated[
    datetime,
    msgspec.Meta(description=_LOCAL, extra_json_schema={"extra": {"format": None, "pattern": _LOCAL_PATTERN}}),
]
MaybeLocalTime = Annotated[
    datetime | None,
    msgspec.Meta(
        description=_LOCAL + "; null when there is none",
        extra_json_schema={
            "extra": {
                "one_of": [
                    Schema(type=OpenAPIType.STRING, pattern=_LOCAL_PATTERN),
                    Schema(type=OpenAPIType.NULL),
                ]
            }
        },
    ),
]
Freq = Literal["day", "week", "month", "year"]
RankBy = Literal["revenue", "units_sold", "orders", "customers"]
ProductBy = Literal["revenue", "units_sold", "orders", "customers", "return_rate_pct"]
Order = Literal["desc", "asc"]
# the page's sortable columns; a leading "-" sorts that column the other way (largest, newest first)
LineSort = Literal[
    "invoice_date",
    "-invoice_date",
    "quantity",
    "-quantity",
    "unit_price",
    "-unit_price",
    "line_revenue",
    "-line_revenue",
]


class Filters(msgspec.Struct, frozen=True):
    """The filters every metric takes; `country` as given (matched case-insensitively)."""

    start: date | None = None
    end: date | None = None
    country: str | None = None


Compare = Literal["none", "previous_period", "previous_year"]


class PeriodKpis(msgspec.Struct):
    """The KPI fields of one window (the previous one of a comparison)."""

    revenue: float
    units_sold: int
    orders: int
    customers: int
    average_order_value: float | None
    units_per_order: float | None
    cancelled_orders: int
    cancelled_revenue: float
    first_sale: MaybeLocalTime
    last_sale: MaybeLocalTime


class Change(msgspec.Struct):
    """current - previous (of the reported values), and that as a percentage of previous."""

    # a whole number for counts, 2 places for amounts; one JSON "number" type for both (a
    # schema of integer-or-number would match a count twice, which `oneOf` refuses)
    abs: float | None
    pct: float | None


class Comparison(msgspec.Struct):
    """ANALYTICS.md F1: the two windows, the previous window's KPIs and the change of each."""

    mode: Compare
    start: date
    end: date
    previous_start: date
    previous_end: date
    previous: PeriodKpis
    change: dict[str, Change]


class Kpis(msgspec.Struct):
    currency: str
    revenue: float
    units_sold: int
    orders: int
    customers: int
    average_order_value: float | None
    units_per_order: float | None
    cancelled_orders: int
    cancelled_revenue: float
    first_sale: MaybeLocalTime
    last_sale: MaybeLocalTime
    comparison: Comparison | None = None  # null unless `compare` asks for one (F1)


class SeriesPoint(msgspec.Struct):
    period: date
    revenue: float
    units_sold: int
    orders: int
    growth_pct: float | None
    # the window (the filters, or the data where a date is omitted) covers only part of this
    # period: the first or last point, e.g. December 2011 (9 days) or the year 2010 (one month)
    partial: bool = False


class Series(msgspec.Struct):
    currency: str
    freq: Freq
    points: list[SeriesPoint]


class CountryRow(msgspec.Struct):
    rank: int
    country: str
    revenue: float
    units_sold: int
    orders: int
    customers: int
    revenue_share_pct: float | None


class TopCountries(msgspec.Struct):
    currency: str
    by: RankBy
    order: Order
    limit: int
    items: list[CountryRow]


class Product(msgspec.Struct):
    stock_code: str
    description: str | None
    revenue: float
    units_sold: int


class CountryDetail(msgspec.Struct):
    country: str
    rank: int | None  # None when the country has no sales in the filters
    kpis: Kpis
    series: list[SeriesPoint]
    top_products: list[Product]


class Line(msgspec.Struct):
    invoice_no: str
    stock_code: str
    description: str | None
    quantity: int
    invoice_date: LocalTime
    unit_price: float
    customer_id: int | None
    country: str
    line_revenue: float


class Page(msgspec.Struct):
    items: list[Line]
    page: int
    size: int
    total: int
    pages: int
    next_after: int | None = None  # the `after` of the next page's link (None on the last page)


class CustomerMonth(msgspec.Struct):
    """One month of ANALYTICS.md F2: its part of the window, who bought, who was new there."""

    period: date
    customers: int
    new_customers: int
    returning_customers: int
    new_customer_revenue: float
    returning_customer_revenue: float


class Customers(msgspec.Struct):
    """ANALYTICS.md F2 (identified customers only: guests have no history)."""

    currency: str
    customers: int
    new_customers: int
    returning_customers: int
    returning_customer_pct: float | None
    repeat_customers: int
    repeat_purchase_rate_pct: float | None
    multi_order_customers: int
    multi_order_customer_rate_pct: float | None
    orders_per_customer: float | None
    history_start: date | None  # the first day of the data: everyone active then is "new"
    months: list[CustomerMonth]


class CohortCell(msgspec.Struct):
    """One month of a cohort (ANALYTICS.md F3): month_index 0 is the cohort's own month."""

    month_index: int
    period: date
    active_customers: int
    retention_pct: float
    revenue: float
    partial: bool = False  # the data ends inside this month (2011-12: 9 days)


class Cohort(msgspec.Struct):
    cohort: str  # YYYY-MM, the month of the members' first purchase
    customers: int
    months: list[CohortCell]


class CohortRow(msgspec.Struct):
    """A cell in the long format of the CSV export (one row per cohort and month)."""

    cohort: str
    cohort_customers: int
    month_index: int
    period: date
    active_customers: int
    retention_pct: float
    revenue: float


class Cohorts(msgspec.Struct):
    """ANALYTICS.md F3: whole months, cohorts of identified customers by first purchase."""

    currency: str
    start_month: str | None  # YYYY-MM; null when the filters have no window (no sales at all)
    end_month: str | None
    cohorts: list[Cohort]

    @property
    def cells(self) -> list[CohortRow]:
        return [
            CohortRow(
                cohort=row.cohort,
                cohort_customers=row.customers,
                month_index=cell.month_index,
                period=cell.period,
                active_customers=cell.active_customers,
                retention_pct=cell.retention_pct,
                revenue=cell.revenue,
            )
            for row in self.cohorts
            for cell in row.months
        ]


# ANALYTICS.md F4's ten segments, in display order
Segment = Literal[
    "champions",
    "loyal_customers",
    "potential_loyalists",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose",
    "hibernating",
]
# the customer list's sortable columns, "-" first for the largest first (ties by customer_id)
RfmSort = Literal[
    "-monetary",
    "monetary",
    "-frequency",
    "frequency",
    "recency_days",
    "-recency_days",
    "customer_id",
    "-customer_id",
]


class SegmentRow(msgspec.Struct):
    segment: Segment
    customers: int
    customers_pct: float | None
    revenue: float
    revenue_pct: float | None
    avg_recency_days: float | None
    avg_frequency: float | None
    avg_monetary: float | None


class Rfm(msgspec.Struct):
    """ANALYTICS.md F4: identified customers' recency, frequency and monetary inside the window."""

    currency: str
    reference_date: date | None  # the last sale day in the filters + 1 (guests included)
    customers: int
    revenue: float  # their revenue: the KPI revenue less the guests'
    segments: list[SegmentRow]


class RfmCustomer(msgspec.Struct):
    customer_id: int
    recency_days: int
    frequency: int
    monetary: float
    r_score: int
    f_score: int
    m_score: int
    rfm_score: str
    segment: Segment


class RfmCustomers(msgspec.Struct):
    """One page of a segment's customers (all customers when no segment is given)."""

    currency: str
    reference_date: date | None
    segment: Segment | None
    sort: RfmSort
    items: list[RfmCustomer]
    page: int
    size: int
    total: int
    pages: int


class CustomerMonthly(msgspec.Struct):
    period: date
    revenue: float
    units_sold: int
    orders: int
    partial: bool = False


class CustomerProduct(msgspec.Struct):
    stock_code: str
    description: str | None
    revenue: float
    units_sold: int
    orders: int


class CustomerDetail(msgspec.Struct):
    """One customer in the filters: what they bought, when, and where they stand in RFM."""

    currency: str
    customer_id: int
    countries: list[str]  # where their sales lines in the filters are (all their countries if none)
    customer_since: date  # the first purchase of their history (R3: any date, the country applied)
    first_purchase: MaybeLocalTime  # in the filters
    last_purchase: MaybeLocalTime
    orders: int
    revenue: float
    units_sold: int
    average_order_value: float | None
    rfm: RfmCustomer | None  # null when they bought nothing in the filters
    months: list[CustomerMonthly]
    top_products: list[CustomerProduct]


class ProductRow(msgspec.Struct):
    """One product of ANALYTICS.md F5 (R4: the upper-cased stock code)."""

    rank: int
    stock_code: str
    description: str | None
    revenue: float
    units_sold: int
    orders: int
    customers: int
    revenue_share_pct: float | None
    returned_units: int  # of its cancellation lines in the filters
    returned_revenue: float
    return_rate_pct: float | None  # may exceed 100: a return in the window of a sale before it


class Products(msgspec.Struct):
    currency: str
    by: ProductBy
    order: Order
    limit: int
    min_units: int
    products: int  # products with a sales line in the filters
    revenue: float  # their revenue (postage, fees and vouchers are not products)
    items: list[ProductRow]


class Pair(msgspec.Struct):
    """Two products bought together (ANALYTICS.md F6), stock_code_a < stock_code_b."""

    rank: int
    stock_code_a: str
    description_a: str | None
    stock_code_b: str
    description_b: str | None
    orders: int  # baskets with both
    orders_with_a: int
    orders_with_b: int
    support_pct: float
    confidence_a_to_b_pct: float
    confidence_b_to_a_pct: float
    lift: float


class ProductPairs(msgspec.Struct):
    currency: str
    limit: int
    baskets: int  # sales invoices with a product in the filters
    items: list[Pair]


class ProductCountry(msgspec.Struct):
    country: str
    revenue: float
    units_sold: int
    orders: int
    customers: int


class ProductDescription(msgspec.Struct):
    description: str
    lines: int  # its sales lines in the filters


class ProductDetail(msgspec.Struct):
    """One product key in the filters (or a postage or fee code, `is_product` false)."""

    currency: str
    stock_code: str
    is_product: bool  # false for postage, fees and vouchers (R4): revenue, but never a product
    description: str | None
    descriptions: list[ProductDescription]  # the most frequent first, at most five
    revenue: float
    units_sold: int
    orders: int
    customers: int
    returned_units: int
    returned_revenue: float
    return_rate_pct: float | None
    series: list[SeriesPoint]  # by month
    countries: list[ProductCountry]  # by revenue, ties by name; at most ten
    bought_with: list[Pair]  # the pairs that hold it (F6's measures), most orders first; at most ten
