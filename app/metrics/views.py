"""Every metrics view, declared once: its path, parameters, pure function, result, templates,
the parameter sets a refresh precomputes, and its table columns.

From a `View`, app.metrics.controllers makes the endpoint (JSON, page and htmx partial, and
its OpenAPI entry), app.metrics.service the cache key and the refresh's precomputed answers.
Adding a view is one declaration here, one pure function in analytics, two templates
(`metrics/<template>.html` including `partials/<template>.html`) and its tests.

Nothing here knows HTTP, Redis or the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Generic, TypeVar

import msgspec
from msgspec import Meta

from app.metrics import analytics, lines, products
from app.metrics import customers as customer_views
from app.metrics.analytics import FREQS, LIMIT_RANGE, MAX_PAGE, RANK_BY, SIZE_RANGE, Dataset, InvalidParameter
from app.metrics.schemas import (
    CohortRow,
    Cohorts,
    Compare,
    CountryDetail,
    CountryRow,
    CustomerDetail,
    CustomerMonth,
    CustomerMonthly,
    CustomerProduct,
    Customers,
    Filters,
    Freq,
    Kpis,
    Line,
    LineSort,
    Order,
    Page,
    Pair,
    Product,
    ProductBy,
    ProductCountry,
    ProductDetail,
    ProductPairs,
    ProductRow,
    Products,
    RankBy,
    Rfm,
    RfmCustomer,
    RfmCustomers,
    RfmSort,
    Segment,
    SegmentRow,
    Series,
    SeriesPoint,
    TopCountries,
)

MAX_TEXT = 100

P = TypeVar("P", bound="Params")
R = TypeVar("R", bound=msgspec.Struct)


# -- parameters --------------------------------------------------------------------------


def clean_text(name: str, value: str | None) -> str | None:
    """A text parameter stripped, None when blank; NUL characters and long values refused."""
    if value is None or not value.strip():
        return None
    if "\x00" in value:
        raise InvalidParameter(name, f"{name} must not contain a NUL character")
    if len(value) > MAX_TEXT:
        raise InvalidParameter(name, f"{name} is too long (at most {MAX_TEXT} characters)")
    return value.strip()


def parse_date(name: str, value: str | date | None) -> date | None:
    if isinstance(value, date):
        return value
    text = clean_text(name, value)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(name, f"{name}={text!r} is not a date: use YYYY-MM-DD, e.g. 2011-03-01") from None


def parse_id(name: str, value: str | int | None) -> int | None:
    if isinstance(value, int):
        return value
    text = clean_text(name, value)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 18:
        raise InvalidParameter(name, f"{name}={text!r} is not an id: digits only, e.g. 12347")
    return int(text)


class Params(msgspec.Struct, frozen=True, kw_only=True):
    """A view's parameters. Each field is a query parameter (or a path parameter, where the
    view's path names it) whose default is the view's default, the one place it is set.

    `from_query` takes the values as they arrive (dates and texts as strings); `key` is the
    normalised form that names the answer in the cache (two spellings of one question, one entry).
    """

    DATES: ClassVar[tuple[str, ...]] = ("start", "end")  # dates, given as YYYY-MM-DD
    TEXT: ClassVar[tuple[str, ...]] = ()  # free-text fields: stripped, NUL and length checked
    IDS: ClassVar[tuple[str, ...]] = ()  # ids typed into a form: digits, or empty for none
    FOLDED: ClassVar[dict[str, Callable[[str], str]]] = {}  # how a text field is normalised for the key

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each field's default: the view's defaults (every field has one)."""
        return _defaults(cls)

    @classmethod
    def from_query(cls: type[P], **values: Any) -> P:
        """The parameters from the values as they arrive (InvalidParameter says what to fix)."""
        return _from_query(cls, tuple(values.items()))

    @classmethod
    def _parse(cls: type[P], values: dict[str, Any]) -> P:
        defaults = cls.defaults()
        for name in cls.TEXT:
            if name in values:
                cleaned = clean_text(name, values[name])
                values[name] = defaults[name] if cleaned is None else cleaned
        for name in cls.DATES:
            if name in values:
                values[name] = parse_date(name, values[name])
        for name in cls.IDS:
            if name in values:
                values[name] = parse_id(name, values[name])
        return cls(**values)

    @property
    def filters(self) -> Filters:
        return Filters(
            start=getattr(self, "start", None), end=getattr(self, "end", None), country=getattr(self, "country", None)
        )

    def key(self) -> dict[str, object]:
        values: dict[str, object] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, str) and name in self.FOLDED:
                value = self.FOLDED[name](value)
            values[name] = "" if value is None else value
        return values

    def query(self, exclude: Iterable[str] = ()) -> dict[str, str]:
        """The values that differ from the defaults, as query-string text (for links that keep the view)."""
        defaults = self.defaults()
        query = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in exclude or value is None or value == "" or value == defaults[name]:
                continue
            query[name] = value.isoformat() if isinstance(value, date) else str(value)
        return query


