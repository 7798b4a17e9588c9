"""The `litestar data|metrics|users ...` commands run in this process (click's CliRunner): their
output, exit codes and what they leave in the database under test.

Sync tests: each command runs its work with asyncio.run. What needs a real process (Ctrl-C,
SIGKILL, another DATABASE_URL, a clean stderr) is in tests/system/test_cli.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import pytest

from app.ingest.tables import Transaction
from app.metrics.service import RefreshReport
from tests import small_data
from tests.helpers import GOOD, KAGGLE_HEADER, invoke_cli, one_error_line, snapshot, write

pytestmark = pytest.mark.usefixtures("empty_db")


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
def test_unusable_files_fail_with_one_line_and_change_nothing(tmp_path: Path, content, message) -> None:
    invoke_cli("data", "import", str(write(tmp_path / "base.csv", [KAGGLE_HEADER, GOOD[0]])))
    before = asyncio.run(snapshot())
    path = tmp_path / "input.csv"
    if content is not None:
        path.write_bytes(content)
    done = invoke_cli("data", "import", str(path))
    assert message in one_error_line(done)
    assert asyncio.run(snapshot()) == before


def test_invalid_lines_are_reported_and_nothing_is_written(tmp_path: Path) -> None:
    lines = [KAGGLE_HEADER, GOOD[0], "536365,85123A,X,six,12/1/2010 8:26,2.55,17850,United Kingdom"]
    done = invoke_cli("data", "import", str(write(tmp_path / "bad.csv", lines)))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        "error: bad.csv: 1 of 2 lines are invalid, nothing was imported; "
        "fix them or import the valid lines with --skip-invalid",
        "  line 3: quantity = 'six': not a whole number",
    ]
    assert asyncio.run(snapshot()) == ([], [], ([], [], []))

    done = invoke_cli("data", "import", "--skip-invalid", str(tmp_path / "bad.csv"))
    assert done.returncode == 0, done.stderr
    assert "rejected 1, " in done.stdout and f"rejected lines written to {tmp_path / 'bad.rejected.csv'}" in done.stdout
    assert (tmp_path / "bad.rejected.csv").read_text().splitlines()[1].startswith("3,quantity,not a whole number,")


def test_duplicate_is_refused_then_replace_and_status(tmp_path: Path) -> None:
    path = str(write(tmp_path / "a.csv", [KAGGLE_HEADER, *GOOD]))
    assert invoke_cli("data", "import", path).returncode == 0
    assert "already imported" in one_error_line(invoke_cli("data", "import", path))

    done = invoke_cli("data", "import", "--replace", path)
    assert done.returncode == 0 and "previous data replaced" in done.stdout
    done = invoke_cli("data", "replace", path)
    assert done.returncode == 0 and "dataset version 3; previous data replaced" in done.stdout
    assert Transaction.count().run_sync() == 4

    done = invoke_cli("data", "status", "--json")
    status = json.loads(done.stdout)
    assert status["dataset_version"] == 3 and status["transactions"] == 4
    assert [item["status"] for item in status["imports"]] == ["loaded", "replaced", "replaced"]
    done = invoke_cli("data", "status")
    assert done.stdout.splitlines()[0] == "dataset version 3, 4 transactions stored"
    assert "a.csv" in done.stdout


def test_skip_invalid_needs_a_writable_place_for_the_rejects(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", [KAGGLE_HEADER, GOOD[0]])
    nowhere = tmp_path / "missing-folder" / "rejects.csv"
    done = invoke_cli("data", "import", "--skip-invalid", "--rejects", str(nowhere), str(path))
    assert one_error_line(done) == (
        f"error: cannot write the rejected lines to {nowhere}; choose a file with --rejects PATH"
    )


def test_the_reject_file_may_not_overwrite_the_input_or_be_a_folder(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", [KAGGLE_HEADER, GOOD[0], "1,2,3,x,bad,1,,UK"])
    done = invoke_cli("data", "import", "--skip-invalid", "--rejects", str(path), str(path))
    assert "cannot overwrite the input" in one_error_line(done)
    assert path.read_text().startswith(KAGGLE_HEADER)
    folder = tmp_path / "a.rejected.csv"
    folder.mkdir()
    done = invoke_cli("data", "import", "--skip-invalid", str(path))
    assert one_error_line(done) == f"error: Is a directory: {folder}; nothing was written"


def test_users_create_admin(empty_db) -> None:
    from app.auth.tables import User

    User.delete(force=True).run_sync()
    created = invoke_cli("users", "create-admin", "root.admin", "--password-stdin", input="a strong admin password\n")
    assert created.returncode == 0, created.stderr
    assert "admin root.admin created" in created.stdout
    again = invoke_cli("users", "create-admin", "ROOT.admin", "--password-stdin")
    assert again.returncode == 1 and "exists already" in again.stderr and "--promote" in again.stderr
    short = invoke_cli("users", "create-admin", "other", "--password-stdin", input="short\n")
    assert short.returncode == 1 and "8 to 1024" in short.stderr


def test_the_refresh_cli_reports_what_it_computed(tmp_path):
    csv = tmp_path / "first.csv"
    csv.write_text(small_data.FIRST)
    assert invoke_cli("data", "import", str(csv)).returncode == 0
    result = invoke_cli("metrics", "refresh")
    assert result.returncode == 0, result.stderr
    assert "dataset version 1: 4 sales lines; 34 views computed and stored in the in-process cache" in result.stdout
    assert "every country's page" in result.stdout
    as_json = invoke_cli("metrics", "refresh", "--json")
    report = msgspec.json.decode(as_json.stdout, type=RefreshReport)
    assert (report.views, report.version, report.cached) == (34, 1, True)
    refused = invoke_cli("metrics", "refresh", "--queue")
    assert refused.returncode == 1 and "needs REDIS_URL" in refused.stderr
