"""piccolo-admin at /admin, for the app's admins only, without a second login.

piccolo-admin authenticates with Piccolo's own users and sessions. For a signed-in app
admin, this keeps a mirror Piccolo user (`app:<username>`, admin, random password nobody
knows) and a session for it, and hands piccolo-admin that session's cookie on each
request. The admin is read-only: data changes go through imports (which bump the dataset
version the cached figures depend on); accounts through the app.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import cast

from litestar import asgi
from litestar.response import Redirect
from litestar.types import Message, Receive, Scope, Send
from piccolo.apps.user.tables import BaseUser
from piccolo.columns import Boolean, Integer, Timestamptz, Varchar
from piccolo.table import Table
from piccolo_admin.endpoints import TableConfig, create_admin
from piccolo_api.session_auth.tables import SessionsBase

from app.auth.guards import requires_admin
from app.ingest.tables import Import, Transaction
from app.lib.settings import get_settings

SESSION_COOKIE = "id"  # what piccolo-admin's session middleware reads
SESSION_LIFETIME = timedelta(hours=1)

_sessions: dict[int, tuple[str, datetime]] = {}


class Account(Table, tablename="users"):
    """The users table as the admin sees it: no password hashes, not even through its API."""

    username = Varchar(length=30)
    is_admin = Boolean()
    is_active = Boolean()
    created_at = Timestamptz()
    token_version = Integer()


@lru_cache(maxsize=1)
def admin_app():
    return create_admin(
        tables=[
            TableConfig(
                Transaction,
                visible_columns=[
                    Transaction.id,
                    Transaction.invoice_no,
                    Transaction.stock_code,
                    Transaction.description,
                    Transaction.quantity,
                    Transaction.invoice_date,
                    Transaction.unit_price,
                    Transaction.customer_id,
                    Transaction.country,
                ],
            ),
            Import,
            TableConfig(Account, menu_group="Tables"),
        ],
        auth_table=BaseUser,
        session_table=SessionsBase,
        session_expiry=SESSION_LIFETIME,
        read_only=True,
        production=get_settings().cookie_secure,
        site_name="Shop analytics admin",
        auto_include_related=False,
    )


async def _mirror_user(user: dict) -> int:
    name = f"app:{user['username']}"
    row = await BaseUser.select(BaseUser.id).where(BaseUser.username == name).first().run()
    if row is not None:
        await BaseUser.update({BaseUser.admin: True, BaseUser.active: True}).where(BaseUser.id == row["id"]).run()
        return row["id"]
    mirror = await BaseUser.create_user(
        username=name,
        password=secrets.token_urlsafe(32)[:100],
        email=f"{user['username'].lower()}@admin.invalid",  # names are unique in any case (ids may be reused)
        admin=True,
        superuser=False,
        active=True,
    )
    return mirror.id


async def session_token(user: dict) -> str:
    """A live piccolo session for this app admin (created, or reused while it lasts)."""
    cached = _sessions.get(user["id"])
    now = datetime.now(UTC)
    fresh = cached is not None and cached[1] > now + timedelta(minutes=5)
    if fresh and await SessionsBase.get_user_id(cached[0]) is not None:  # type: ignore[index]  # the tuple is set with its value just above
        return cached[0]  # type: ignore[index]  # the tuple is set with its value just above
    mirror_id = await _mirror_user(user)
    expiry = now + SESSION_LIFETIME
    session = await SessionsBase.create_session(user_id=mirror_id, expiry_date=expiry.replace(tzinfo=None))
    _sessions[user["id"]] = (session.token, expiry)
    return session.token


def _with_session_cookie(headers: list[tuple[bytes, bytes]], token: str) -> list[tuple[bytes, bytes]]:
    cookies = [
        part.strip()
        for name, value in headers
        if name == b"cookie"
        for part in value.split(b";")
        if part.strip() and not part.strip().startswith(SESSION_COOKIE.encode() + b"=")
    ]
    cookies.append(f"{SESSION_COOKIE}={token}".encode())
    return [(n, v) for n, v in headers if n != b"cookie"] + [(b"cookie", b"; ".join(cookies))]


@asgi("/admin", is_mount=True, copy_scope=True, guards=[requires_admin], include_in_schema=False)
async def admin(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] in {"", "/"} and not scope.get("raw_path", b"").endswith(b"/"):
        await Redirect(path="/admin/", status_code=308).to_asgi_response(app=None, request=None)(scope, receive, send)  # type: ignore[arg-type]  # a Redirect needs neither app nor request to answer
        return
    token = await session_token(scope["user"])
    scope = cast(Scope, {**scope, "headers": _with_session_cookie(list(scope["headers"]), token)})
    if scope["path"] in {"", "/"}:  # the page itself: with the stylesheet that makes it look read-only
        await admin_app()(scope, receive, _with_read_only_look(send))
        return
    await admin_app()(scope, receive, send)


READ_ONLY_LOOK = (  # and the app's icon (else the browser asks for a /favicon.ico there is not)
    b'<link rel="stylesheet" href="/static/admin-readonly.css">'
    b'<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"></head>'
)


def _with_read_only_look(send: Send) -> Send:
    """piccolo-admin's UI shows Add, Edit and Delete even when its API is read-only: its HTML
    page gets a stylesheet that hides them (and says why), the length header set to match."""
    start: dict | None = None
    body = b""

    async def rewrite(message: Message) -> None:
        nonlocal start, body
        if message["type"] == "http.response.start":
            start = dict(message)
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        body += message.get("body", b"")
        if message.get("more_body"):
            return
        headers = [(name, value) for name, value in start.get("headers", []) if name.lower() != b"content-length"]
        if any(name.lower() == b"content-type" and value.startswith(b"text/html") for name, value in headers):
            body = body.replace(b"</head>", READ_ONLY_LOOK, 1)
        await send(cast(Message, {**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]}))
        await send(cast(Message, {"type": "http.response.body", "body": body, "more_body": False}))

    return rewrite