@lru_cache(maxsize=4096)  # warm requests repeat the same few queries; errors are not remembered
def _from_query(params: type[P], values: tuple[tuple[str, Any], ...]) -> P:
    return params._parse(dict(values))


@lru_cache(maxsize=64)
def _defaults(params: type[Params]) -> dict[str, Any]:
    return dict(zip(params.__struct_fields__, params.__struct_defaults__, strict=True))


def default(params: type[Params], name: str) -> Any:
    """The default of one parameter (for a page that takes it without being that view)."""
    return params.defaults()[name]


def view_defaults(views: Iterable[View[Any, Any]]) -> dict[str, Any]:
    """Every query parameter's default (one value per name across the views; links leave them out)."""
    found: dict[str, Any] = {}
    for view in views:
        for name, value in view.params.defaults().items():
            skip = value is None or name in view.path_params
            if not skip and found.setdefault(name, value) != value:
                raise ValueError(f"the views disagree on the default of {name!r}")
    return found


def _casefold(text: str) -> str:
    return text.strip().casefold()


def _lower(text: str) -> str:
    return text.strip().lower()


class Dates(Params, frozen=True, kw_only=True):
    start: Annotated[date | None, Meta(description="First day (YYYY-MM-DD), inclusive")] = None
    end: Annotated[date | None, Meta(description="Last day (YYYY-MM-DD), inclusive")] = None


class Scope(Dates, frozen=True, kw_only=True):
    """The filters every view takes: a date range and a country (any case)."""

    TEXT: ClassVar[tuple[str, ...]] = ("country",)
    FOLDED = {"country": _casefold}

    country: Annotated[str | None, Meta(description="One country, any case")] = None


_COMPARE = Meta(
    description="Compare with the window of the same length just before (previous_period) or a year before "
    "(previous_year), or not (none). Omitted: none in JSON (the answer scripts know), previous_period on the pages"
)


class KpisParams(Scope, frozen=True, kw_only=True):
    compare: Annotated[Compare | None, _COMPARE] = None


class SeriesParams(Scope, frozen=True, kw_only=True):
    freq: Annotated[Freq, Meta(description="The length of a period")] = "month"


class TopCountriesParams(Scope, frozen=True, kw_only=True):
    by: Annotated[RankBy, Meta(description="What the ranking is by")] = "revenue"
    limit: Annotated[int, Meta(ge=LIMIT_RANGE[0], le=LIMIT_RANGE[1], description="How many countries")] = 10
    order: Annotated[Order, Meta(description="desc: the largest first")] = "desc"


class CountryParams(Dates, frozen=True, kw_only=True):
    TEXT: ClassVar[tuple[str, ...]] = ("country_name",)
    FOLDED = {"country_name": _casefold}

    country_name: Annotated[str, Meta(description="The country, any case")] = ""
    compare: Annotated[Compare | None, _COMPARE] = None


class PageParams(Scope, frozen=True, kw_only=True):
    TEXT: ClassVar[tuple[str, ...]] = ("country", "q")
    IDS: ClassVar[tuple[str, ...]] = ("customer",)
    FOLDED = {"country": _casefold, "q": _lower}

    q: Annotated[
        str | None, Meta(description="Search in invoice, stock code and description, or a customer id (exactly)")
    ] = None
    customer: Annotated[int | None, Meta(description="One customer's lines (their CustomerID)")] = None
    page: Annotated[int, Meta(ge=1, le=MAX_PAGE, description="Page number")] = 1
    size: Annotated[int, Meta(ge=SIZE_RANGE[0], le=SIZE_RANGE[1], description="Lines per page")] = 50
    after: Annotated[
        int | None,
        Meta(
            ge=1,
            le=2**63 - 1,
            description="Start after this line: the previous page's `next_after` (any depth is fast)",
        ),
    ] = None
    sort: Annotated[
        LineSort,
        Meta(
            description="The column the lines are sorted by, `-` first for the other way (ties in date and import "
            "order); any other than the default pages by number only (no `next_after`)"
        ),
    ] = "invoice_date"


