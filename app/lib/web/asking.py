"""How the client wants its answer: JSON, the full page, or an htmx partial."""

from __future__ import annotations

from urllib.parse import parse_qs

from litestar.connection import ASGIConnection
from litestar.datastructures import Accept
from litestar.types import Scope

JSON = "application/json"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
VARY = "Accept, HX-Request"
NO_STORE_HEADERS = {"cache-control": "no-store", "vary": VARY}


def _asks(scope: Scope) -> tuple[bool, bool]:
    """(is an htmx partial request, wants JSON), read once per request from the raw headers."""
    asks: tuple[bool, bool] | None = scope.get("shop_asks")  # type: ignore[assignment]  # our own scope key
    if asks is None:
        hx_request = hx_other = False
        accept = b""
        for name, value in scope["headers"]:
            if name == b"hx-request":
                hx_request = value == b"true"
            elif name in (b"hx-boosted", b"hx-history-restore-request"):
                hx_other = hx_other or value == b"true"  # a whole page, not a partial
            elif name == b"accept":
                accept = value
        htmx = hx_request and not hx_other
        if htmx:
            json = False
        elif b"text/html" not in accept:  # JSON, */* or nothing: the common API-client cases, decided cheaply
            json = True
        elif b"json" not in accept:  # a browser
            json = False
        else:
            json = Accept(accept.decode("latin-1")).best_match([JSON, "text/html"], default=JSON) == JSON
        asks = (htmx, json)
        scope["shop_asks"] = asks  # type: ignore[typeddict-unknown-key]  # our own scope key
    return asks


def is_htmx(request: ASGIConnection) -> bool:
    """An htmx request for a partial (not a boosted link or a history restore, which need the page)."""
    return _asks(request.scope)[0]


def wants_json(request: ASGIConnection) -> bool:
    """JSON unless the client prefers HTML (browsers) or is htmx; `*/*` (curl, scripts) gets JSON."""
    return _asks(request.scope)[1]


def wants_csv(scope: Scope) -> bool:
    """A CSV export (F7): `format=csv` in the query, or `Accept: text/csv` without a `format`
    that says otherwise (`format` wins). Read from the raw scope: the deadline asks it too."""
    asked: bool | None = scope.get("shop_csv")  # type: ignore[assignment]  # our own scope key
    if asked is None:
        raw = scope.get("query_string", b"")
        # every GET asks this (the deadline): parse the query only when it names a format
        chosen = parse_qs(raw.decode("latin-1")).get("format", [""])[-1].lower() if b"format=" in raw else ""
        if chosen:
            asked = chosen == "csv"
        else:
            accept = next((value for name, value in scope.get("headers", ()) if name == b"accept"), b"")
            asked = b"text/csv" in accept
        scope["shop_csv"] = asked  # type: ignore[typeddict-unknown-key]  # our own scope key
    return asked
