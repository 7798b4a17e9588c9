"""A parquet bomb uploaded to a real server: refused from its metadata by the import job (a child
process), the web process's memory flat.

The file: 30 million identical rows in one zstd row group, a few hundred KB (the one that took a
web process from 418 MB to 3.84 GB). The server's RSS is sampled while it is uploaded.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import GOOD, KAGGLE_HEADER, live_server

pytestmark = pytest.mark.usefixtures("empty_db")

ROWS = 30_000_000


def bomb(path: Path) -> Path:
    zeros = pa.array(np.zeros(ROWS, dtype=np.int8))
    columns = [pa.DictionaryArray.from_arrays(zeros, pa.array([value])) for value in GOOD[0].split(",")]
    pq.write_table(pa.Table.from_arrays(columns, names=KAGGLE_HEADER.split(",")), path, compression="zstd")
    return path


def test_a_parquet_bomb_is_refused_and_costs_the_web_process_nothing(tmp_path):
    from app.auth.tables import User

    asyncio.run(User.delete(force=True).run())  # the account registered below is the first: an admin
    path = bomb(tmp_path / "bomb.parquet")
    assert path.stat().st_size < 1_000_000
    with live_server(tmp_path) as (server, base):
        account = {"username": "admin", "password": "correct horse"}
        httpx.post(f"{base}/auth/register", json=account).raise_for_status()
        token = httpx.post(f"{base}/auth/login", json=account).json()["access_token"]
        process = psutil.Process(server.pid)
        before = process.memory_info().rss
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, process.memory_info().rss)
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            with path.open("rb") as file:
                started = httpx.post(
                    f"{base}/data/upload",
                    files={"file": ("bomb.parquet", file)},
                    headers={"authorization": f"Bearer {token}", "accept": "text/html"},
                    timeout=60,
                )
            assert started.status_code == 303, started.text  # saved; the import job checks it
            deadline = time.monotonic() + 60
            while True:
                answer = httpx.get(base + started.headers["location"], headers={"authorization": f"Bearer {token}"})
                if 'data-job-state="' not in answer.text or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        finally:
            done.set()
            sampler.join()
        after = process.memory_info().rss
        assert answer.status_code == 400, answer.text
        assert "30,000,000 rows" in answer.text and "once read" in answer.text
        growth = (peak - before) / 1e6
        print(f"\nweb RSS: {before / 1e6:.0f} MB before, peak {peak / 1e6:.0f} MB, {after / 1e6:.0f} MB after")
        assert growth < 100, f"the web process grew by {growth:.0f} MB on a refused upload"
        status = httpx.get(f"{base}/metrics/kpis", headers={"authorization": f"Bearer {token}"})
        assert status.json()["orders"] == 0  # nothing was imported
