"""Every error in the asker's format: JSON `{status_code, detail}` for API clients, the error
page for browsers, a redirect to the login page for a signed-out browser.

It knows `AppError` (app.lib.errors), Litestar's HTTP errors and database failures; never a domain.
"""

from __future__ import annotations

import logging
import re
from types import UnionType
from typing import Annotated, Literal, Union, get_args, get_origin
from urllib.parse import quote, urlsplit

from litestar import Request, Response
from litestar.exceptions import HTTPException, InternalServerException, NotAuthorizedException
from litestar.response import Redirect, Template

from app.lib.db import database_error_message
from app.lib.errors import AppError
from app.lib.web.asking import VARY, is_htmx, wants_csv, wants_json

logger = logging.getLogger(__name__)


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


def error_response(request: Request, status: int, detail: str, extra: dict[str, str] | None = None) -> Response:
    headers = {"vary": VARY, "cache-control": "no-store", **(extra or {})}
    if wants_csv(request.scope):  # an export asked for: the message as plain text (F7)
        return Response(content=detail + "\n", status_code=status, headers=headers, media_type="text/plain")
    if wants_json(request):
        return Response(content={"status_code": status, "detail": detail}, status_code=status, headers=headers)
    return Template(
        template_name="error.html",
        context={"status": status, "detail": detail, "user": request.scope.get("user")},
        status_code=status,
        headers=headers,
        media_type="text/html",
    )


CLIENT_GONE = "client disconnected prematurely"  # Litestar's words when a body stops coming
CLIENT_CLOSED_REQUEST = 499  # nginx's status for it: nobody reads the answer, the log line says what happened


def handle_exception(request: Request, error: Exception) -> Response:
    if isinstance(error, InternalServerException) and error.detail == CLIENT_GONE:
        logger.info("%s %s: the client went away before it had sent its request", request.method, request.url.path)
        return Response(content=b"", status_code=CLIENT_CLOSED_REQUEST)
    if isinstance(error, NotAuthorizedException) and not wants_json(request) and not wants_csv(request.scope):
        if is_htmx(request):  # a partial cannot redirect the page: tell htmx to
            return Response(content=b"", status_code=401, headers={"hx-redirect": "/login"})
        return login_redirect(request)
    if isinstance(error, AppError):
        return error_response(request, error.status_code, str(error), error.headers)
    if isinstance(error, HTTPException):
        detail = error.detail
        if error.status_code == 400 and error.extra:
            detail = _validation_detail(error, request)
        return error_response(request, error.status_code, detail, dict(error.headers or {}))
    message = database_error_message(error)
    if message is not None:
        logger.error("database unavailable on %s %s: %s", request.method, request.url.path, message)
        return error_response(request, 503, "the database is unavailable; try again in a moment", {"retry-after": "5"})
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return error_response(request, 500, "something went wrong on our side; it has been logged")


# msgspec's words for a bad parameter, in a person's (the JSON keeps the same `key: ...` shape)
_PLAIN = [
    (re.compile(r"Expected `int`, got `\w+`"), lambda m, choices: "must be a whole number"),
    (re.compile(r"Expected `(?:int|float)` >= (\S+)"), lambda m, choices: f"must be {m[1]} or more"),
    (re.compile(r"Expected `(?:int|float)` <= (\S+)"), lambda m, choices: f"must be {m[1]} or less"),
    (re.compile(r"Expected `float`, got `\w+`"), lambda m, choices: "must be a number"),
    (re.compile(r"Expected `bool`, got `\w+`"), lambda m, choices: "must be true or false"),
    (re.compile(r"Expected `str` of length <= (\d+)"), lambda m, choices: f"must be at most {m[1]} characters"),
    (
        re.compile(r"Invalid enum value '(.*)'"),
        lambda m, choices: (
            f"{m[1]!r} is not allowed: use one of {', '.join(choices)}" if choices else f"{m[1]!r} is not allowed"
        ),
    ),
]


def _choices(request: Request | None, key: str) -> list[str]:
    """The allowed values of a Literal parameter of the route, for the message."""
    try:
        field = request.scope["route_handler"].parsed_fn_signature.parameters[key]  # type: ignore[union-attr]
        annotation = field.annotation
        while get_origin(annotation) is Annotated or get_origin(annotation) in (Union, UnionType):
            annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
        return [str(value) for value in get_args(annotation)] if get_origin(annotation) is Literal else []
    except (KeyError, AttributeError, StopIteration):
        return []


def _validation_detail(error: HTTPException, request: Request | None = None) -> str:
    problems = []
    for item in error.extra if isinstance(error.extra, list) else []:
        if isinstance(item, dict):
            key = item.get("key") or "parameter"
            message = str(item.get("message", "invalid"))
            for pattern, plain in _PLAIN:
                found = pattern.fullmatch(message)
                if found:
                    message = plain(found, _choices(request, key))
                    break
            problems.append(f"{key} {message}" if message.startswith("must") else f"{key}: {message}")
    return "; ".join(problems) or str(error.detail)
