"""The real `litestar data ...` commands, run as a user runs them (subprocesses)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from app.ingest.tables import Import, Transaction
from tests.conftest import ROOT, cli_env, run_cli
from tests.test_import import snapshot
from tests.test_reader import GOOD, KAGGLE_HEADER, write

pytestmark = pytest.mark.usefixtures("empty_db")


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_import_prints_a_one_line_summary(tmp_path: Path) -> None:
    done = run_cli("data", "import", str(write(tmp_path / "small.csv", [KAGGLE_HEADER, *GOOD])))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress bar and no log noise when not on a terminal
    [summary] = done.stdout.strip().splitlines()
    assert summary.startswith("imported 4 rows from small.csv (kaggle, utf-8), rejected 0, ")
    assert "rows/s); dataset version 1" in summary


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "the file is empty"),
        (b"\x00\x01\x02\x03binary", "binary file"),
        (b"a,b,c\n1,2,3\n", "unknown header"),
        (KAGGLE_HEADER.encode() + b"\n", "header but no data lines"),
    ],
)
async def test_unusable_files_fail_with_one_line_and_change_nothing(tmp_path: Path, content, message) -> None:
    await asyncio.to_thread(run_cli, "data", "import", str(write(tmp_path / "base.csv", [KAGGLE_HEADER, GOOD[0]])))
    before = await snapshot()
    path = tmp_path / "input.csv"
    if content is not None:
        path.write_bytes(content)
    done = await asyncio.to_thread(run_cli, "data", "import", str(path))
    assert message in one_error_line(done)
    assert await snapshot() == before


async def test_invalid_lines_are_reported_and_nothing_is_written(tmp_path: Path) -> None:
    lines = [KAGGLE_HEADER, GOOD[0], "536365,85123A,X,six,12/1/2010 8:26,2.55,17850,United Kingdom"]
    done = await asyncio.to_thread(run_cli, "data", "import", str(write(tmp_path / "bad.csv", lines)))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        "error: bad.csv: 1 of 2 lines are invalid, nothing was imported; "
        "fix them or import the valid lines with --skip-invalid",
        "  line 3: quantity = 'six': not a whole number",
    ]
    assert await snapshot() == ([], [])

    done = await asyncio.to_thread(run_cli, "data", "import", "--skip-invalid", str(tmp_path / "bad.csv"))
    assert done.returncode == 0, done.stderr
    assert "rejected 1, " in done.stdout and f"rejected lines written to {tmp_path / 'bad.rejected.csv'}" in done.stdout
    assert (tmp_path / "bad.rejected.csv").read_text().splitlines()[1].startswith("3,quantity,not a whole number,")


async def test_duplicate_is_refused_then_replace_and_status(tmp_path: Path) -> None:
    path = str(write(tmp_path / "a.csv", [KAGGLE_HEADER, *GOOD]))
    assert (await asyncio.to_thread(run_cli, "data", "import", path)).returncode == 0
    assert "already imported" in one_error_line(await asyncio.to_thread(run_cli, "data", "import", path))

    done = await asyncio.to_thread(run_cli, "data", "import", "--replace", path)
    assert done.returncode == 0 and "previous data replaced" in done.stdout
    done = await asyncio.to_thread(run_cli, "data", "replace", path)
    assert done.returncode == 0 and "dataset version 3; previous data replaced" in done.stdout
    assert await Transaction.count().run() == 4

    done = await asyncio.to_thread(run_cli, "data", "status", "--json")
    status = json.loads(done.stdout)
    assert status["dataset_version"] == 3 and status["transactions"] == 4
    assert [item["status"] for item in status["imports"]] == ["loaded", "replaced", "replaced"]
    done = await asyncio.to_thread(run_cli, "data", "status")
    assert done.stdout.splitlines()[0] == "dataset version 3, 4 transactions stored"
    assert "a.csv" in done.stdout


async def writing_started(engine_name: str, tmp_root: Path) -> bool:
    """True once an import's rows are streaming into the database."""
    if engine_name == "postgres":
        rows = await Import.raw(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'COPY%' AND state = 'active'"
        ).run()
        return rows[0]["n"] > 0
    wal = tmp_root / "var" / "shop.sqlite3-wal"
    return wal.exists() and wal.stat().st_size > 8 << 20


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
async def test_an_import_killed_half_way_leaves_the_database_as_it_was(
    how: signal.Signals, data_csv_gz: Path, tmp_path: Path, engine_name: str, tmp_root: Path
) -> None:
    await asyncio.to_thread(run_cli, "data", "import", str(write(tmp_path / "base.csv", [KAGGLE_HEADER, GOOD[0]])))
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
        while not await writing_started(engine_name, tmp_root):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the import never started writing"
            await asyncio.sleep(0.02)
        process.send_signal(how)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    if how == signal.SIGINT:
        assert process.returncode == 1
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


def test_skip_invalid_needs_a_writable_place_for_the_rejects(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", [KAGGLE_HEADER, GOOD[0]])
    nowhere = tmp_path / "missing-folder" / "rejects.csv"
    done = run_cli("data", "import", "--skip-invalid", "--rejects", str(nowhere), str(path))
    assert one_error_line(done) == (
        f"error: cannot write the rejected lines to {nowhere}; choose a file with --rejects PATH"
    )


def test_the_reject_file_may_not_overwrite_the_input_or_be_a_folder(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", [KAGGLE_HEADER, GOOD[0], "1,2,3,x,bad,1,,UK"])
    done = run_cli("data", "import", "--skip-invalid", "--rejects", str(path), str(path))
    assert "cannot overwrite the input" in one_error_line(done)
    assert path.read_text().startswith(KAGGLE_HEADER)
    folder = tmp_path / "a.rejected.csv"
    folder.mkdir()
    done = run_cli("data", "import", "--skip-invalid", str(path))
    assert one_error_line(done) == f"error: Is a directory: {folder}; nothing was written"


async def test_users_create_admin(empty_db) -> None:
    from app.auth.tables import User

    await User.delete(force=True).run()
    created = run_cli("users", "create-admin", "root.admin", "--password-stdin", input="a strong admin password\n")
    assert created.returncode == 0, created.stderr
    assert "admin root.admin created" in created.stdout
    again = run_cli("users", "create-admin", "ROOT.admin", "--password-stdin")
    assert again.returncode == 1 and "exists already" in again.stderr and "--promote" in again.stderr
    short = run_cli("users", "create-admin", "other", "--password-stdin", input="short\n")
    assert short.returncode == 1 and "8 to 1024" in short.stderr
