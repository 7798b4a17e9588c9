"""Imports started from the Data page run in a child process: a big import costs the web process
(its event loop, its memory) nothing, and the page polls the job's state.

A job is a folder under DATA_DIR/jobs/<id>: the uploaded file, `job.json` (what to do) and
`state.json` (what is happening), which the child rewrites as it goes (atomically, with
os.replace) and the web process reads. The child is `python -m app.ingest.jobs FOLDER`.

The state lives on the disk of the host whose web process received the upload: with web
processes on several hosts, send a user's Data page requests to one of them (sticky sessions)
or import with the CLI.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import msgspec

from app.lib.settings import get_settings

STATE_EVERY_SECONDS = 0.5  # how often the child writes its progress
STALE_SECONDS = 900  # silence after which a job is taken for dead (the last commit of a huge import is silent)
KEEP_SECONDS = 86400  # job folders are removed a day after their last word
JOB_ID_BYTES = 16


class Job(msgspec.Struct):
    """What the web process asked for."""

    file_name: str
    replace: bool = False
    overlap: str = "refuse"
    skip_invalid: bool = False
    max_unpacked: int | None = None
    user: str = ""


class RejectOut(msgspec.Struct):
    line: int
    column: str
    value: str | None
    reason: str


class OverlapOut(msgspec.Struct):
    invoices: int
    file_lines: int
    stored_lines: int
    examples: list[str]
    first: datetime | None
    last: datetime | None


class State(msgspec.Struct):
    """What the child says: `state` is queued, running, done or failed."""

    state: str = "queued"
    lines: int = 0  # lines read so far
    total: int = 0  # the file's lines, estimated from its size at the start
    import_id: int | None = None
    summary: str = ""
    error: str = ""
    status_code: int = 0  # the HTTP status the failure maps to (400, 409, 413)
    overlap: OverlapOut | None = None
    rejects: list[RejectOut] = msgspec.field(default_factory=list)
    rejected: int = 0
    pid: int = 0  # the child's
    started: float = msgspec.field(default_factory=time.time)
    updated: float = msgspec.field(default_factory=time.time)


def jobs_dir() -> Path:
    return get_settings().data_dir / "jobs"


def job_folder(job_id: str) -> Path | None:
    """The folder of a job, if `job_id` names one (the id is random: it cannot be guessed)."""
    if len(job_id) != 2 * JOB_ID_BYTES or any(c not in "0123456789abcdef" for c in job_id):
        return None
    folder = jobs_dir() / job_id
    return folder if folder.is_dir() else None


def write_state(folder: Path, state: State) -> None:
    state.updated = time.time()
    partial = folder / "state.json.part"
    partial.write_bytes(msgspec.json.encode(state))
    os.replace(partial, folder / "state.json")


def read_state(folder: Path) -> State:
    """The job's state; a job whose child has said nothing for STALE_SECONDS has failed (killed)."""
    try:
        state = msgspec.json.decode((folder / "state.json").read_bytes(), type=State)
    except (FileNotFoundError, msgspec.DecodeError):
        return State()  # not written yet (or between two writes on a platform without atomic rename)
    if state.state in ("queued", "running") and time.time() - state.updated > STALE_SECONDS:
        state.state, state.status_code = "failed", 500
        state.error = "the import stopped without finishing (its process ended); nothing was imported: upload again"
    return state


def new_folder() -> Path:
    """A new job's folder: the upload is saved straight into it (`upload`), then `start` runs it."""
    _forget_old_jobs()
    folder = jobs_dir() / secrets.token_hex(JOB_ID_BYTES)
    folder.mkdir(parents=True)
    return folder


def start(folder: Path, job: Job) -> str:
    """Start the child that imports the job folder's `upload`; the job's id."""
    (folder / "job.json").write_bytes(msgspec.json.encode(job))
    write_state(folder, State())
    with (folder / "log").open("wb") as log:
        subprocess.Popen(  # noqa: S603 - our own module, with our own interpreter
            [sys.executable, "-m", "app.ingest.jobs", str(folder)],
            cwd=Path(__file__).resolve().parents[2],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C meant for the web process does not stop the import
        )
    return folder.name


