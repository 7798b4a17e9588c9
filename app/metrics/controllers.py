"""The metrics endpoints, made from the view declarations (app.metrics.views), and the dashboard.

Each view's GET is one service call whose JSON bytes are answered as they are to API
clients, or decoded into the view's Struct for the full page or the htmx partial.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import parse_qs, urlsplit

import msgspec
from litestar import Request, Router, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream, Template
from markupsafe import Markup
from msgspec import Meta

from app.auth.guards import LOGIN
from app.lib.settings import get_settings
from app.lib.web.asking import NO_STORE_HEADERS, is_htmx, wants_csv, wants_json
from app.lib.web.openapi import BEARER, NO_NUL, errors
from app.lib.web.pages import Answer, answer, rendered
from app.metrics import analytics, export, lines
from app.metrics.analytics import InvalidParameter, MetricsError
from app.metrics.schemas import Compare, Filters, Freq, RankBy
from app.metrics.service import cache_key, get_metrics_service
from app.metrics.views import (
    KPIS,
    MAX_TEXT,
    PRODUCTS,
    SERIES,
    TOP_COUNTRIES,
    VIEWS,
    KpisParams,
    Params,
    ProductsParams,
    Scope,
    SeriesParams,
    TopCountriesParams,
    View,
    default,
)

DATE_OR_EMPTY = {
    "one_of": [
        Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE),
        Schema(type=OpenAPIType.STRING, max_length=0),
    ]
}
TEXT_SCHEMA = {"one_of": [Schema(type=OpenAPIType.STRING, max_length=MAX_TEXT, pattern=NO_NUL)]}
ID_SCHEMA = {"one_of": [Schema(type=OpenAPIType.STRING, max_length=18, pattern=r"^[0-9]*$")]}


def parameter(params: type[Params], name: str, hint: Any) -> Any:
    """How Litestar takes one field of a Params struct (validation and OpenAPI): its type with
    the Meta's bounds and description; dates and texts as strings, which Params.from_query
    parses with messages that say what to type."""
    base, meta = hint, Meta()
    if get_origin(hint) is Annotated:
        base, *extras = get_args(hint)
        meta = next((extra for extra in extras if isinstance(extra, Meta)), meta)
    if name in params.DATES:  # a date, or empty (a filter form's unset field): no filter
        return Annotated[str | None, QueryParameter(description=meta.description, schema_extra=DATE_OR_EMPTY)]
    if name in params.IDS:  # an id, or empty (a filter form's unset field): no filter
        return Annotated[str | None, QueryParameter(description=meta.description, schema_extra=ID_SCHEMA)]
    if name in params.TEXT:
        kind = str if base is str else str | None
        return Annotated[kind, QueryParameter(description=meta.description, schema_extra=TEXT_SCHEMA)]
    return Annotated[base, QueryParameter(description=meta.description, ge=meta.ge, le=meta.le)]


def signature(params: type[Params], path_params: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """The handler parameters of a Params struct: the request, path parameters, then the query."""
    hints = get_type_hints(params, include_extras=True)
    defaults = params.defaults()
    keyword = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter("request", keyword, annotation=Request),
        *(inspect.Parameter(name, keyword, annotation=FromPath[PurePosixPath]) for name in path_params),
        *(
            inspect.Parameter(name, keyword, annotation=parameter(params, name, hints[name]), default=default)
            for name, default in defaults.items()
            if name not in path_params
        ),
    ]


# The CSV export's own parameters (F7), on every view with a table; not part of the answer's
# key. Left out of the OpenAPI document, whose operations describe their JSON answer: the
# operation's description says how to ask for CSV instead.
EXPORT_PARAMETERS = {
    "format": (Annotated[Literal["json", "csv"] | None, QueryParameter(include_in_schema=False)], None),
    "bom": (Annotated[bool, QueryParameter(include_in_schema=False)], False),
    "table": (Annotated[str | None, QueryParameter(include_in_schema=False, max_length=40)], None),
}
CSV_HELP = (
    "Add `format=csv` (or send `Accept: text/csv`) for the table as CSV: every matching row, RFC 4180, "
    "UTF-8 (`bom=true` for Excel){tables}. See docs/metrics.md, Exports."
)


def typed(
    handle: Callable[..., Any],
    params: type[Params],
    path_params: tuple[str, ...],
    returns: Any,
    exports: bool = False,
) -> None:
    """Give `handle(request, **values)` the signature Litestar reads its parameters from."""
    parameters = signature(params, path_params)
    if exports:
        keyword = inspect.Parameter.KEYWORD_ONLY
        parameters += [
            inspect.Parameter(name, keyword, annotation=hint, default=default)
            for name, (hint, default) in EXPORT_PARAMETERS.items()
        ]
    handle.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]  # read by Litestar
    handle.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": returns}


async def context(view: View[Any, Any], params: Params, body: bytes) -> dict[str, Any]:
    """What a view's templates see: the answer under its name, the filters, the parameters,
    and the query string that keeps them in links. Nothing of the user (cached for everyone)."""
    values: dict[str, Any] = {
        name: getattr(params, name) for name in params.__struct_fields__ if name not in view.path_params
    }
    values.update(
        filters=params.filters,
        query=params.query(exclude=("page", "after", *view.path_params)),
        currency=get_settings().currency,
    )
    values[view.context_name] = msgspec.json.decode(body, type=view.result)
    if view.lists_countries:
        values["countries"] = await countries()
    values.update(await date_presets())  # every view's page has the filter form
    return values


async def countries() -> list[str]:
    dataset = await get_metrics_service().dataset()
    return sorted(dataset.countries.values())


async def date_presets() -> dict[str, Any]:
    """The filter form's presets, counted back from the data's last sale day (its "today")."""
    last = analytics.last_sale_day(await get_metrics_service().dataset())
    return {"presets": analytics.presets(last) if last else [], "last_sale_day": last}


FILTER_FIELDS = ("start", "end", "country", "q", "customer")  # what a page's filter form sends


async def inline_error(
    request: Request,
    error: MetricsError,
    values: dict[str, Any],
    show: Callable[[dict[str, Any], dict[str, Any]], Awaitable[Answer[Any]]],
) -> Answer[Any]:
    """A filter the figures cannot take, for a browser: the message beside the form, the user's
    input kept, the figures as they were. For htmx only the form's message box changes (the
    address stays); without JavaScript the page comes back with the figures of the filters it
    came from (its Referer, if that was this page and they are valid, else none) and the form
    holding what was typed. API clients get the plain error (raised again)."""
    if wants_json(request):
        raise error
    if is_htmx(request):  # 200: htmx does not swap an error status
        message = Markup('<p class="alert" role="alert">{}</p>').format(str(error))
        headers = {
            **NO_STORE_HEADERS,
            "hx-retarget": "#filter-error",
            "hx-reswap": "innerHTML",
            "hx-reselect": ".alert",  # not the form's own hx-select (the part it would swap)
            "hx-push-url": "false",
        }
        fragment: Answer[Any] = Answer(str(message), media_type="text/html")
        fragment.headers.update(headers)
        return fragment
    typed = {name: str(values.get(name) or "") for name in FILTER_FIELDS}  # what the form sent, as sent
    extra = {"filter_error": str(error), "typed": typed}
    page: Answer[Any] | None = None
    for fallback in (_came_from(request), {}):
        if fallback is None:
            continue
        try:
            known = [name for name in FILTER_FIELDS if name in values]  # the fields this page takes
            cleared = {name: None for name in known} | {k: v for k, v in fallback.items() if k in known}
            page = await show({**values, **cleared}, extra)
            break
        except MetricsError:
            continue
    if page is None:  # not a filter's fault (an unknown country in the address): the error page
        raise error
    page.status_code = error.status_code
    return page


def _came_from(request: Request) -> dict[str, Any] | None:
    """The filters of the page the form was sent from, if it is this page."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.path != request.url.path:
        return None
    query = parse_qs(referer.query)
    return {name: query[name][0] for name in FILTER_FIELDS if query.get(name)}


