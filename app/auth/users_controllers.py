"""The Users page and its JSON API (admins), and the invite link's page (the invitee).

Each action is one POST that takes JSON (scripts) or the page's form (with its CSRF token);
the rules and the audit log are in app.auth.users.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, HttpMethod, Request, Response, get, post, route
from litestar.exceptions import HTTPException
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from app.auth import users
from app.auth.controllers import NO_STORE, form_page, go_to, read_body, session_cookie
from app.auth.deps import get_accounts
from app.auth.guards import requires_admin
from app.auth.service import PASSWORD_LENGTH, USERNAME, AuthError
from app.lib.cache import get_cache
from app.lib.web.asking import FORM_TYPES, wants_json
from app.lib.web.csrf import check_csrf
from app.lib.web.openapi import BEARER, errors, json_body, text

_BOOL = {"type": "boolean"}
SHOWN_PREFIX = "users:shown:"
SHOWN_SECONDS = 300


class ActiveChange(msgspec.Struct):
    active: bool


class AdminChange(msgspec.Struct):
    admin: bool


class ResetRequest(msgspec.Struct, forbid_unknown_fields=False):
    method: Literal["password", "invite"] = "password"


class Shown(msgspec.Struct):
    """A new secret waiting for its one showing."""

    created: users.Created
    reset: bool


class InviteAccept(msgspec.Struct, forbid_unknown_fields=False):
    password: str


def _schema(**fields: Any) -> dict:
    from litestar.openapi.spec import OpenAPIType, Schema

    kinds = {"boolean": OpenAPIType.BOOLEAN, "string": OpenAPIType.STRING}
    return {
        name: value if not isinstance(value, dict) else Schema(type=kinds[value["type"]], enum=value.get("enum"))
        for name, value in fields.items()
    }


NEW_USER = json_body(
    _schema(
        username=text(
            "3 to 30 letters, digits, '_', '.' or '-'", min_length=3, max_length=30, pattern=f"^{USERNAME.pattern}$"
        ),
        is_admin=_BOOL,
        method={"type": "string", "enum": ["password", "invite"]},
    ),
    "The new account: its name, whether admin, and how the person gets in (a one-time password or an invite link)",
    required=["username"],
)
ACTIVE = json_body(_schema(active=_BOOL), "true to reactivate, false to deactivate")
ADMIN = json_body(_schema(admin=_BOOL), "true to make admin, false to revoke")
RESET = json_body(
    _schema(method={"type": "string", "enum": ["password", "invite"]}),
    "A new one-time password (default) or an invite link",
    required=[],
    optional=True,
)


def _form(request: Request) -> bool:
    """A browser's form post (answered with the page); anything else gets JSON."""
    return request.content_type[0] in FORM_TYPES


