"""The request deadline: one watchdog cancels what runs past it (a 503), nothing else."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.lib.web import deadline
from app.lib.web.deadline import Deadline, RequestTimedOut


def scope(**changes: object) -> dict:
    """A request's scope, new each time (the middleware notes what it read in it)."""
    return {"type": "http", "method": "GET", "path": "/metrics/kpis", "headers": [], "query_string": b"", **changes}


def app_that(seconds: float, answer_first: bool = False):
    async def app(scope, receive, send):
        if answer_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(seconds)

    return app


async def _sent(message):
    pass


async def test_a_request_past_its_deadline_is_a_503_and_the_others_are_untouched(monkeypatch):
    monkeypatch.setattr(deadline, "REQUEST_TIMEOUT_SECONDS", 0.3)
    slow, quick = Deadline(app_that(30)), Deadline(app_that(0.05))
    started = time.monotonic()
    with pytest.raises(RequestTimedOut) as refused:
        await slow(scope(), None, _sent)
    assert 0.3 <= time.monotonic() - started < 0.3 + 2 * Deadline.WATCH_SECONDS + 0.2
    assert refused.value.status_code == 503 and refused.value.headers == {"retry-after": "5"}
    await asyncio.gather(*(quick(scope(), None, _sent) for _ in range(20)))  # in time: no error
    assert slow._running == {} and slow._expired == set()
    await asyncio.sleep(2 * Deadline.WATCH_SECONDS)
    assert slow._watchdog is not None and slow._watchdog.done()  # it stops when nothing runs


async def test_an_answer_already_started_is_cut_not_replaced(monkeypatch):
    monkeypatch.setattr(deadline, "REQUEST_TIMEOUT_SECONDS", 0.2)
    with pytest.raises(TimeoutError):
        await Deadline(app_that(30, answer_first=True))(scope(), None, _sent)


async def test_a_cancellation_that_is_not_the_deadlines_goes_through(monkeypatch):
    monkeypatch.setattr(deadline, "REQUEST_TIMEOUT_SECONDS", 30)
    request = asyncio.ensure_future(Deadline(app_that(30))(scope(), None, _sent))
    await asyncio.sleep(0.05)
    request.cancel()  # the client went away
    with pytest.raises(asyncio.CancelledError):
        await request


async def test_posts_and_static_files_have_no_deadline(monkeypatch):
    monkeypatch.setattr(deadline, "REQUEST_TIMEOUT_SECONDS", 0.05)
    await Deadline(app_that(0.5))(scope(method="POST"), None, _sent)
    await Deadline(app_that(0.5))(scope(path="/static/app.js"), None, _sent)


async def test_a_csv_export_has_no_deadline(monkeypatch):
    monkeypatch.setattr(deadline, "REQUEST_TIMEOUT_SECONDS", 0.05)
    await Deadline(app_that(0.5))(scope(query_string=b"format=csv"), None, _sent)
    await Deadline(app_that(0.5))(scope(headers=[(b"accept", b"text/csv")]), None, _sent)
    with pytest.raises(RequestTimedOut):  # format wins over Accept
        await Deadline(app_that(0.5))(
            scope(query_string=b"format=json", headers=[(b"accept", b"text/csv")]), None, _sent
        )
