"""Sign-up, login, logout and the account page: forms for browsers, JSON for scripts."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from app.auth.deps import get_accounts
from app.auth.guards import SESSION_COOKIE, requires_login
from app.auth.service import (
    PASSWORD_LENGTH,
    USERNAME,
    AuthError,
    Credentials,
    PasswordChange,
    RateLimited,
    TokenOut,
    UserOut,
    user_out,
)
from app.lib.settings import get_settings
from app.lib.web.asking import FORM_TYPES, JSON, VARY, is_htmx, wants_json
from app.lib.web.csrf import SESSION_KEY, check_csrf
from app.lib.web.errors import safe_next
from app.lib.web.openapi import BEARER, errors, json_body, text

S = TypeVar("S", bound=msgspec.Struct)

# the bodies as OpenAPI tells them (the handlers read JSON or a form themselves)
_NAME = text("3 to 30 letters, digits, '_', '.' or '-'", min_length=3, max_length=30, pattern=f"^{USERNAME.pattern}$")
_PASSWORD = text("8 to 1024 characters", min_length=PASSWORD_LENGTH[0], max_length=PASSWORD_LENGTH[1])
CREDENTIALS = json_body({"username": _NAME, "password": _PASSWORD}, "The account's name and password")
PASSWORD_CHANGE = json_body(
    {"current_password": text("Your password now", max_length=PASSWORD_LENGTH[1]), "new_password": _PASSWORD},
    "Your password now and the new one",
)
NO_STORE = {"cache-control": "no-store", "vary": VARY}


async def read_body(request: Request, model: type[S]) -> tuple[S, dict[str, Any]]:
    """The body as `model`, from JSON or a form; 415 for anything else. Returns the raw fields too."""
    content_type = request.content_type[0]
    try:
        if content_type == JSON:
            # decoded straight into the model: a nested value where a text belongs stops at once
            # (a generic decode of `[[[[...` 1,000 deep would recurse until Python gives up)
            body = msgspec.json.decode(await request.body(), type=model)
            return body, msgspec.structs.asdict(body)
        if content_type in FORM_TYPES:
            raw = dict(await request.form())
            return msgspec.convert(raw, model, strict=False), raw
        raise HTTPException(status_code=415, detail="send JSON (Content-Type: application/json) or a form")
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as error:
        reason = "it is nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise AuthError(f"the body is not valid: {reason}; send a JSON object of texts") from None


def session_cookie(token: str | None, max_age: int = 0) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=token or "",
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=get_settings().cookie_secure,
        path="/",
    )


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"  # the peer, never X-Forwarded-For


def form_page(request: Request, template: str, status: int, **context: Any) -> Template:
    """A form again with its error; 200 for htmx (it does not swap 4xx), the real status otherwise."""
    context.setdefault("user", request.scope.get("user"))
    status = 200 if is_htmx(request) else status
    return Template(
        template_name=template, context=context, status_code=status, headers=NO_STORE, media_type="text/html"
    )


def go_to(request: Request, path: str) -> Response:
    """After a form: a 303 for a plain browser post, an HX-Redirect (a full page load) for htmx."""
    if is_htmx(request):
        return Response(content=b"", headers={**NO_STORE, "hx-redirect": path})
    return Redirect(path=path, status_code=303, headers=NO_STORE)


class AuthController(Controller):
    tags = ["auth"]  # noqa: RUF012

    @get("/login", include_in_schema=False)
    async def login_page(
        self,
        request: Request,
        next_: Annotated[str, QueryParameter(name="next")] = "/",
        signed_out: Annotated[bool, QueryParameter(description="after a logout: say so")] = False,
    ) -> Response:
        if request.scope.get("user"):
            return Redirect(path=safe_next(next_))
        open_ = await get_accounts().registration_open()
        return form_page(
            request, "login.html", 200, next=safe_next(next_), username="", signed_out=signed_out, open=open_
        )

    @get("/register", include_in_schema=False)
    async def register_page(self, request: Request) -> Template:
        return form_page(request, "register.html", 200, username="", open=await get_accounts().registration_open())

    @post(
        "/auth/register",
        status_code=201,
        summary="Create an account (the first one becomes admin)",
        responses=errors(400, 403, 409, 415, 503),
        operation_class=CREDENTIALS,
    )
    async def register(self, request: Request) -> UserOut:
        await check_csrf(request)
        accounts = get_accounts()
        form = request.content_type[0] != JSON
        try:
            body, _ = await read_body(request, Credentials)
            user = await accounts.register(body.username, body.password)
        except AuthError as error:
            if not form:
                raise
            raw = dict(await request.form())
            return form_page(  # type: ignore[return-value]  # a form gets a page; the declared Struct is the JSON answer
                request, "register.html", error.status_code, error=str(error), username=raw.get("username", "")
            )
        if form:  # signed in straight away
            await accounts.record_login(user["id"])
            token, lifetime = accounts.issue(user)
            response = go_to(request, "/")
            response.set_cookie(session_cookie(token, lifetime))
            return response  # type: ignore[return-value]  # a form gets a page; the declared Struct is the JSON answer
        return user_out(user)

    @post(
        "/auth/login",
        status_code=200,
        summary="Log in: a token for scripts, a cookie for browsers",
        responses=errors(400, 401, 403, 415, 429, 503),
        operation_class=CREDENTIALS,
    )
    async def login(self, request: Request) -> TokenOut:
        await check_csrf(request)
        accounts = get_accounts()
        form = request.content_type[0] != JSON
        try:
            body, raw = await read_body(request, Credentials)
            user = await accounts.authenticate(body.username, body.password, client_of(request))
        except AuthError as error:
            if not form:
                raise
            raw = dict(await request.form())
            page = form_page(
                request,
                "login.html",
                error.status_code,
                error=str(error),
                username=raw.get("username", ""),
                next=safe_next(str(raw.get("next") or "/")),
                open=await accounts.registration_open(),
            )
            if isinstance(error, RateLimited):
                page.headers["retry-after"] = str(error.retry_after)
            return page  # type: ignore[return-value]  # a form gets a page; the declared Struct is the JSON answer
        token, lifetime = accounts.issue(user)
        if form:
            response = go_to(request, safe_next(str(raw.get("next") or "/")))
            response.set_cookie(session_cookie(token, lifetime))
            return response  # type: ignore[return-value]  # a form gets a page; the declared Struct is the JSON answer
        return TokenOut(access_token=token, token_type="bearer", user=user_out(user), expires_in=lifetime)  # noqa: S106

    @post(
        "/auth/logout",
        status_code=200,
        summary="Log out: the token stops working, the cookie is cleared",
        responses=errors(401, 403, 415, 503),
        security=BEARER,
    )
    async def logout(self, request: Request) -> Response:
        claims = request.scope.get("auth")
        api = wants_json(request) and request.content_type[0] not in FORM_TYPES
        if claims is None:  # no valid token or session: nothing to log out
            if api:
                raise NotAuthorizedException("not signed in: there is no session or valid token to log out")
            ended = go_to(request, "/login?signed_out=true")  # a browser whose session had already ended
            ended.set_cookie(session_cookie(None, 0))
            return ended
        await check_csrf(request)
        await get_accounts().revoke(claims)  # in the database: an error (503) if it cannot be recorded
        if api:
            response: Response = Response(content={"detail": "logged out"}, headers=NO_STORE)
        else:
            # Clear-Site-Data drops the tab's cached pages, so Back shows no figures
            headers = {**NO_STORE, "clear-site-data": '"cache", "storage"'}
            response = Redirect(path="/login?signed_out=true", status_code=303, headers=headers)
            if is_htmx(request):
                response = Response(content=b"", headers={**headers, "hx-redirect": "/login?signed_out=true"})
        response.set_cookie(session_cookie(None, 0))
        return response

    @get("/users/me", guards=[requires_login], summary="The signed-in user", responses=errors(401), security=BEARER)
    async def me(self, request: Request) -> UserOut:
        user = request.scope["user"]
        if wants_json(request):
            return user_out(user)
        return form_page(request, "account.html", 200)  # type: ignore[return-value]  # a form gets a page; the declared Struct is the JSON answer

    @post(
        "/users/me/password",
        status_code=200,
        guards=[requires_login],
        summary="Change your password (revokes your other tokens)",
        responses=errors(400, 401, 403, 415, 503),
        operation_class=PASSWORD_CHANGE,
        security=BEARER,
    )
    async def change_password(self, request: Request) -> TokenOut:
        await check_csrf(request)
        accounts = get_accounts()
        form = request.content_type[0] != JSON
        try:
            body, _ = await read_body(request, PasswordChange)
            user = await accounts.change_password(request.scope["user"], body.current_password, body.new_password)
        except AuthError as error:
            if not form:
                raise
            return form_page(request, "account.html", error.status_code, error=str(error))  # type: ignore[return-value]  # a form gets a page; the declared Struct is the JSON answer
        token, lifetime = accounts.issue(user)  # this session goes on; every other token is refused
        if form:
            claims = accounts.decode(token)
            if claims is not None:  # the page's forms belong to the new session
                request.scope[SESSION_KEY] = claims.jti  # type: ignore[literal-required]  # our own scope key
            page = form_page(request, "account.html", 200, message="Password changed. Other sessions are signed out.")
            page.cookies.append(session_cookie(token, lifetime))
            return page  # type: ignore[return-value]  # a form gets a page; the declared Struct is the JSON answer
        return TokenOut(access_token=token, token_type="bearer", user=user_out(user), expires_in=lifetime)  # noqa: S106
