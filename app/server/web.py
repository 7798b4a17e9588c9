"""HTTP plumbing shared by every controller: who is asking (auth), how to answer (JSON, page
or htmx partial), errors in the asker's format, CSRF and the security headers."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any
from urllib.parse import quote, urlsplit

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Accept
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.response import Redirect, Template
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from markupsafe import Markup

from app.auth.deps import get_accounts
from app.lib.db import database_error_message
from app.lib.settings import get_settings

logger = logging.getLogger(__name__)

SESSION_COOKIE = "shop_session"
CSRF_COOKIE = "shop_csrf"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"
VARY = "Accept, HX-Request"
NO_STORE_HEADERS = {"cache-control": "no-store", "vary": VARY}
JSON = "application/json"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# piccolo-admin's interface (Vue + Font Awesome) and Redoc (/schema) inject <style> elements: inline
# styles, and only styles, are allowed there. Scripts stay 'self' only everywhere.
ADMIN_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


# -- who is asking -----------------------------------------------------------------------


def _token(scope: Scope) -> str | None:
    """The Bearer token, else the session cookie (read from the raw headers: this runs on every request)."""
    cookie_header = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            if value[:7].lower() == b"bearer ":
                return value[7:].strip().decode("latin-1") or None
        elif name == b"cookie":
            cookie_header = value
    if SESSION_COOKIE.encode() not in cookie_header:
        return None
    return ASGIConnection(scope).cookies.get(SESSION_COOKIE) or None


class AuthMiddleware:
    """Puts the signed-in user (a dict) or None in scope["user"], from the cookie or a Bearer token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/static/"):
            scope["user"], scope["auth"] = None, None
            token = _token(scope)
            if token:
                found = await get_accounts().user_for_token(token)
                if found is not None:
                    scope["user"], scope["auth"] = found
        await self.app(scope, receive, send)


REQUEST_TIMEOUT_SECONDS = 4.5


class RequestTimedOut(HTTPException):
    status_code = 503


