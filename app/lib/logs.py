"""Logging for every process: plain text lines by default, JSON lines with LOG_FORMAT=json.

Nothing here ever logs a request's headers, cookies, query string or body: the request
log has the method, the path, the status, the duration, the client address and the user id.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from datetime import UTC, datetime

import msgspec
from litestar.logging import LoggingConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.lib.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# the request log's fields, kept as JSON keys (and nothing else from `extra`)
REQUEST_FIELDS = ("method", "path", "status", "duration_ms", "client", "user_id")
QUIET_PATHS = (b"/health", b"/ready", b"/static/")  # probes and assets: logged at DEBUG

request_logger = logging.getLogger("app.requests")
_encode = msgspec.json.Encoder(enc_hook=str).encode  # about five times json.dumps; str() for the unknown


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request fields, the traceback."""

    _second: int = -1
    _stamp: str = ""

    def _time(self, created: float) -> str:
        """ISO 8601 UTC with milliseconds; the date and time part made once per second."""
        second = int(created)
        if second != self._second:
            self._second = second
            self._stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._stamp}.{int((created - second) * 1000):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in REQUEST_FIELDS:
            if field in record.__dict__:
                line[field] = record.__dict__[field]
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return _encode(line).decode()


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT, with the local date and time made once per second (strftime per line cost
    a fifth of a request line)."""

    _second: int = -1
    _stamp: str = ""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # logging's name for it
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int(record.msecs):03d}"


def formatter(settings: Settings) -> logging.Formatter:
    return JsonFormatter() if settings.log_format == "json" else TextFormatter()


def lean_records() -> None:
    """Skip what no line here shows (the logging HOWTO's "Optimization"): finding the calling
    function, thread, process and task names. A request line costs about a fifth less."""
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # a documented logging switch missing from typeshed


class BatchingHandler(logging.StreamHandler):
    """stderr, written in batches: a request line logged on the event loop is kept and written
    with the others of the same 50 ms (one write call instead of one per request); any other
    line (start-up, shutdown, warnings, errors, other threads) is written at once, with what
    was kept before it, so nothing is lost or reordered when the process stops."""

    WINDOW_SECONDS = 0.05

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self._kept: list[str] = []
        self._scheduled = False
        self._loop_thread: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock_held():
            self._kept.append(line)
            if loop is None or record.name != request_logger.name or record.levelno >= logging.WARNING:
                self._write()
            elif not self._scheduled:
                self._scheduled = True
                loop.call_later(self.WINDOW_SECONDS, self.flush)

    def _lock_held(self) -> threading.RLock:
        assert self.lock is not None  # created by Handler.__init__
        return self.lock

    def _write(self) -> None:
        lines, self._kept, self._scheduled = self._kept, [], False
        if lines:
            self.stream.write("".join(lines))
            self.stream.flush()

    def flush(self) -> None:
        with self._lock_held():
            self._write()


def litestar_logging(settings: Settings) -> LoggingConfig:
    """The web process's logging: one handler on the root logger; uvicorn's own lines go through it too.

    Lines are written to stderr by the thread that logs, in batches (BatchingHandler): Litestar's
    queue handler (a listener thread) made each line cost twice as much on the event loop.
    """
    lean_records()
    style = {"()": JsonFormatter if settings.log_format == "json" else TextFormatter}
    return LoggingConfig(
        root={"level": settings.log_level, "handlers": ["console"]},
        handlers={"console": {"()": BatchingHandler, "level": "DEBUG", "formatter": "standard"}},
        formatters={"standard": style},
        loggers={
            "piccolo": {"level": "WARNING", "propagate": True},  # not its start-up chatter
            "uvicorn": {"level": settings.log_level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": settings.log_level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},  # the request log replaces it
        },
        log_exceptions="never",  # handle_exception logs every 500 with its traceback
    )


def configure_process_logging(settings: Settings) -> None:
    """For processes Litestar does not configure (taskiq worker and scheduler): the root handler's format."""
    lean_records()
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for handler in root.handlers:
        handler.setFormatter(formatter(settings))
    root.setLevel(settings.log_level)


class RequestLogMiddleware:
    """One line per request, when it is answered: method, path, status, duration (ms), client, user id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before it answers

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            path = scope.get("raw_path") or scope["path"].encode()
            level = logging.DEBUG if path.startswith(QUIET_PATHS) and status < 400 else logging.INFO
            if request_logger.isEnabledFor(level):
                _log_request(scope, level, status, (time.perf_counter() - started) * 1000)


def _log_request(scope: Scope, level: int, status: int, duration_ms: float) -> None:
    user = scope.get("user")
    client = scope.get("client")
    fields = {
        "method": scope.get("method"),
        "path": scope["path"],  # never the query string: it may carry a CSRF token
        "status": status,
        "duration_ms": round(duration_ms, 2),
        "client": client[0] if client else None,
        "user_id": user["id"] if user else None,
    }
    request_logger.log(
        level,
        "%s %s %d %.1fms",
        fields["method"],
        fields["path"],
        status,
        duration_ms,
        extra=fields,
    )