class RfmCustomersParams(Scope, frozen=True, kw_only=True):
    segment: Annotated[
        Segment | None, Meta(description="One of the ten segments (ANALYTICS.md F4); omitted: every customer")
    ] = None
    page: Annotated[int, Meta(ge=1, le=MAX_PAGE, description="Page number")] = 1
    size: Annotated[int, Meta(ge=SIZE_RANGE[0], le=SIZE_RANGE[1], description="Customers per page")] = 50
    sort: Annotated[
        RfmSort | None,
        Meta(
            description="The column the customers are sorted by, `-` first for the largest first, ties by "
            "customer_id; omitted: -monetary (the largest spend first)"
        ),
    ] = None


class ProductsParams(Scope, frozen=True, kw_only=True):
    by: Annotated[ProductBy, Meta(description="What the products are ranked by")] = "revenue"
    order: Annotated[Order, Meta(description="desc: the largest first; ties by stock code ascending")] = "desc"
    limit: Annotated[int, Meta(ge=LIMIT_RANGE[0], le=LIMIT_RANGE[1], description="How many products")] = 10
    min_units: Annotated[
        int,
        Meta(ge=0, le=products.MAX_MIN_UNITS, description="Only products with at least this many units sold"),
    ] = 0


class PairsParams(Scope, frozen=True, kw_only=True):
    limit: Annotated[int, Meta(ge=LIMIT_RANGE[0], le=LIMIT_RANGE[1], description="How many pairs")] = 10


class ProductParams(Scope, frozen=True, kw_only=True):
    TEXT: ClassVar[tuple[str, ...]] = ("country", "stock_code")
    FOLDED = {"country": _casefold, "stock_code": lambda code: code.strip().upper()}

    stock_code: Annotated[str, Meta(description="The stock code, any case (85123a is 85123A)")] = ""


class CustomerParams(Scope, frozen=True, kw_only=True):
    customer_id: Annotated[str, Meta(description="The customer id (CustomerID)")] = ""


# -- the declaration -----------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A table of a view's answer: its rows and their columns (what a CSV export writes). The
    columns are the row Struct's fields in their order, as JSON has them (ANALYTICS.md F7),
    unless a table names fewer."""

    name: str
    row: type[msgspec.Struct]
    rows: Callable[[Any], Sequence[msgspec.Struct]]
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.columns:
            object.__setattr__(self, "columns", self.row.__struct_fields__)


@dataclass(frozen=True)
class View(Generic[P, R]):
    name: str  # names the answer in cache keys and the endpoint
    path: str  # under /metrics; `{field:str}` makes that field a path parameter (`:path`: "/" allowed)
    summary: str
    params: type[P]
    result: type[R]
    # (shapes, parameters, currency) -> the answer; or `fetch`, for a view that reads the database
    compute: Callable[[Dataset, P, str], R] | None
    template: str  # metrics/<template>.html, including partials/<template>.html
    context_name: str  # what the templates call the answer
    # what a refresh precomputes: parameter sets, and optionally one call that computes them all
    defaults: Callable[[Dataset], Iterable[P]] = lambda _: ()
    compute_many: Callable[[Dataset, list[P], str], list[R]] | None = None
    tables: tuple[Table, ...] = ()
    fetch: Callable[[Dataset, P, str], Awaitable[R]] | None = None
    lists_countries: bool = False  # the page's filter form offers the country list
    streams: bool = False  # its CSV streams every matching line from the database (the transactions)
    errors: tuple[int, ...] = (400, 401, 404, 503)
    # what an omitted parameter means on the pages, where it differs from JSON (compare)
    page_defaults: dict[str, Any] = field(default_factory=dict)
    path_params: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        names = tuple(part[1:-1].split(":")[0] for part in self.path.split("/") if part.startswith("{"))
        object.__setattr__(self, "path_params", names)
        if (self.compute is None) == (self.fetch is None):
            raise ValueError(f"view {self.name!r}: give either compute or fetch")

    def precompute(self, dataset: Dataset, currency: str) -> list[tuple[P, R]]:
        """The refresh's answers of a view that computes from the shapes (in a thread)."""
        if self.compute is None:
            return []
        sets = list(self.defaults(dataset))
        if self.compute_many is not None:
            return list(zip(sets, self.compute_many(dataset, sets, currency), strict=True))
        return [(params, self.compute(dataset, params, currency)) for params in sets]

    async def prefetch(self, dataset: Dataset, currency: str) -> list[tuple[P, R]]:
        """The refresh's answers of a view that reads the database."""
        if self.fetch is None:
            return []
        return [(params, await self.fetch(dataset, params, currency)) for params in self.defaults(dataset)]