async def csv_export(
    request: Request, view: View[Any, Any], values: dict[str, Any], exporting: dict[str, Any]
) -> Stream:
    """One of the view's tables as CSV (app.metrics.export): the JSON rows for the same
    parameters, except that a paginated view gives every matching row and a view with a
    `limit` gives the whole table unless the address sets one."""
    names = [table.name for table in view.tables]
    chosen = exporting.get("table") or names[0]
    table = next((t for t in view.tables if t.name == chosen), None)
    if table is None:
        raise InvalidParameter("table", f"table={chosen!r} is not one of this view's tables: {', '.join(names)}")
    if "limit" in values and "limit" not in request.query_params:  # the whole table
        values["limit"] = analytics.LIMIT_RANGE[1]
    params = view.params.from_query(**values)
    service = get_metrics_service()
    dataset = await service.dataset()
    filters = params.filters
    country = getattr(params, "country_name", None) or filters.country
    chunks: AsyncIterator[Sequence[Any]]
    if view.streams:  # the transactions: every matching line, streamed from the database
        q, sort = getattr(params, "q", None), getattr(params, "sort", "invoice_date")
        analytics.check_dates(filters)
        chunks = lines.stream(dataset, filters, q, sort, getattr(params, "customer", None))
    else:
        paged = "page" in params.__struct_fields__
        if paged:  # every matching row: the pages of the largest size, in turn
            params = msgspec.structs.replace(params, page=1, size=analytics.SIZE_RANGE[1])

        async def computed() -> AsyncIterator[Sequence[Any]]:
            asked = params
            while True:
                result = msgspec.json.decode(await service.answer(view, asked), type=view.result)
                yield table.rows(result)
                if not paged or asked.page >= result.pages:  # a paginated view's Params and answer
                    return
                asked = msgspec.structs.replace(asked, page=asked.page + 1)

        chunks = computed()
    if country is not None:
        country = dataset.country(country)  # the stored spelling; an unknown one is a 404 here
    span = analytics.window(dataset, Filters(start=filters.start, end=filters.end, country=country))
    name = export.filename(table.name, span, country)
    return Stream(
        export.stream(table.columns, chunks, bool(exporting.get("bom"))),
        media_type="text/csv",  # Litestar adds the charset (utf-8)
        headers={**NO_STORE_HEADERS, "content-disposition": f'attachment; filename="{name}"'},
    )


