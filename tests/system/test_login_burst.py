"""A burst of 40 concurrent logins against a live server: bounded hashing keeps memory flat."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.helpers import live_server

pytestmark = pytest.mark.usefixtures("empty_db")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM): what a burst cost at its worst."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_forty_concurrent_logins_stay_within_memory(tmp_path):
    from app.auth.tables import User

    await User.delete(force=True).run()
    with live_server(tmp_path) as (server, base):
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            accounts = [{"username": f"user{i}", "password": f"password number {i}"} for i in range(8)]
            for account in accounts:
                assert (await client.post("/auth/register", json=account)).status_code == 201
            before = peak_rss_mb(server.pid)
            burst = [client.post("/auth/login", json=accounts[i % len(accounts)]) for i in range(40)]
            answers = await asyncio.gather(*burst)
            after = peak_rss_mb(server.pid)
        assert [a.status_code for a in answers] == [200] * 40
        # argon2id takes 64 MiB per hash; unbounded, 40 at once took 2.1 GB (DESIGN.md)
        assert after - before < 300, f"peak RSS grew from {before:.0f} to {after:.0f} MB"