class UsersController(Controller):
    path = "/users"
    guards = [requires_admin]  # noqa: RUF012
    tags = ["users"]  # noqa: RUF012
    security = BEARER

    async def _page(self, request: Request, status: int = 200, **context: Any) -> Template:
        context["users"] = await users.list_users()
        context.setdefault("form", {})
        return form_page(request, "users.html", status, **context)

    @get("/", summary="List the accounts (admins)", responses=errors(401, 403))
    async def index(
        self,
        request: Request,
        done: Annotated[str, QueryParameter(description="the page's note after a change", max_length=20)] = "",
        shown: Annotated[str, QueryParameter(description="the note of a secret to show once", max_length=40)] = "",
    ) -> list[users.UserRow]:
        if wants_json(request):
            return await users.list_users()
        context: dict[str, Any] = {"message": _DONE.get(done, "")}
        kept = await get_cache().pop(f"{SHOWN_PREFIX}{shown}") if shown else None
        if kept is not None:
            once = msgspec.json.decode(kept, type=Shown)
            context.update(created=once.created, reset=once.reset, base=_base(request))
        elif shown:
            context["message"] = "That password or link was shown once already: reset it to make a new one."
        return await self._page(request, **context)  # type: ignore[return-value]  # a browser gets the page; the declared list is the JSON answer

    # Litestar's own OPTIONS answer for a path whose GET and POST are added one after the
    # other names only the first one's methods (its Allow said "OPTIONS, POST"). This one is
    # right; its name sorts before the others', so it is the path's first handler and
    # Litestar makes none of its own.
    @route("/", http_method=[HttpMethod.OPTIONS], include_in_schema=False)
    async def allowed_methods(self) -> Response:
        return Response(content=None, status_code=204, headers={"allow": "GET, OPTIONS, POST"})

    @post(
        "/",
        status_code=201,
        summary="Create an account with a one-time password or an invite link (admins)",
        responses=errors(400, 401, 403, 409, 415, 503),
        operation_class=NEW_USER,
    )
    async def create(self, request: Request) -> users.Created:
        await check_csrf(request)
        try:
            body, _ = await read_body(request, users.NewUser)
            created = await users.create_user(request.scope["user"], body)
        except AuthError as error:
            if not _form(request):
                raise
            raw = dict(await request.form())
            return await self._page(request, error.status_code, error=str(error), form=raw)  # type: ignore[return-value]  # a form gets a page
        if _form(request):
            return await self._show_once(request, created, reset=False)  # type: ignore[return-value]  # a form gets a page
        return created

    @post(
        "/{user_id:int}/active",
        status_code=200,
        summary="Deactivate (its tokens stop working) or reactivate an account (admins)",
        responses=errors(400, 401, 403, 404, 409, 415, 503),
        operation_class=ACTIVE,
    )
    async def active(self, request: Request, user_id: FromPath[int]) -> users.UserRow:
        await check_csrf(request)
        return await self._change(
            request, lambda body: users.set_active(request.scope["user"], user_id, body.active), ActiveChange
        )

    @post(
        "/{user_id:int}/admin",
        status_code=200,
        summary="Make an account admin, or revoke it (never the last active admin) (admins)",
        responses=errors(400, 401, 403, 404, 409, 415, 503),
        operation_class=ADMIN,
    )
    async def admin(self, request: Request, user_id: FromPath[int]) -> users.UserRow:
        await check_csrf(request)
        return await self._change(
            request, lambda body: users.set_admin(request.scope["user"], user_id, body.admin), AdminChange
        )

    @post(
        "/{user_id:int}/password-reset",
        status_code=200,
        summary="Reset a password: a new one-time password or invite link; its tokens stop working (admins)",
        responses=errors(400, 401, 403, 404, 415, 503),
        operation_class=RESET,
    )
    async def reset(self, request: Request, user_id: FromPath[int]) -> users.Created:
        await check_csrf(request)
        try:
            body = (await read_body(request, ResetRequest))[0] if await request.body() else ResetRequest()
            created = await users.reset_password(request.scope["user"], user_id, body.method)
        except AuthError as error:
            if not _form(request):
                raise
            return await self._page(request, error.status_code, error=str(error))  # type: ignore[return-value]  # a form gets a page
        if _form(request):
            return await self._show_once(request, created, reset=True)  # type: ignore[return-value]  # a form gets a page
        return created

    async def _show_once(self, request: Request, created: users.Created, reset: bool) -> Response | Template:
        """Post/Redirect/Get for a new secret: it waits (5 minutes at most) under a random note
        for the page the browser is sent to, which reads it once, so a reload posts nothing
        again and shows no secret again. Without the cache (Redis down) the page is the answer."""
        note = secrets.token_urlsafe(16)
        shown = msgspec.json.encode(Shown(created, reset))
        if await get_cache().set(f"{SHOWN_PREFIX}{note}", shown, expires_in=SHOWN_SECONDS):
            return go_to(request, f"/users?shown={note}")
        return await self._page(request, 200, created=created, reset=reset, base=_base(request))

    async def _change(self, request: Request, change: Any, model: type[msgspec.Struct]) -> users.UserRow:
        try:
            body, _ = await read_body(request, model)
            row = await change(body)
        except AuthError as error:
            if not _form(request):
                raise
            return await self._page(request, error.status_code, error=str(error))  # type: ignore[return-value]  # a form gets a page
        if _form(request):  # Post/Redirect/Get: a reload does not post again
            return go_to(request, f"/users?done={request.url.path.rsplit('/', 1)[-1]}")  # type: ignore[return-value]  # a form gets a redirect
        return row


_DONE = {"active": "Saved: the account's access changed.", "admin": "Saved: the account's role changed."}


def _base(request: Request) -> str:
    """The instance's address as the admin sees it, for the invite link they pass on."""
    return str(request.base_url).rstrip("/")


class InviteController(Controller):
    path = "/invite"
    include_in_schema = False

    @get("/{token:str}")
    async def page(self, request: Request, token: FromPath[str]) -> Template:
        name = await users.invite_is_valid(token)
        if name is None:
            return form_page(request, "invite.html", 404, invalid=True, token="")
        return form_page(request, "invite.html", 200, invitee=name, token=token)

    @post("/{token:str}")
    async def accept(self, request: Request, token: FromPath[str]) -> Response:
        await check_csrf(request)
        name = await users.invite_is_valid(token)
        try:
            body, _ = await read_body(request, InviteAccept)
            if len(body.password) > PASSWORD_LENGTH[1]:
                raise AuthError(f"password: use {PASSWORD_LENGTH[0]} to {PASSWORD_LENGTH[1]} characters")
            user = await users.accept_invite(token, body.password)
        except AuthError as error:
            if isinstance(error, users.NotFound):
                return form_page(request, "invite.html", 404, invalid=True, token="")
            return form_page(request, "invite.html", error.status_code, invitee=name, token=token, error=str(error))
        except HTTPException:
            raise
        accounts = get_accounts()
        await accounts.record_login(user["id"])
        session, lifetime = accounts.issue(user)
        response = go_to(request, "/")
        response.headers.update(NO_STORE)
        response.set_cookie(session_cookie(session, lifetime))
        return response
