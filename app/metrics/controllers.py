"""The metrics endpoints and the pages built on them (dashboard, country, transactions).

Each GET is one service call whose JSON bytes are answered as they are to API clients,
or decoded into the same Structs for the full page or the htmx partial.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from app.lib.settings import get_settings
from app.metrics.analytics import FREQS, RANK_BY, InvalidParameter
from app.metrics.schemas import CountryDetail, Filters, Kpis, Page, Series, TopCountries
from app.metrics.service import cache_key, get_metrics_service
from app.server.openapi import BEARER, errors
from app.server.web import NO_STORE_HEADERS, answer, is_htmx, signed_in, view, wants_json

MAX_TEXT = 100

Start = Annotated[str | None, QueryParameter(description="First day, ISO date (YYYY-MM-DD), inclusive")]
End = Annotated[str | None, QueryParameter(description="Last day, ISO date (YYYY-MM-DD), inclusive")]
Country = Annotated[str | None, QueryParameter(description="One country, any case")]
Freq = Annotated[str, QueryParameter(description="day, week, month or year")]
By = Annotated[str, QueryParameter(description="revenue, units_sold, orders or customers")]
Limit = Annotated[int, QueryParameter(description="1 to 100")]
Order = Annotated[str, QueryParameter(description="desc or asc")]
PageNo = Annotated[int, QueryParameter(description="1 or more")]
Size = Annotated[int, QueryParameter(description="1 to 500")]
Q = Annotated[str | None, QueryParameter(description="Search in invoice, stock code and description")]

ERRORS = errors(400, 401, 503)
COUNTRY_ERRORS = errors(400, 401, 404, 503)


def _text(name: str, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if "\x00" in value:
        raise InvalidParameter(name, f"{name} must not contain a NUL character")
    if len(value) > MAX_TEXT:
        raise InvalidParameter(name, f"{name} is too long (at most {MAX_TEXT} characters)")
    return value.strip()


def _date(name: str, value: str | None) -> date | None:
    text = _text(name, value)
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(name, f"{name}={text!r} is not a date: use YYYY-MM-DD, e.g. 2011-03-01") from None


def make_filters(start: str | None, end: str | None, country: str | None) -> Filters:
    return Filters(start=_date("start", start), end=_date("end", end), country=_text("country", country))


def _query(filters: Filters, **extra: Any) -> dict[str, str]:
    """The filters (and other parameters) as query-string values, for links that keep the view."""
    values = {
        "start": filters.start.isoformat() if filters.start else "",
        "end": filters.end.isoformat() if filters.end else "",
        "country": filters.country or "",
        **{k: str(v) for k, v in extra.items() if v is not None},
    }
    return {k: v for k, v in values.items() if v}


async def _countries() -> list[str]:
    dataset = await get_metrics_service().dataset()
    return sorted(dataset.countries.values())


def _context(request: Request, filters: Filters, **values: Any) -> dict[str, Any]:
    return {
        "user": request.scope.get("user"),
        "filters": filters,
        "query": _query(filters),
        "currency": get_settings().currency,
        **values,
    }


class MetricsController(Controller):
    path = "/metrics"
    tags = ["metrics"]  # noqa: RUF012

    @get("/kpis", summary="KPIs of the sales lines in the filters", responses=COUNTRY_ERRORS, security=BEARER)
    async def kpis(self, request: Request, start: Start = None, end: End = None, country: Country = None) -> Kpis:
        signed_in(request)
        filters = make_filters(start, end, country)
        service = get_metrics_service()
        body = await service.kpis(filters)

        def context() -> dict[str, Any]:
            return _context(request, filters, kpis=msgspec.json.decode(body, type=Kpis))

        return await answer(request, body, "metrics/kpis.html", "partials/kpis.html", context, service.tag)  # type: ignore[return-value]

    @get(
        "/series",
        summary="Revenue, units and orders per day, week, month or year",
        responses=COUNTRY_ERRORS,
        security=BEARER,
    )
    async def series(
        self,
        request: Request,
        start: Start = None,
        end: End = None,
        country: Country = None,
        freq: Freq = "month",
    ) -> Series:
        signed_in(request)
        filters = make_filters(start, end, country)
        service = get_metrics_service()
        body = await service.series(filters, freq)

        def context() -> dict[str, Any]:
            return _context(request, filters, series=msgspec.json.decode(body, type=Series), freq=freq)

        return await answer(request, body, "metrics/series.html", "partials/series.html", context, service.tag)  # type: ignore[return-value]

    @get(
        "/top-countries",
        summary="Countries ranked by revenue, units sold, orders or customers",
        responses=COUNTRY_ERRORS,
        security=BEARER,
    )
    async def top_countries(
        self,
        request: Request,
        start: Start = None,
        end: End = None,
        country: Country = None,
        by: By = "revenue",
        limit: Limit = 10,
        order: Order = "desc",
    ) -> TopCountries:
        signed_in(request)
        filters = make_filters(start, end, country)
        service = get_metrics_service()
        body = await service.top_countries(filters, by, limit, order)

        def context() -> dict[str, Any]:
            return _context(request, filters, top=msgspec.json.decode(body, type=TopCountries), by=by)

        return await answer(
            request, body, "metrics/top_countries.html", "partials/top_countries.html", context, service.tag
        )  # type: ignore[return-value]

    @get(
        "/top-countries/{country_name:str}",
        summary="One country: KPIs, rank, monthly series, top products",
        responses=COUNTRY_ERRORS,
        security=BEARER,
    )
    async def country(
        self, request: Request, country_name: FromPath[str], start: Start = None, end: End = None
    ) -> CountryDetail:
        signed_in(request)
        name = _text("country_name", country_name) or ""
        filters = make_filters(start, end, None)
        service = get_metrics_service()
        body = await service.country(name, filters)

        def context() -> dict[str, Any]:
            return _context(request, filters, detail=msgspec.json.decode(body, type=CountryDetail))

        return await answer(request, body, "metrics/country.html", "partials/country.html", context, service.tag)  # type: ignore[return-value]

    @get(
        "/page",
        summary="The sales lines in the filters, a page at a time",
        responses=COUNTRY_ERRORS,
        security=BEARER,
    )
    async def page(
        self,
        request: Request,
        start: Start = None,
        end: End = None,
        country: Country = None,
        q: Q = None,
        page: PageNo = 1,
        size: Size = 50,
    ) -> Page:
        signed_in(request)
        filters = make_filters(start, end, country)
        text = _text("q", q)
        service = get_metrics_service()
        body = await service.page(filters, text, page, size)
        query = _query(filters, q=text, size=size if size != 50 else None)
        countries = None if is_htmx(request) or wants_json(request) else await _countries()

        def context() -> dict[str, Any]:
            page_ = msgspec.json.decode(body, type=Page)
            return _context(request, filters, page=page_, q=text or "", size=size, query=query, countries=countries)

        return await answer(request, body, "metrics/page.html", "partials/page.html", context, service.tag)  # type: ignore[return-value]


class DashboardController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", name="dashboard")
    async def dashboard(
        self,
        request: Request,
        start: Start = None,
        end: End = None,
        country: Country = None,
        freq: Freq = "month",
        by: By = "revenue",
    ) -> Response:
        signed_in(request)
        filters = make_filters(start, end, country)
        service = get_metrics_service()
        tag = await service.tag()
        if tag == "0":  # nothing imported yet
            return Template(
                template_name="empty.html",
                context=_context(request, filters),
                headers=dict(NO_STORE_HEADERS),
                media_type="text/html",
            )
        if freq not in FREQS:
            raise InvalidParameter("freq", f"freq must be one of {', '.join(FREQS)}, not {freq!r}")
        if by not in RANK_BY:
            raise InvalidParameter("by", f"by must be one of {', '.join(RANK_BY)}, not {by!r}")
        # No per-user content: rendered once per dataset version and view.
        key = cache_key(tag, "dashboard", **_query(filters), freq=freq, by=by)

        async def context() -> dict[str, Any]:
            return _context(
                request,
                filters,
                kpis=msgspec.json.decode(await service.kpis(filters), type=Kpis),
                series=msgspec.json.decode(await service.series(filters, freq), type=Series),
                top=msgspec.json.decode(await service.top_countries(filters, by), type=TopCountries),
                freq=freq,
                by=by,
                countries=await _countries(),
            )

        return await view(request, key, "dashboard.html", "partials/dashboard.html", context)
