"""Jinja set-up: formatting filters (money, numbers, dates) and the CSRF token for forms."""

from __future__ import annotations

import calendar
import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from litestar.plugins.jinja import JinjaTemplateEngine

from app.lib.settings import get_settings
from app.lib.web.csrf import csrf_token

SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$", "JPY": "¥"}


def money(value: float | None, currency: str = "GBP") -> str:
    if value is None:
        return "–"
    symbol = SYMBOLS.get(currency)
    amount = f"{abs(value):,.2f}"
    sign = "−" if value < 0 else ""
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"


def number(value: float | int | None) -> str:
    if value is None:
        return "–"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f} %"


def day(value: date | datetime | None) -> str:
    return "–" if value is None else f"{value:%-d %b %Y}"


def span(start: date, end: date) -> str:
    """A window in the app's date style: "2 Oct - 31 Oct 2011" (both years when they differ), with an en dash."""
    if start.year == end.year:
        return f"{start:%-d %b} – {end:%-d %b %Y}"
    return f"{start:%-d %b %Y} – {end:%-d %b %Y}"


def moment(value: datetime | None) -> str:
    return "–" if value is None else f"{value:%-d %b %Y, %H:%M}"


def period(value: date, freq: str) -> str:
    if freq == "year":
        return f"{value:%Y}"
    if freq == "month":
        return f"{value:%b %Y}"
    if freq == "week":
        return f"week of {value:%-d %b %Y}"
    return f"{value:%a %-d %b %Y}"


def chart_json(points: list[Any], freq: str = "month", currency: str = "GBP") -> str:
    """Data for static/app.js's chart: x as Unix seconds (UTC midnight), y as revenue, the
    period's label as the tables spell it, and the currency's symbol (for the axis and the tooltip)."""
    return json.dumps(
        {
            "x": [calendar.timegm(p.period.timetuple()) for p in points],
            "y": [p.revenue for p in points],
            "labels": [period(p.period, freq) + (" (partial)" if p.partial else "") for p in points],
            "partial": [p.partial for p in points],
            "freq": freq,
            "symbol": SYMBOLS.get(currency, currency + " "),
        }
    )


def stacked_json(
    points: list[Any], fields: tuple[str, str], names: tuple[str, str], currency: str | None = None
) -> str:
    """Data for static/app.js's stacked monthly bars: two figures of each point, the first at
    the bottom; `currency` when they are amounts (the axis and tooltip then show its symbol)."""
    return json.dumps(
        {
            "x": [calendar.timegm(p.period.timetuple()) for p in points],
            "labels": [period(p.period, "month") for p in points],
            "stacks": [[getattr(p, field) for p in points] for field in fields],
            "names": list(names),
            "symbol": SYMBOLS.get(currency, currency + " ") if currency else "",
        }
    )


def price(value: float | None, currency: str = "GBP", places: int = 2) -> str:
    """A unit price: `places` decimals (the transactions page uses 3 for the whole column when a
    price on it has a third decimal, so the column's decimals line up)."""
    if value is None:
        return "–"
    symbol = SYMBOLS.get(currency)
    amount = f"{abs(value):,.{places}f}"
    sign = "−" if value < 0 else ""
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"


def price_places(values: list[float]) -> int:
    """3 if any of the prices has a third decimal (NUMERIC(12, 3) prices), else 2."""
    return 3 if any(round(value * 1000) % 10 for value in values if value is not None) else 2


def query_builder(defaults: dict[str, Any]) -> Callable[..., str]:
    def with_query(query: dict[str, str], **changes: Any) -> str:
        """`?` + the query with some values changed (None, "" or the parameter's default removes them)."""
        removed = {key for key, value in changes.items() if value in (None, "") or value == defaults.get(key)}
        merged = {**query, **{k: str(v) for k, v in changes.items() if k not in removed}}
        for key in removed:
            merged.pop(key, None)
        return "?" + urlencode(merged) if merged else "?"

    return with_query


def configure(engine: JinjaTemplateEngine, defaults: dict[str, Any] | None = None) -> None:
    """The filters and globals; `defaults` are the query parameters' defaults, which links leave out."""
    env = engine.engine
    # templates do not change under a running process: no stat() of each template per render
    # (a tenth of a warm page's time); TEMPLATE_RELOAD=true while editing them
    env.auto_reload = get_settings().template_reload
    env.filters.update(money=money, number=number, percent=percent, day=day, moment=moment, period=period)
    env.filters["span"] = span
    env.filters["chart_json"] = chart_json
    env.filters["stacked_json"] = stacked_json
    env.filters["price"] = price
    env.globals["price_places"] = price_places
    env.globals["defaults"] = defaults = defaults or {}
    env.globals["with_query"] = query_builder(defaults)
    engine.register_template_callable("csrf_token", lambda context: csrf_token(context["request"]))
