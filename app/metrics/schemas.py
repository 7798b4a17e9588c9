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