class Deadline:
    """A GET or HEAD is answered within REQUEST_TIMEOUT_SECONDS: past it, a 503 instead of a hang.

    Every database and Redis call has its own timeout, but some stack (a query timing out,
    then the connection's reset timing out too): this bounds the sum. Posts (uploads,
    imports) and static files are not limited.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        answering = False

        async def send_and_note(message: Message) -> None:
            nonlocal answering
            answering = True
            await send(message)

        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                await self.app(scope, receive, send_and_note)
        except TimeoutError:
            if answering:
                raise
            logger.warning("%s %s: no answer within %.1f s", scope["method"], scope["path"], REQUEST_TIMEOUT_SECONDS)
            raise RequestTimedOut(
                detail="this took too long (the database or a computation is slow); try again in a moment",
                headers={"retry-after": "5"},
            ) from None


def signed_in(connection: ASGIConnection) -> dict:
    """The signed-in user, or 401. Called first thing by the busiest handlers: a Litestar guard
    costs a copy of the route handler on every call (a third of a warm metrics request)."""
    user = connection.scope.get("user")
    if user is None:
        raise NotAuthorizedException("sign in first: send the token as `Authorization: Bearer ...` or log in")
    return user


# Guards are coroutines: Litestar runs a plain function guard in a worker thread per request.
async def requires_login(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    signed_in(connection)


async def requires_admin(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    await requires_login(connection, handler)
    if not connection.scope["user"]["is_admin"]:
        raise PermissionDeniedException("this page is for admins")


# -- how to answer -----------------------------------------------------------------------


def _asks(scope: Scope) -> tuple[bool, bool]:
    """(is an htmx partial request, wants JSON), read once per request from the raw headers."""
    asks = scope.get("shop_asks")
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
        asks = scope["shop_asks"] = (htmx, json)  # type: ignore[typeddict-unknown-key]
    return asks


def is_htmx(request: ASGIConnection) -> bool:
    """An htmx request for a partial (not a boosted link or a history restore, which need the page)."""
    return _asks(request.scope)[0]


def wants_json(request: ASGIConnection) -> bool:
    """JSON unless the client prefers HTML (browsers) or is htmx; `*/*` (curl, scripts) gets JSON."""
    return _asks(request.scope)[1]


class Rendered:
    """Rendered HTML (a page's title and main block, or an htmx partial), least recently used first out.

    Only what depends on the request's view and the data goes in: never the nav bar (user) or
    a CSRF token, which the page shell adds on every request.
    """

    def __init__(self, entries: int = 128, max_bytes: int = 256_000) -> None:
        self.entries = entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Markup, Markup]] = OrderedDict()

    def get(self, key: Hashable) -> tuple[Markup, Markup] | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: Hashable, title: Markup, main: Markup) -> tuple[Markup, Markup]:
        if len(main) <= self.max_bytes:
            self._items[key] = (title, main)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)
        return title, main


RENDERED = Rendered()


def render_blocks(request: Request, name: str, context: dict[str, Any]) -> tuple[Markup, Markup]:
    """A page template's `title` and `main` blocks, without the shell around them."""
    template = request.app.template_engine.get_template(name)
    jinja_context = template.new_context(context)
    title = "".join(template.blocks["title"](jinja_context))
    return Markup(title), Markup("".join(template.blocks["main"](jinja_context)))  # noqa: S704 - autoescaped renders


def page_response(request: Request, title: Markup, main: Markup) -> Response:
    """The page shell (nav bar with the user, footer) around a rendered main block.

    Rendered here rather than through Litestar's Template response, which cost as much again.
    """
    shell = request.app.template_engine.get_template("shell.html")
    html = shell.render(request=request, user=request.scope.get("user"), title=title, main=main)
    return Response(content=html, media_type="text/html", headers=dict(NO_STORE_HEADERS))


async def view(
    request: Request, key: Hashable, page: str, partial: str, context: Callable[[], Awaitable[dict[str, Any]]]
) -> Response:
    """The full page, or for htmx the partial, of one view: rendered once per `key` (RENDERED).

    `key` must name everything the HTML depends on except the user and the CSRF token, which
    the page shell adds on every request; `context` is only awaited when this is rendered.
    """
    htmx = is_htmx(request)
    template = partial if htmx else page
    rendered = RENDERED.get((template, key))
    if rendered is None:
        values = await context()
        if htmx:
            html = Markup(request.app.template_engine.get_template(partial).render(**values))  # noqa: S704
            rendered = RENDERED.put((template, key), Markup(""), html)
        else:
            rendered = RENDERED.put((template, key), *render_blocks(request, page, values))
    if htmx:
        return Response(content=str(rendered[1]), media_type="text/html", headers=dict(NO_STORE_HEADERS))
    return page_response(request, *rendered)


async def answer(
    request: Request,
    body: bytes,
    page: str,
    partial: str,
    context: Callable[[], dict[str, Any]],
    version: Callable[[], Awaitable[str]],
) -> Response:
    """One result, three ways: JSON bytes as they are, the full page, or the htmx partial.

    For HTML only, `version()` gives the dataset version (the page's lists, such as the
    countries, depend on it) and `context` is called when this view of that version has not
    been rendered yet: API clients never pay for either, browsers rarely for the rendering.
    """
    if wants_json(request):
        return Response(content=body, media_type=JSON, headers=dict(NO_STORE_HEADERS))

    async def values() -> dict[str, Any]:
        return context()

    return await view(request, (await version(), request.scope["query_string"], body), page, partial, values)


# -- CSRF --------------------------------------------------------------------------------


def csrf_token(request: ASGIConnection) -> str:
    """The token forms carry (and htmx sends as a header); set as a cookie on the way out if new."""
    scope = request.scope
    token = scope.get("csrf_token")
    if token is None:
        token = request.cookies.get(CSRF_COOKIE, "")
        if len(token) != 43:
            token = secrets.token_urlsafe(32)
            scope["csrf_new"] = token
        scope["csrf_token"] = token
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


# -- on every response -------------------------------------------------------------------


PAGE_HEADERS = [(b"content-security-policy", CSP.encode()), *SECURITY_HEADERS]
ADMIN_HEADERS = [(b"content-security-policy", ADMIN_CSP.encode()), *SECURITY_HEADERS]


async def before_send(message: Message, scope: Scope) -> None:
    """Security headers on every response (pages, JSON, errors, static files, /admin) and the CSRF cookie."""
    if message["type"] != "http.response.start":
        return
    headers = list(message.get("headers", ()))
    path = scope.get("raw_path") or scope.get("path", "").encode()
    if path.startswith((b"/admin", b"/schema")):  # mounted apps may set some of these themselves
        present = {name.lower() for name, _ in headers}
        headers.extend(header for header in ADMIN_HEADERS if header[0] not in present)
    else:
        headers.extend(PAGE_HEADERS)
    new = scope.get("csrf_new")
    if new:  # a URL-safe token needs no quoting; Litestar's Cookie.to_header cost a fifth of a page
        secure = "; Secure" if get_settings().cookie_secure else ""
        headers.append((b"set-cookie", f"{CSRF_COOKIE}={new}; HttpOnly; Path=/; SameSite=Lax{secure}".encode()))
    message["headers"] = headers


# -- errors in the asker's format --------------------------------------------------------


def safe_next(path: str) -> str:
    """Only a local path may be a redirect target (no //host, no scheme)."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def login_redirect(request: Request) -> Response:
    raw = request.scope.get("raw_path")  # the path as asked, also under a mount (/admin)
    path = raw.decode("latin-1") if raw else request.url.path
    target = path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(path=f"/login?next={quote(safe_next(target), safe='')}", status_code=303)


def error_response(request: Request, status: int, detail: str, extra: dict | None = None) -> Response:
    headers = {"vary": VARY, "cache-control": "no-store", **(extra or {})}
    if wants_json(request):
        return Response(content={"status_code": status, "detail": detail}, status_code=status, headers=headers)
    user = request.scope.get("user")
    return Template(
        template_name="error.html",
        context={"status": status, "detail": detail, "user": user},
        status_code=status,
        headers=headers,
        media_type="text/html",
    )


def handle_exception(request: Request, error: Exception) -> Response:
    from app.auth.service import AuthError, RateLimited
    from app.metrics.analytics import InvalidParameter, MetricsError, UnknownCountry

    if isinstance(error, NotAuthorizedException) and not wants_json(request):
        if is_htmx(request):  # a partial cannot redirect the page: tell htmx to
            return Response(content=b"", status_code=401, headers={"hx-redirect": "/login"})
        return login_redirect(request)
    if isinstance(error, UnknownCountry):
        return error_response(request, 404, str(error))
    if isinstance(error, InvalidParameter | MetricsError):
        return error_response(request, 400, str(error))
    if isinstance(error, RateLimited):
        return error_response(request, 429, str(error), {"retry-after": str(error.retry_after)})
    if isinstance(error, AuthError):
        return error_response(request, error.status_code, str(error))
    if isinstance(error, HTTPException):
        detail = error.detail
        if error.status_code == 400 and getattr(error, "extra", None):
            detail = _validation_detail(error)
        headers = dict(error.headers or {})
        return error_response(request, error.status_code, detail, headers)
    message = database_error_message(error)
    if message is not None:
        logger.error("database unavailable on %s %s: %s", request.method, request.url.path, message)
        return error_response(request, 503, "the database is unavailable; try again in a moment", {"retry-after": "5"})
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return error_response(request, 500, "something went wrong on our side; it has been logged")


def _validation_detail(error: HTTPException) -> str:
    problems = []
    for item in error.extra or []:  # type: ignore[union-attr]
        if isinstance(item, dict):
            key = item.get("key") or "parameter"
            problems.append(f"{key}: {item.get('message', 'invalid')}")
    return "; ".join(problems) or str(error.detail)
