"""The refresh task through the real taskiq Redis broker, a real worker and a real scheduler."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import msgspec
import pytest
import redis

from app.ingest.service import dataset_tag
from app.lib.cache import make_cache
from app.lib.settings import get_settings
from app.metrics.service import MetricsService, RefreshReport, refresh_marker
from app.metrics.views import (
    COUNTRY,
    KPIS,
    SERIES,
    TOP_COUNTRIES,
    CountryParams,
    KpisParams,
    SeriesParams,
    TopCountriesParams,
)
from tests import small_data
from tests.helpers import ROOT, cli_env, run_cli

pytestmark = pytest.mark.usefixtures("empty_db")


def taskiq(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """`taskiq ARGS` as the README gives it (from the project root, PYTHONPATH=.)."""
    command = [str(Path(sys.executable).with_name("taskiq")), *args]
    with log.open("w") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env={**env, "PYTHONPATH": "."},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_marker(client: redis.Redis, tag: str, log: Path, timeout: float = 90) -> RefreshReport:
    key = f"shop:{refresh_marker(tag)}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(key)
        if body is not None:
            return msgspec.json.decode(body, type=RefreshReport)
        time.sleep(0.2)
    raise AssertionError(f"no refresh of dataset {tag} within {timeout} s; worker log:\n{log.read_text()}")


@pytest.fixture
def worker_env(redis_server) -> dict[str, str]:
    return cli_env(REDIS_URL=redis_server.url)


@pytest.fixture
def worker(worker_env, tmp_path) -> Iterator[tuple[subprocess.Popen, Path]]:
    log = tmp_path / "worker.log"
    process = taskiq("worker", "app.worker:broker", "--workers", "1", env=worker_env, log=log)
    yield process, log
    stop(process)


async def test_an_import_queues_a_refresh_that_the_worker_runs_into_redis(tmp_path, redis_server, worker):
    process, log = worker
    csv = tmp_path / "first.csv"
    csv.write_text(small_data.FIRST)
    imported = run_cli("data", "import", str(csv), REDIS_URL=redis_server.url)
    assert imported.returncode == 0, imported.stderr
    assert "refresh queued" in imported.stdout

    tag = await dataset_tag()
    client = redis.Redis.from_url(redis_server.url)
    report = wait_for_marker(client, tag, log)
    assert (report.views, report.sales_lines, report.cached) == (34, 4, True)
    keys = client.keys(f"shop:metrics:{tag}:*")
    assert len(keys) == report.views + 1  # the views and the refresh report

    # a web process with the same Redis now answers from the cache without computing
    service = MetricsService(get_settings(), make_cache(replace(get_settings(), redis_url=redis_server.url)))
    try:
        assert msgspec.json.decode(await service.answer(KPIS, KpisParams())) == small_data.FIRST_KPIS
        assert msgspec.json.decode(await service.answer(SERIES, SeriesParams()))["points"] == small_data.FIRST_MONTHS
        await service.answer(COUNTRY, CountryParams(country_name="GERMANY"))
        await service.answer(TOP_COUNTRIES, TopCountriesParams(by="orders"))
        assert (service.computed, service.loads, service.cache.stats.hits) == (0, 0, 4)
    finally:
        await service.close()

    # `metrics refresh --queue` asks the same worker again
    client.delete(f"shop:{refresh_marker(tag)}")
    queued = run_cli("metrics", "refresh", "--queue", REDIS_URL=redis_server.url)
    assert queued.returncode == 0 and "refresh queued" in queued.stdout, queued.stderr
    assert wait_for_marker(client, tag, log).tag == tag
    assert process.poll() is None
    client.close()


async def test_the_scheduler_triggers_refreshes(tmp_path, redis_server, worker, worker_env):
    _, log = worker
    csv = tmp_path / "first.csv"
    csv.write_text(small_data.FIRST)
    assert run_cli("data", "import", str(csv)).returncode == 0  # no REDIS_URL: nothing queued
    tag = await dataset_tag()
    client = redis.Redis.from_url(redis_server.url)
    assert client.get(f"shop:{refresh_marker(tag)}") is None

    scheduler_log = tmp_path / "scheduler.log"
    scheduler = taskiq(
        "scheduler", "app.worker:scheduler", env={**worker_env, "REFRESH_INTERVAL_SECONDS": "2"}, log=scheduler_log
    )
    try:
        first = wait_for_marker(client, tag, log)
        client.delete(f"shop:{refresh_marker(tag)}")
        second = wait_for_marker(client, tag, log)
        assert second.refreshed_at > first.refreshed_at
    finally:
        stop(scheduler)
        client.close()


def test_sigint_lets_a_running_polars_query_finish_in_the_worker():
    """taskiq stops its worker with SIGINT and waits for the task; a Polars query must not be aborted by it.

    Polars hooks SIGINT at import and turns it into a KeyboardInterrupt inside any running query;
    `app.worker` gives SIGINT back to the handler taskiq installed (here, one that records it).
    """
    script = """
import os, signal, threading, time
received = []
signal.signal(signal.SIGINT, lambda number, frame: received.append(number))  # as taskiq's worker does
import app.worker
import polars as pl

outcome = []
started = threading.Event()
def query():
    frame = pl.DataFrame({"a": range(2_000_000)}).lazy()
    started.set()
    try:
        for _ in range(250):
            frame.group_by((pl.col("a") % 7).alias("key")).agg(pl.col("a").sort().sum()).collect()
        outcome.append("finished")
    except BaseException as error:
        outcome.append(type(error).__name__)
worker = threading.Thread(target=query)
worker.start()
started.wait()
time.sleep(0.5)
os.kill(os.getpid(), signal.SIGINT)
sent = time.monotonic()
worker.join()
print(outcome[0], received == [signal.SIGINT], time.monotonic() - sent > 0.05)
"""
    env = {**cli_env(), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    # the query ran on after the signal, to its end, and the handler still got the signal
    assert done.stdout.split() == ["finished", "True", "True"], done.stdout + done.stderr
