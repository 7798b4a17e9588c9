"""Every GET or HEAD answered within REQUEST_TIMEOUT_SECONDS (a CSV export aside): past it, a 503 instead of a hang."""

from __future__ import annotations

import asyncio
import logging

from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.lib.web.asking import wants_csv

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 4.5


class RequestTimedOut(HTTPException):
    status_code = 503


class Deadline:
    """Every database and Redis call has its own timeout, but some stack (a query timing out,
    then the connection's reset timing out too): this bounds the sum. Posts (uploads,
    imports) and static files are not limited.

    One watchdog per process looks at the requests in flight every WATCH_SECONDS and cancels
    those past their deadline (cancelled here, they answer 503): a request costs a dict entry,
    where `asyncio.timeout` per request (a timer scheduled and cancelled) cost 4 us, a fortieth
    of a warm answer. A deadline is kept to within WATCH_SECONDS.
    """

    WATCH_SECONDS = 0.2

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._running: dict[asyncio.Task, float] = {}  # request task -> its deadline (loop time)
        self._expired: set[asyncio.Task] = set()
        self._watchdog: asyncio.Task | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        if (
            scope["type"] != "http"
            or method not in ("GET", "HEAD")
            or scope["path"].startswith("/static/")
            or wants_csv(scope)  # an export streams for as long as the table takes
        ):
            await self.app(scope, receive, send)
            return
        answering = False

        async def send_and_note(message: Message) -> None:
            nonlocal answering
            answering = True
            await send(message)

        task = asyncio.current_task()
        assert task is not None  # an ASGI request runs in a task
        loop = asyncio.get_running_loop()
        self._running[task] = loop.time() + REQUEST_TIMEOUT_SECONDS
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = loop.create_task(self._watch())
        try:
            await self.app(scope, receive, send_and_note)
        except asyncio.CancelledError:
            if task not in self._expired:
                raise  # not ours: the client went away, or the server stops
            task.uncancel()
            if answering:
                raise TimeoutError from None
            logger.warning("%s %s: no answer within %.1f s", method, scope["path"], REQUEST_TIMEOUT_SECONDS)
            raise RequestTimedOut(
                detail="this took too long (the database or a computation is slow); try again in a moment",
                headers={"retry-after": "5"},
            ) from None
        finally:
            self._running.pop(task, None)
            self._expired.discard(task)

    async def _watch(self) -> None:
        """Cancel the requests past their deadline; ends when none is in flight."""
        loop = asyncio.get_running_loop()
        while self._running:
            await asyncio.sleep(self.WATCH_SECONDS)
            now = loop.time()
            for task, deadline in list(self._running.items()):
                if deadline <= now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()