# The Data page's form carries a random submission id: the first post of it claims the id (a
# file created exclusively) and records its job there; a second post of the same form finds it
# and is sent to that job instead of starting another import.
SUBMISSION = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _submission_file(submission: str) -> Path | None:
    return jobs_dir() / "submissions" / submission if SUBMISSION.fullmatch(submission) else None


def claim_submission(submission: str) -> str | None:
    """None: claimed now (go on). Else the job this form started ("" while it is being saved)."""
    path = _submission_file(submission)
    if path is None:
        return None  # no id (a script's post): nothing to deduplicate
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return None
    except FileExistsError:
        return path.read_text().strip()


def record_submission(submission: str, job_id: str) -> None:
    if (path := _submission_file(submission)) is not None:
        path.write_text(job_id)


def release_submission(submission: str) -> None:
    """The upload was refused: the same form may be sent again (with a smaller file)."""
    if (path := _submission_file(submission)) is not None:
        path.unlink(missing_ok=True)


def _forget_old_jobs() -> None:
    root = jobs_dir()
    if not root.exists():
        return
    for folder in root.iterdir():
        state = folder / "state.json"
        if state.exists() and time.time() - state.stat().st_mtime > KEEP_SECONDS:
            shutil.rmtree(folder, ignore_errors=True)
    submissions = root / "submissions"
    for claim in submissions.iterdir() if submissions.is_dir() else []:
        if time.time() - claim.stat().st_mtime > KEEP_SECONDS:
            claim.unlink(missing_ok=True)


@dataclass
class _Progress:
    folder: Path
    state: State
    last: float = field(default=0.0)

    def __call__(self, lines: int) -> None:
        self.state.lines += lines
        now = time.monotonic()
        if now - self.last >= STATE_EVERY_SECONDS:
            self.last = now
            write_state(self.folder, self.state)


async def run(folder: Path) -> State:
    """The child's work: the import, its outcome in state.json. Never raises for a bad file."""
    from app.admin.uploads import UploadRefused
    from app.ingest.reader import Source, SourceError
    from app.ingest.service import DuplicateImport, ImportFailed, ImportRejected, OverlapRefused, import_file
    from app.lib.db import database_error_message, prepare_schema

    job = msgspec.json.decode((folder / "job.json").read_bytes(), type=Job)
    state = State(state="running", pid=os.getpid())
    write_state(folder, state)
    progress = _Progress(folder, state)

    def on_start(source: Source) -> None:
        state.total = source.rows_estimate
        write_state(folder, state)

    try:
        await prepare_schema(get_settings())
        result = await import_file(
            folder / "upload",
            replace=job.replace,
            overlap=job.overlap,  # type: ignore[arg-type]  # checked by the web process and by import_file
            skip_invalid=job.skip_invalid,
            file_name=job.file_name,
            max_unpacked=job.max_unpacked,
            on_start=on_start,
            on_progress=progress,
        )
        state.state, state.import_id, state.summary = "done", result.import_id, result.summary()
    except ImportRejected as error:
        state.state, state.error, state.status_code = "failed", error.browser, 400
        state.rejects = [RejectOut(r.line, r.column, r.value, r.reason) for r in error.rejects]
        state.rejected = error.rejected
    except OverlapRefused as error:
        state.state, state.error, state.status_code = "failed", str(error), 409
        report = dataclasses.asdict(error.overlap)
        state.overlap = OverlapOut(**{name: report[name] for name in OverlapOut.__struct_fields__})
    except (SourceError, DuplicateImport, ImportFailed, UploadRefused) as error:
        state.state, state.error = "failed", error.browser if isinstance(error, ImportFailed) else str(error)
        state.status_code = 409 if isinstance(error, DuplicateImport) else 400
    except Exception as error:
        message = database_error_message(error)
        state.state, state.status_code = "failed", 503 if message else 500
        state.error = message or "the import failed on our side; it has been logged"
        if message is None:
            raise
    finally:
        if state.state == "running":  # an exception we do not know: say so rather than run forever
            state.state, state.status_code = "failed", 500
            state.error = state.error or "the import failed on our side; it has been logged"
        write_state(folder, state)
        (folder / "upload").unlink(missing_ok=True)
    return state


if __name__ == "__main__":
    from app.lib.logs import configure_process_logging

    configure_process_logging(get_settings())
    asyncio.run(run(Path(sys.argv[1])))