def endpoint(view: View[Any, Any]) -> HTTPRouteHandler:
    """The GET handler of a view: parameters validated by Litestar from the signature, then
    one service call, answered as JSON, page or partial."""
    page, partial = f"metrics/{view.template}.html", f"partials/{view.template}.html"

    async def show(request: Request, values: dict[str, Any], extra: dict[str, Any] | None = None) -> Answer[Any]:
        params = view.params.from_query(**values)
        if view.page_defaults and not wants_json(request):  # what an omitted parameter means on a page
            unset = {name: value for name, value in view.page_defaults.items() if getattr(params, name) is None}
            params = msgspec.structs.replace(params, **unset)
        service = get_metrics_service()
        body = await service.answer(view, params)

        async def page_context() -> dict[str, Any]:
            return await context(view, params, body)

        if extra:  # a one-off page: the figures with a filter's error beside the form
            return await rendered(request, None, page, partial, page_context, extra)
        return await answer(request, body, page, partial, page_context, service.tag)

    async def handle(request: Request, **values: Any) -> Answer[Any] | Stream:
        for name in view.path_params:  # taken as a path, so that a name may hold "/": "/Foo/Bar" -> "Foo/Bar"
            values[name] = str(values[name])[1:]
        exporting = {name: values.pop(name) for name in EXPORT_PARAMETERS if name in values}
        if view.tables and wants_csv(request.scope):
            return await csv_export(request, view, values, exporting)
        try:
            return await show(request, values)
        except MetricsError as error:
            return await inline_error(request, error, values, lambda again, extra: show(request, again, extra))

    typed(handle, view.params, view.path_params, Answer[view.result], exports=bool(view.tables))  # type: ignore[name-defined]  # the view's Struct
    handle.__name__ = handle.__qualname__ = view.name.replace("-", "_")
    tables = [table.name for table in view.tables]
    choice = f"; `table` = {' or '.join(tables)}" if len(tables) > 1 else ""
    return get(
        view.path,
        name=f"metrics.{view.name}",
        summary=view.summary,
        description=CSV_HELP.format(tables=choice) if tables else None,
        responses=errors(*view.errors),
        security=BEARER,
        opt=LOGIN,
    )(handle)


