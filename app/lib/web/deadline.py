"""Every GET or HEAD answered within REQUEST_TIMEOUT_SECONDS: past it, a 503 instead of a hang."""

from __future__ import annotations

import asyncio
import logging

from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 4.5


class RequestTimedOut(HTTPException):
    status_code = 503


class Deadline:
    """Every database and Redis call has its own timeout, but some stack (a query timing out,
    then the connection's reset timing out too): this bounds the sum. Posts (uploads,
    imports) and static files are not limited.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        if scope["type"] != "http" or method not in ("GET", "HEAD") or scope["path"].startswith("/static/"):
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
            logger.warning("%s %s: no answer within %.1f s", method, scope["path"], REQUEST_TIMEOUT_SECONDS)
            raise RequestTimedOut(
                detail="this took too long (the database or a computation is slow); try again in a moment",
                headers={"retry-after": "5"},
            ) from None
