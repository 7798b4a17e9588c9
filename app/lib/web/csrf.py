"""CSRF for form posts. A signed-in browser's token is bound to its session: an HMAC of the
session's token id with the secret key, so a cookie set by another site on this host (cookie
tossing from another port or a sibling subdomain) is worth nothing. Before sign-in (the login
and register forms) it is a double-submit token: a random cookie the form must echo. The
token is read from the form body or the X-CSRF-Token header, never from the address."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, PermissionDeniedException

from app.lib.settings import get_settings
from app.lib.web.asking import FORM_TYPES, JSON

CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_KEY = "session_id"  # the scope key under which the auth middleware puts a cookie session's id


def csrf_cookie() -> str:
    """The double-submit cookie's name: `__Host-` (no Domain, Path=/, Secure) when cookies are secure."""
    return "__Host-shop_csrf" if get_settings().cookie_secure else "shop_csrf"


def _bound(session_id: str) -> str:
    return _hmac(get_settings().secret_key, session_id)


@lru_cache(maxsize=4096)  # a page carries it twice, and a session asks for many pages
def _hmac(secret: str, session_id: str) -> str:
    digest = hmac.new(secret.encode(), b"csrf:" + session_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def csrf_token(request: ASGIConnection) -> str:
    """The token forms carry (and htmx sends as a header). Before sign-in, a random token that
    is also set as a cookie on the way out if new (app.lib.web.headers)."""
    scope = request.scope
    session = scope.get(SESSION_KEY)
    if session:
        return _bound(str(session))
    claims = scope.get("auth")
    if claims is not None:  # a Bearer token: its posts need no token, its forms get a stable one
        return _bound("bearer:" + claims.jti)
    token: str | None = scope.get("csrf_token")  # type: ignore[assignment]  # our own scope key
    if token is None:
        token = request.cookies.get(csrf_cookie(), "")
        if len(token) != 43:
            token = secrets.token_urlsafe(32)
            scope["csrf_new"] = token  # type: ignore[typeddict-unknown-key]  # read by headers.before_send
        scope["csrf_token"] = token  # type: ignore[typeddict-unknown-key]  # our own scope key
    return token


async def check_csrf(request: Request) -> None:
    """Unsafe form posts must carry the token (JSON bodies cannot be sent cross-site without CORS)."""
    if request.method in {"GET", "HEAD", "OPTIONS"} or request.scope["path"].startswith("/admin"):
        return
    content_type = request.content_type[0]
    if content_type not in (JSON, *FORM_TYPES) and (content_type or request.headers.get("content-length", "0") != "0"):
        raise HTTPException(
            status_code=415, detail="send JSON (Content-Type: application/json) or a form, not " + content_type
        )
    if content_type == JSON or request.headers.get("authorization"):
        return  # neither can be sent by another site's form without CORS
    sent = request.headers.get(CSRF_HEADER)
    if not sent and content_type in FORM_TYPES:
        sent = (await request.form()).get(CSRF_FIELD)
    session = request.scope.get(SESSION_KEY)
    expected = _bound(str(session)) if session else request.cookies.get(csrf_cookie(), "")
    if not expected or not sent or not secrets.compare_digest(str(sent), expected):
        raise PermissionDeniedException(
            "the form has expired or did not come from this site: reload the page and retry"
        )
