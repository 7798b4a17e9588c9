"""The metrics endpoints, made from the view declarations (app.metrics.views), and the dashboard.

Each view's GET is one service call whose JSON bytes are answered as they are to API
clients, or decoded into the view's Struct for the full page or the htmx partial.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Router, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from app.auth.guards import LOGIN
from app.lib.settings import get_settings
from app.lib.web.asking import NO_STORE_HEADERS
from app.lib.web.openapi import BEARER, errors
from app.lib.web.pages import Answer, answer, rendered
from app.metrics.analytics import LIMIT_RANGE, MAX_PAGE, SIZE_RANGE
from app.metrics.schemas import Freq, Order, RankBy
from app.metrics.service import cache_key, get_metrics_service
from app.metrics.views import KPIS, MAX_TEXT, SERIES, TOP_COUNTRIES, VIEWS, Params, Scope, View, default

DATE = {"format": "date"}

Start = Annotated[str | None, QueryParameter(description="First day (YYYY-MM-DD), inclusive", schema_extra=DATE)]
End = Annotated[str | None, QueryParameter(description="Last day (YYYY-MM-DD), inclusive", schema_extra=DATE)]
Country = Annotated[
    str | None, QueryParameter(description="One country, any case", schema_extra={"maxLength": MAX_TEXT})
]
FreqParam = Annotated[Freq, QueryParameter(description="The length of a period")]
By = Annotated[RankBy, QueryParameter(description="What the ranking is by")]

# How each query parameter is declared to Litestar (validation and OpenAPI); its default is the
# view's (its Params field). Dates and texts arrive as strings: Params.from_query parses them
# with messages that say what to type.
QUERY: dict[str, Any] = {
    "start": Start,
    "end": End,
    "country": Country,
    "freq": FreqParam,
    "by": By,
    "limit": Annotated[int, QueryParameter(description="How many rows", ge=LIMIT_RANGE[0], le=LIMIT_RANGE[1])],
    "order": Annotated[Order, QueryParameter(description="desc: largest first")],
    "q": Annotated[
        str | None,
        QueryParameter(
            description="Search in invoice, stock code and description", schema_extra={"maxLength": MAX_TEXT}
        ),
    ],
    "page": Annotated[int, QueryParameter(description="Page number", ge=1, le=MAX_PAGE)],
    "size": Annotated[int, QueryParameter(description="Lines per page", ge=SIZE_RANGE[0], le=SIZE_RANGE[1])],
}


def signature(params: type[Params], path_params: tuple[str, ...]) -> list[inspect.Parameter]:
    """The handler parameters of a Params struct: path parameters first, then the query."""
    defaults = dict(zip(params.__struct_fields__, params.__struct_defaults__, strict=True))
    keyword = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter("request", keyword, annotation=Request),
        *(inspect.Parameter(name, keyword, annotation=FromPath[str]) for name in path_params),
        *(
            inspect.Parameter(name, keyword, annotation=QUERY[name], default=default)
            for name, default in defaults.items()
            if name not in path_params
        ),
    ]


async def context(view: View[Any, Any], params: Params, body: bytes) -> dict[str, Any]:
    """What a view's templates see: the answer under its name, the filters, the parameters,
    and the query string that keeps them in links. Nothing of the user (cached for everyone)."""
    values: dict[str, Any] = {
        name: getattr(params, name) for name in params.__struct_fields__ if name not in view.path_params
    }
    values.update(
        filters=params.filters,
        query=params.query(exclude=("page", *view.path_params)),
        currency=get_settings().currency,
    )
    values[view.context_name] = msgspec.json.decode(body, type=view.result)
    if view.lists_countries:
        values["countries"] = await countries()
    return values


async def countries() -> list[str]:
    dataset = await get_metrics_service().dataset()
    return sorted(dataset.countries.values())


def endpoint(view: View[Any, Any]) -> HTTPRouteHandler:
    """The GET handler of a view: parameters validated by Litestar from the signature, then
    one service call, answered as JSON, page or partial."""

    async def handle(request: Request, **values: Any) -> Answer[Any]:
        params = view.params.from_query(**values)
        service = get_metrics_service()
        body = await service.answer(view, params)

        async def page_context() -> dict[str, Any]:
            return await context(view, params, body)

        page, partial = f"metrics/{view.template}.html", f"partials/{view.template}.html"
        return await answer(request, body, page, partial, page_context, service.tag)

    returns = Answer[view.result]  # type: ignore[name-defined]  # the view's Struct, for OpenAPI
    parameters = signature(view.params, view.path_params)
    handle.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]
    handle.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": returns}
    handle.__name__ = handle.__qualname__ = view.name.replace("-", "_")
    return get(
        view.path,
        name=f"metrics.{view.name}",
        summary=view.summary,
        responses=errors(*view.errors),
        security=BEARER,
        opt=LOGIN,
    )(handle)


def metrics_router(views: tuple[View[Any, Any], ...] | None = None) -> Router:
    """Every view's endpoint under /metrics (default: the views of app.metrics.views)."""
    handlers = [endpoint(view) for view in (VIEWS if views is None else views)]
    return Router(path="/metrics", route_handlers=handlers, tags=["metrics"])


DEFAULT_FREQ = default(SERIES.params, "freq")
DEFAULT_BY = default(TOP_COUNTRIES.params, "by")


class DashboardController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", name="dashboard", opt=LOGIN)
    async def dashboard(
        self,
        request: Request,
        start: Start = None,
        end: End = None,
        country: Country = None,
        freq: FreqParam = DEFAULT_FREQ,
        by: By = DEFAULT_BY,
    ) -> Answer[Any] | Template:
        service = get_metrics_service()
        tag = await service.tag()
        if tag == "0":  # nothing imported yet
            return Template(
                template_name="empty.html",
                context={"user": request.scope.get("user")},
                headers=dict(NO_STORE_HEADERS),
                media_type="text/html",
            )
        scope = Scope.from_query(start=start, end=end, country=country)
        series = SERIES.params(**msgspec.structs.asdict(scope), freq=freq)
        top = TOP_COUNTRIES.params(**msgspec.structs.asdict(scope), by=by)
        key = cache_key(tag, "dashboard", **series.key(), by=by)

        async def page_context() -> dict[str, Any]:
            return {
                "filters": scope.filters,
                "query": scope.query(),
                "currency": get_settings().currency,
                "kpis": msgspec.json.decode(await service.answer(KPIS, scope), type=KPIS.result),
                "series": msgspec.json.decode(await service.answer(SERIES, series), type=SERIES.result),
                "top": msgspec.json.decode(await service.answer(TOP_COUNTRIES, top), type=TOP_COUNTRIES.result),
                "freq": freq,
                "by": by,
                "countries": await countries(),
            }

        return await rendered(request, key, "dashboard.html", "partials/dashboard.html", page_context)
