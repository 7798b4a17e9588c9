"""Uploads are imported by a child process; the Data page follows the job until its outcome."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import msgspec
import pytest

from app.ingest import jobs
from tests.helpers import HTML, browser_login, follow_import, form_token, register

pytestmark = pytest.mark.usefixtures("empty_db")


async def test_the_reference_file_is_imported_by_a_child_while_the_page_follows_it(client, data_csv_gz: Path):
    await register(client)
    await browser_login(client)
    token = await form_token(client, "/data")
    started = await client.post(
        "/data/upload",
        files={"file": ("online_retail.csv.gz", data_csv_gz.read_bytes())},
        data={"_csrf": token},
        headers=HTML,
    )
    assert started.status_code == 303
    job_page = started.headers["location"]
    folder = jobs.job_folder(job_page.rsplit("/", 1)[1])
    assert folder is not None
    seen = set()
    deadline = time.monotonic() + 120
    while True:
        state = jobs.read_state(folder)
        seen.add(state.state)
        if state.state in ("done", "failed"):
            break
        if state.state == "running":
            page = await client.get(job_page, headers=HTML)
            if page.status_code == 303:  # the job ended between the state's read and the page's
                assert jobs.read_state(folder).state == "done"
                continue
            assert page.status_code == 200 and 'data-job-state="running"' in page.text
            assert 'hx-trigger="every 1s"' in page.text  # the page polls
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert "running" in seen and state.state == "done", state.error
    assert state.total > 500_000 and state.lines > 0  # progress was reported
    assert state.pid not in (0, os.getpid())  # imported by another process
    result = await follow_import(client, started)
    assert "Imported online_retail.csv.gz" in result.text and "541,909 rows" in result.text
    assert not (folder / "upload").exists()  # the uploaded file is gone once imported


async def test_job_ids_are_checked_and_a_silent_job_is_reported_dead(client, tmp_path):
    await register(client)
    await browser_login(client)
    for bad in ["nope", "../../secret_key", "a" * 32]:
        assert (await client.get(f"/data/jobs/{bad}", headers=HTML)).status_code == 404, bad
    folder = jobs.jobs_dir() / ("b" * 32)
    folder.mkdir(parents=True, exist_ok=True)
    state = jobs.State(state="running", lines=10, total=100)
    (folder / "state.json").write_bytes(msgspec.json.encode(state))
    running = await client.get(f"/data/jobs/{'b' * 32}", headers=HTML)
    assert 'data-job-state="running"' in running.text and "10 of about 100 lines" in running.text
    poll = await client.get(f"/data/jobs/{'b' * 32}", headers={"hx-request": "true"})
    assert poll.status_code == 200 and "<html" not in poll.text and 'id="job"' in poll.text
    state.updated = time.time() - jobs.STALE_SECONDS - 1  # its process was killed: it says nothing more
    (folder / "state.json").write_bytes(msgspec.json.encode(state))
    dead = await client.get(f"/data/jobs/{'b' * 32}", headers=HTML)
    assert dead.status_code == 500 and "stopped without finishing" in dead.text
