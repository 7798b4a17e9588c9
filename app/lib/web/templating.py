"""Jinja set-up: formatting filters (money, numbers, dates) and the CSRF token for forms."""

from __future__ import annotations

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


def chart_json(points: list[Any]) -> str:
    """Data for static/app.js's chart: x as Unix seconds (UTC midnight), y as revenue."""
    x = [int(datetime(p.period.year, p.period.month, p.period.day).timestamp()) for p in points]
    return json.dumps({"x": x, "y": [p.revenue for p in points]})


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
    # production (PostgreSQL) templates do not change under a running process: no stat() per render
    env.auto_reload = not get_settings().is_postgres
    env.filters.update(money=money, number=number, percent=percent, day=day, moment=moment, period=period)
    env.filters["chart_json"] = chart_json
    env.globals["defaults"] = defaults = defaults or {}
    env.globals["with_query"] = query_builder(defaults)
    engine.register_template_callable("csrf_token", lambda context: csrf_token(context["request"]))