KPIS: View[KpisParams, Kpis] = View(
    name="kpis",
    path="/kpis",
    summary="KPIs of the sales lines in the filters, optionally compared with an earlier window",
    params=KpisParams,
    result=Kpis,
    compute=lambda ds, p, currency: analytics.kpis(ds, p.filters, currency, p.compare or "none"),
    template="kpis",
    context_name="kpis",
    defaults=lambda _: [KpisParams(), KpisParams(compare="previous_period")],
    page_defaults={"compare": "previous_period"},
)

SERIES: View[SeriesParams, Series] = View(
    name="series",
    path="/series",
    summary="Revenue, units and orders per day, week, month or year",
    params=SeriesParams,
    result=Series,
    compute=lambda ds, p, currency: analytics.series(ds, p.filters, p.freq, currency),
    template="series",
    context_name="series",
    defaults=lambda _: [SeriesParams(freq=freq) for freq in FREQS],
    tables=(Table("series", SeriesPoint, lambda r: r.points),),
)

TOP_COUNTRIES: View[TopCountriesParams, TopCountries] = View(
    name="top-countries",
    path="/top-countries",
    summary="Countries ranked by revenue, units sold, orders or customers",
    params=TopCountriesParams,
    result=TopCountries,
    compute=lambda ds, p, currency: analytics.top_countries(ds, p.filters, p.by, p.limit, p.order, currency),
    template="top_countries",
    context_name="top",
    defaults=lambda _: [TopCountriesParams(by=by) for by in RANK_BY],
    tables=(Table("top_countries", CountryRow, lambda r: r.items),),
)

COUNTRY: View[CountryParams, CountryDetail] = View(
    name="country",
    path="/top-countries/{country_name:path}",  # any stored name opens, "/" included
    summary="One country: KPIs, rank, monthly series, top products",
    params=CountryParams,
    result=CountryDetail,
    compute=lambda ds, p, currency: analytics.country_detail(
        ds, p.filters, p.country_name, currency, p.compare or "none"
    ),
    page_defaults={"compare": "previous_period"},
    template="country",
    context_name="detail",
    # every country's page, from one group-by per figure
    defaults=lambda ds: [CountryParams(country_name=name) for name in ds.countries.values()],
    compute_many=lambda ds, sets, currency: analytics.country_details(
        ds, Filters(), currency, [p.country_name for p in sets]
    ),
    tables=(
        Table("series", SeriesPoint, lambda r: r.series),
        Table("top_products", Product, lambda r: r.top_products),
    ),
)

PAGE: View[PageParams, Page] = View(
    name="page",
    path="/page",
    summary="The sales lines in the filters, a page at a time",
    params=PageParams,
    result=Page,
    compute=None,
    fetch=lambda ds, p, _: lines.page(ds, p.filters, p.q, p.page, p.size, p.after, p.sort, p.customer),
    template="page",
    context_name="page",
    defaults=lambda _: [PageParams()],
    tables=(Table("transactions", Line, lambda r: r.items),),
    lists_countries=True,
    streams=True,
)

CUSTOMERS: View[Scope, Customers] = View(
    name="customers",
    path="/customers",
    summary="Customers in the filters: new and returning, repeat purchase, month by month (ANALYTICS.md F2)",
    params=Scope,
    result=Customers,
    compute=lambda ds, p, currency: customer_views.customers(ds, p.filters, currency),
    template="customers",
    lists_countries=True,
    context_name="customers",
    defaults=lambda _: [Scope()],
    tables=(Table("customer_months", CustomerMonth, lambda r: r.months),),
)

COHORTS: View[Scope, Cohorts] = View(
    name="cohorts",
    path="/cohorts",
    summary="Monthly cohorts of customers by first purchase and how many bought again each month (ANALYTICS.md F3)",
    params=Scope,
    result=Cohorts,
    compute=lambda ds, p, currency: customer_views.cohorts(ds, p.filters, currency),
    template="cohorts",
    lists_countries=True,
    context_name="cohorts",
    defaults=lambda _: [Scope()],
    tables=(Table("cohorts", CohortRow, lambda r: r.cells),),
)

RFM: View[Scope, Rfm] = View(
    name="rfm",
    path="/rfm",
    summary="Customers in ten RFM segments by recency, frequency and monetary in the window (ANALYTICS.md F4)",
    params=Scope,
    result=Rfm,
    compute=lambda ds, p, currency: customer_views.rfm(ds, p.filters, currency),
    template="rfm",
    lists_countries=True,
    context_name="rfm",
    defaults=lambda _: [Scope()],
    tables=(Table("rfm_segments", SegmentRow, lambda r: r.segments),),
)


