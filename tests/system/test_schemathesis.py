"""The OpenAPI document is exact: schemathesis, every check, against a live server on PostgreSQL and
Redis, signed in and not. Bounded (a few dozen examples an operation) to fit CI's budget."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests import small_data
from tests.helpers import ENGINE, ROOT, cli_env, live_server

pytestmark = pytest.mark.usefixtures("empty_db")

MAX_EXAMPLES = "40"


def schemathesis(base: str, *options: str) -> tuple[int, str]:
    st = Path(sys.executable).with_name("st")
    command = [str(st), "run", f"{base}/schema/openapi.json", "--checks", "all", "--max-examples", MAX_EXAMPLES]
    command += ["--seed", "20261201", "--no-color"]
    command += options
    env = cli_env(SCHEMATHESIS_HOOKS="tests.system.schemathesis_hooks", PYTHONPATH=str(ROOT))
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    return done.returncode, done.stdout + done.stderr


def cases(output: str) -> str:
    found = re.search(r"(\d+) generated, (\d+) passed", output)
    return found.group(0) if found else "no count"


@pytest.mark.skipif(ENGINE != "postgres", reason="run on the production engines (TEST_DATABASE_URL set)")
def test_schemathesis_with_every_check_finds_nothing(tmp_path, redis_server):
    from app.ingest.service import import_file

    (tmp_path / "first.csv").write_text(small_data.FIRST)
    asyncio.run(import_file(tmp_path / "first.csv"))
    with live_server(tmp_path, REDIS_URL=redis_server.url) as (_, base):
        account = {"username": "fuzzer", "password": "fuzzer password"}
        httpx.post(f"{base}/auth/register", json=account).raise_for_status()
        token = httpx.post(f"{base}/auth/login", json=account).json()["access_token"]
        # signed in (logout excluded: it would end the session the run uses; it is fuzzed signed out)
        code, signed_in = schemathesis(base, "-H", f"Authorization: Bearer {token}", "--exclude-path", "/auth/logout")
        print(f"\nschemathesis signed in: {cases(signed_in)}")
        assert code == 0, signed_in[-6000:]
        code, signed_out = schemathesis(base)
        print(f"schemathesis signed out: {cases(signed_out)}")
        assert code == 0, signed_out[-6000:]
