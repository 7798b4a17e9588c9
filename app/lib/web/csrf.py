"""CSRF for form posts: a double-submit token, set as a cookie and echoed by every unsafe form."""

from __future__ import annotations

import secrets

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, PermissionDeniedException

from app.lib.web.asking import FORM_TYPES, JSON

CSRF_COOKIE = "shop_csrf"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"


def csrf_token(request: ASGIConnection) -> str:
    """The token forms carry (and htmx sends as a header); set as a cookie on the way out if new."""
    scope = request.scope
    token: str | None = scope.get("csrf_token")  # type: ignore[assignment]  # our own scope key
    if token is None:
        token = request.cookies.get(CSRF_COOKIE, "")
        if len(token) != 43:
            token = secrets.token_urlsafe(32)
            scope["csrf_new"] = token  # type: ignore[typeddict-unknown-key]  # read by headers.before_send
        scope["csrf_token"] = token  # type: ignore[typeddict-unknown-key]  # our own scope key
    return token


async def check_csrf(request: Request) -> None:
    """Unsafe form posts must echo the CSRF cookie (JSON bodies cannot be sent cross-site without CORS)."""
    if request.method in {"GET", "HEAD", "OPTIONS"} or request.scope["path"].startswith("/admin"):
        return
    content_type = request.content_type[0]
    if content_type not in (JSON, *FORM_TYPES) and (content_type or request.headers.get("content-length", "0") != "0"):
        raise HTTPException(
            status_code=415, detail="send JSON (Content-Type: application/json) or a form, not " + content_type
        )
    if content_type == JSON or request.headers.get("authorization"):
        return  # neither can be sent by another site's form without CORS
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER) or request.query_params.get(CSRF_FIELD)
    if not sent and content_type in FORM_TYPES:
        sent = (await request.form()).get(CSRF_FIELD)
    if not cookie or not sent or not secrets.compare_digest(str(sent), cookie):
        raise PermissionDeniedException(
            "the form has expired or did not come from this site: reload the page and retry"
        )
