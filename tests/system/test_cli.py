"""The real `litestar data ...` commands as separate processes, where a test needs one: the
process's own stderr, Ctrl-C and SIGKILL half-way, another DATABASE_URL or SECRET_KEY than
this process's (start-up refusals). The other cases run in-process: tests/integration/test_cli.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.ingest.tables import Import
from tests.helpers import GOOD, KAGGLE_HEADER, ROOT, cli_env, one_error_line, run_cli, snapshot, write

pytestmark = pytest.mark.usefixtures("empty_db")

PG_URL = "postgresql://postgres@127.0.0.1:5432/nowhere"


def test_import_prints_a_one_line_summary(tmp_path: Path) -> None:
    done = run_cli("data", "import", str(write(tmp_path / "small.csv", [KAGGLE_HEADER, *GOOD])))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress bar and no log noise when not on a terminal
    [summary] = done.stdout.strip().splitlines()
    assert summary.startswith("imported 4 rows from small.csv (kaggle, utf-8), rejected 0, ")
    assert "rows/s); dataset version 1" in summary


async def writing_started(engine_name: str, pid: int) -> bool:
    """True once an import's rows are streaming into the database."""
    if engine_name == "postgres":
        rows = await Import.raw(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'COPY%' AND state = 'active'"
        ).run()
        return rows[0]["n"] > 0
    # the bytes the importing process has written (its rows, into the SQLite file); not the
    # WAL's size, which an earlier import may have left as large while a reader kept it open
    written = next(line for line in Path(f"/proc/{pid}/io").read_text().splitlines() if line.startswith("wchar"))
    return int(written.split()[1]) > 8 << 20


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
async def test_an_import_killed_half_way_leaves_the_database_as_it_was(
    how: signal.Signals, data_csv_gz: Path, tmp_path: Path, engine_name: str
) -> None:
    # an invoice the real file does not have: its import below is not an overlap
    base = write(tmp_path / "base.csv", [KAGGLE_HEADER, GOOD[0].replace("536365", "900001")])
    await asyncio.to_thread(run_cli, "data", "import", str(base))
    before = await snapshot()
    litestar = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "litestar"
    process = subprocess.Popen(
        [str(litestar), "data", "import", str(data_csv_gz)],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not await writing_started(engine_name, process.pid):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the import never started writing"
            await asyncio.sleep(0.02)
        process.send_signal(how)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    if how == signal.SIGINT:
        assert process.returncode == 1, stderr
        assert stderr.strip() == "error: interrupted: nothing was written, the database is as it was"
    else:
        assert process.returncode == -signal.SIGKILL
    assert await snapshot() == before
    done = await asyncio.to_thread(run_cli, "data", "import", str(data_csv_gz))  # the next import works
    assert done.returncode == 0, done.stderr
    assert "imported 541,909 rows" in done.stdout


PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def test_production_refuses_an_unmigrated_database_with_one_line() -> None:
    """A fresh PostgreSQL database: the app and the CLI say to run the migrations."""
    import asyncpg

    try:
        admin = await asyncpg.connect(PG_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {error}")
    name = f"shop_unmigrated_{os.getpid()}"
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        done = await asyncio.to_thread(run_cli, "data", "status", DATABASE_URL=url, SECRET_KEY="s" * 40)
        assert re.fullmatch(
            r"error: the database schema is missing \d+ migration\(s\): "
            r"run `uv run piccolo migrations forwards all` first",
            one_error_line(done),
        )
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://postgres@127.0.0.1:9/shop", "error: cannot reach the database ("),
        ("postgresql://postgres@127.0.0.1:5432/no_such_db_here", "error: the database does not exist ("),
    ],
)
def test_an_unusable_database_is_one_clear_line(url: str, message: str) -> None:
    done = run_cli("data", "status", DATABASE_URL=url, SECRET_KEY="s" * 40)
    assert one_error_line(done).startswith(message)


def test_the_cli_refuses_to_start_in_production_without_a_secret_in_one_line() -> None:
    done = run_cli("data", "status", DATABASE_URL=PG_URL, SECRET_KEY="")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("error: SECRET_KEY is not set"), done.stderr
    assert "Traceback" not in done.stderr


def test_the_cli_own_commands_build_no_web_app() -> None:
    """`litestar data|metrics|users ...` gets an app with no routes: neither the web layer nor
    Polars is imported before a command needs it (the CLI starts in about a second)."""
    probe = (
        "import sys; sys.argv = ['/venv/bin/litestar', 'data', '--help']; "
        "from app import create_app; app = create_app(); "
        "print(len(app.routes), 'polars' in sys.modules, 'app.metrics.views' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert done.stdout.split() == ["0", "False", "False"], done.stderr
    # the command itself still works, and `litestar --help` still lists every command
    assert run_cli("data", "--help").returncode == 0
    listed = run_cli("--help").stdout
    assert all(group in listed for group in ("data", "metrics", "users", "run"))
