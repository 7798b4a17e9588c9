"""Who is asking: the signed-in user from the session cookie or a Bearer token, and the checks
that a route needs one (`LOGIN` on the busy routes, `requires_login` / `requires_admin` guards)."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.response import Redirect
from litestar.types import ASGIApp, Receive, Scope, Send

from app.auth.deps import get_accounts
from app.lib.web.asking import NO_STORE_HEADERS, wants_json
from app.lib.web.csrf import SESSION_KEY

SESSION_COOKIE = "shop_session"
# A route's `opt` that needs a signed-in user, checked here before Litestar parses its
# parameters (so a signed-out client learns nothing from validation) and without a guard,
# which costs a copy of the route handler on every call (a third of a warm metrics request).
LOGIN = {"login": True}
NOT_SIGNED_IN = "sign in first: send the token as `Authorization: Bearer ...` or log in"
# what a user whose password is an admin's one-time password may do: choose their own, or leave
FIRST_PASSWORD_PATHS = frozenset({"/users/me", "/users/me/password", "/auth/logout"})
FIRST_LOGIN = (
    "your password is a one-time one from an admin: choose your own first "
    "(POST /users/me/password with current_password and new_password)"
)


def _token(scope: Scope) -> tuple[str | None, bool]:
    """The Bearer token, else the session cookie, and whether it is the cookie (read from the raw
    headers: this runs on every request)."""
    cookie_header = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            if value[:7].lower() == b"bearer ":
                return value[7:].strip().decode("latin-1") or None, False
        elif name == b"cookie":
            cookie_header = value
    if SESSION_COOKIE.encode() not in cookie_header:
        return None, False
    return ASGIConnection(scope).cookies.get(SESSION_COOKIE) or None, True


class AuthMiddleware:
    """Puts the signed-in user (a dict) or None in scope["user"], from the cookie or a Bearer token,
    and refuses a signed-out request to a route marked with LOGIN."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/static/"):
            scope["user"], scope["auth"] = None, None
            token, from_cookie = _token(scope)
            if token:
                found = await get_accounts().user_for_token(token)
                if found is not None:
                    scope["user"], scope["auth"] = found
                    if from_cookie:  # a browser session: its forms' CSRF token is bound to it
                        scope[SESSION_KEY] = found[1].jti  # type: ignore[literal-required]  # our own scope key
            if scope["user"] is None and scope["route_handler"].opt.get("login"):
                raise NotAuthorizedException(NOT_SIGNED_IN)
            user = scope["user"]
            if user is not None and user.get("must_change_password") and scope["path"] not in FIRST_PASSWORD_PATHS:
                if wants_json(ASGIConnection(scope)):
                    raise PermissionDeniedException(FIRST_LOGIN)
                go = Redirect(path="/users/me", status_code=303, headers=NO_STORE_HEADERS)
                await go.to_asgi_response(app=None, request=None)(scope, receive, send)  # type: ignore[arg-type]  # a Redirect needs neither app nor request to answer
                return
        await self.app(scope, receive, send)


def signed_in(connection: ASGIConnection) -> dict:
    """The signed-in user, or 401."""
    user = connection.scope.get("user")
    if user is None:
        raise NotAuthorizedException(NOT_SIGNED_IN)
    return user


# Guards are coroutines: Litestar runs a plain function guard in a worker thread per request.
async def requires_login(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    signed_in(connection)


async def requires_admin(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    if not signed_in(connection)["is_admin"]:
        raise PermissionDeniedException("this page is for admins")