def _rfm_customers(ds: Dataset, p: RfmCustomersParams, currency: str) -> RfmCustomers:
    return customer_views.rfm_customers(ds, p.filters, p.segment, p.page, p.size, p.sort or "-monetary", currency)


RFM_CUSTOMERS: View[RfmCustomersParams, RfmCustomers] = View(
    name="rfm-customers",
    path="/rfm/customers",
    summary="The customers of one RFM segment (or all) with their scores, a page at a time (ANALYTICS.md F4)",
    params=RfmCustomersParams,
    result=RfmCustomers,
    compute=_rfm_customers,
    template="rfm_customers",
    lists_countries=True,
    context_name="listing",
    # every segment's first page and the whole list's, from one scoring
    defaults=lambda _: [RfmCustomersParams(), *(RfmCustomersParams(segment=name) for name in customer_views.SEGMENTS)],
    compute_many=lambda ds, sets, currency: [_rfm_customers(ds, p, currency) for p in sets],
    tables=(Table("rfm_customers", RfmCustomer, lambda r: r.items),),
)


async def _customer(ds: Dataset, p: CustomerParams, currency: str) -> CustomerDetail:
    """A customer's page: the figures from the shapes, their top products from their lines."""
    number = customer_views.customer_id(p.customer_id)
    detail, inside = await asyncio.to_thread(customer_views.customer, ds, p.filters, number, currency)
    invoices = inside.get_column("invoice_no").unique().to_list()
    detail.top_products = await lines.customer_products(number, invoices)
    return detail


CUSTOMER: View[CustomerParams, CustomerDetail] = View(
    name="customer",
    path="/customers/{customer_id:path}",
    summary="One customer: orders, revenue, first and last purchase, RFM scores, months, top products",
    params=CustomerParams,
    result=CustomerDetail,
    compute=None,
    fetch=_customer,
    template="customer",
    lists_countries=True,
    context_name="customer",
    tables=(
        Table("customer_months", CustomerMonthly, lambda r: r.months),
        Table("customer_products", CustomerProduct, lambda r: r.top_products),
    ),
)

PRODUCTS: View[ProductsParams, Products] = View(
    name="products",
    path="/products",
    summary="Products ranked by revenue, units, orders, customers or return rate, with returns (ANALYTICS.md F5)",
    params=ProductsParams,
    result=Products,
    compute=lambda ds, p, currency: products.products(ds, p.filters, p.by, p.order, p.limit, p.min_units, currency),
    template="products",
    context_name="listing",
    lists_countries=True,
    # each measure's ranking (the return rate's with the page's floor), from one table
    defaults=lambda _: (
        [ProductsParams(by=by) for by in products.PRODUCT_BY if by != "return_rate_pct"]
        + [ProductsParams(by="return_rate_pct", min_units=100)]
    ),
    compute_many=lambda ds, sets, currency: products.many_products(
        ds, [(p.filters, p.by, p.order, p.limit, p.min_units) for p in sets], currency
    ),
    tables=(Table("products", ProductRow, lambda r: r.items),),
)

PRODUCT_PAIRS: View[PairsParams, ProductPairs] = View(
    name="product-pairs",
    path="/product-pairs",
    summary="Pairs of products bought together in the most orders, with support, confidence and lift (F6)",
    params=PairsParams,
    result=ProductPairs,
    compute=lambda ds, p, currency: products.product_pairs(ds, p.filters, p.limit, currency),
    template="product_pairs",
    context_name="pairs",
    lists_countries=True,
    defaults=lambda _: [PairsParams()],
    tables=(Table("product_pairs", Pair, lambda r: r.items),),
)

PRODUCT: View[ProductParams, ProductDetail] = View(
    name="product",
    path="/products/{stock_code:path}",
    summary="One product: KPIs and returns, months, countries, descriptions, what is bought with it",
    params=ProductParams,
    result=ProductDetail,
    compute=lambda ds, p, currency: products.product(ds, p.filters, p.stock_code, currency),
    template="product",
    context_name="product",
    lists_countries=True,
    tables=(
        Table("product_months", SeriesPoint, lambda r: r.series),
        Table("product_countries", ProductCountry, lambda r: r.countries),
        Table("bought_with", Pair, lambda r: r.bought_with),
    ),
)

VIEWS: tuple[View[Any, Any], ...] = (
    KPIS,
    SERIES,
    TOP_COUNTRIES,
    COUNTRY,
    PAGE,
    CUSTOMERS,
    COHORTS,
    RFM,
    RFM_CUSTOMERS,
    CUSTOMER,
    PRODUCTS,
    PRODUCT_PAIRS,
    PRODUCT,
)