def metrics_router(views: tuple[View[Any, Any], ...] | None = None) -> Router:
    """Every view's endpoint under /metrics (default: the views of app.metrics.views)."""
    handlers = [endpoint(view) for view in (VIEWS if views is None else views)]
    return Router(path="/metrics", route_handlers=handlers, tags=["metrics"])


class DashboardParams(Scope, frozen=True, kw_only=True):
    """The dashboard shows three views; its own parameters are theirs (with their defaults)."""

    freq: Annotated[Freq, Meta(description="The series' period")] = default(SERIES.params, "freq")
    compare: Annotated[Compare | None, Meta(description="The KPIs' comparison (default: previous_period)")] = None
    by: Annotated[RankBy, Meta(description="What the countries are ranked by")] = default(TOP_COUNTRIES.params, "by")


async def dashboard(request: Request, **values: Any) -> Answer[Any] | Template:
    service = get_metrics_service()
    tag = await service.tag()
    if tag == "0":  # nothing imported yet
        return Template(
            template_name="empty.html",
            context={"user": request.scope.get("user")},
            headers=dict(NO_STORE_HEADERS),
            media_type="text/html",
        )
    try:
        return await _dashboard(request, tag, values)
    except MetricsError as error:
        return await inline_error(request, error, values, lambda again, extra: _dashboard(request, tag, again, extra))


async def _dashboard(
    request: Request, tag: str, values: dict[str, Any], extra: dict[str, Any] | None = None
) -> Answer[Any]:
    service = get_metrics_service()
    params = DashboardParams.from_query(**values)
    scope = Scope(start=params.start, end=params.end, country=params.country)
    compared = KpisParams(
        start=params.start, end=params.end, country=params.country, compare=params.compare or "previous_period"
    )
    series = SeriesParams(start=params.start, end=params.end, country=params.country, freq=params.freq)
    top = TopCountriesParams(start=params.start, end=params.end, country=params.country, by=params.by)
    # the products view's defaults (what a refresh precomputes); the card shows the first five
    best = ProductsParams(start=params.start, end=params.end, country=params.country)
    key = cache_key(tag, "dashboard", params)

    async def page_context() -> dict[str, Any]:
        return {
            "filters": params.filters,
            "query": scope.query() | ({"compare": params.compare} if params.compare else {}),
            "currency": get_settings().currency,
            "kpis": msgspec.json.decode(await service.answer(KPIS, compared), type=KPIS.result),
            "compare": compared.compare,
            "series": msgspec.json.decode(await service.answer(SERIES, series), type=SERIES.result),
            "top": msgspec.json.decode(await service.answer(TOP_COUNTRIES, top), type=TOP_COUNTRIES.result),
            "products": msgspec.json.decode(await service.answer(PRODUCTS, best), type=PRODUCTS.result),
            "freq": params.freq,
            "by": params.by,
            "countries": await countries(),
            **(await date_presets()),
        }

    return await rendered(request, key, "dashboard.html", "partials/dashboard.html", page_context, extra)


typed(dashboard, DashboardParams, (), Answer[Any] | Template)
dashboard_page = get("/", name="dashboard", opt=LOGIN, include_in_schema=False)(dashboard)
