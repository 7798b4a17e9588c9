"""Test set-up: one engine per run, chosen before the app is imported.

- Default: the embedded SQLite engine, in a fresh temporary DATA_DIR.
- TEST_DATABASE_URL=postgresql://...: that PostgreSQL database (it is emptied: use a
  throwaway one; `.ci/run` creates a fresh one per run).

Tests that need the real data set read it from ../shared/data; where it is absent
they skip with the reason, except under CI=1, where they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT.parent / "shared" / "data"
DATA_CSV_GZ = DATA_DIR / "online_retail.csv.gz"
DATA_PARQUET = DATA_DIR / "online_retail.parquet"

_TEST_DB = os.environ.get("TEST_DATABASE_URL", "").strip()
_TMP = Path(tempfile.mkdtemp(prefix="shop-test-"))
if _TEST_DB:
    os.environ["DATABASE_URL"] = _TEST_DB
    os.environ.setdefault("SECRET_KEY", "test-secret-key-" + "x" * 32)
else:
    os.environ["DATABASE_URL"] = ""  # wins over a developer's .env (load_dotenv does not override)
os.environ["DATA_DIR"] = str(_TMP / "var")
os.environ.pop("REDIS_URL", None)

ENGINE = "postgres" if _TEST_DB else "sqlite"


def pytest_report_header() -> str:
    return f"database engine under test: {ENGINE}"


@pytest.fixture(scope="session")
def engine_name() -> str:
    return ENGINE


@pytest.fixture(scope="session")
def tmp_root() -> Path:
    return _TMP


def pytest_sessionfinish() -> None:
    shutil.rmtree(_TMP, ignore_errors=True)  # the SQLite database and secret of this run


def _need(path: Path) -> Path:
    if not path.exists():
        message = f"{path} not found: the real data set lives in ../shared/data beside the project"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run these tests)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def data_csv_gz() -> Path:
    return _need(DATA_CSV_GZ)


@pytest.fixture(scope="session")
def data_parquet() -> Path:
    return _need(DATA_PARQUET)


@pytest.fixture(scope="session", autouse=True)
async def schema() -> None:
    from app.lib.db import apply_migrations, prepare_schema
    from app.lib.settings import get_settings

    if ENGINE == "postgres":
        await apply_migrations()
    await prepare_schema(get_settings())


@pytest.fixture
async def empty_db() -> None:
    """Every test that imports starts from empty tables."""
    from app.ingest.tables import Import, Transaction

    await Transaction.delete(force=True).run()
    await Import.delete(force=True).run()


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for running the real CLI against the database under test."""
    env = {**os.environ, **extra}
    env.pop("LITESTAR_APP", None)
    return env


def run_cli(*args: str, timeout: float = 180, input: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """`litestar ARGS` in a subprocess, exactly as a user runs it (from the project root)."""
    litestar = Path(sys.executable).with_name("litestar")
    return subprocess.run(
        [str(litestar), *args],
        cwd=ROOT,
        env=cli_env(**env),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A private redis-server for one test, so it can be stopped, hung and restarted safely."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import time

        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def pause(self) -> None:
        """Hang the server (it accepts connections but never answers)."""
        import signal

        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        import signal

        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    if shutil.which(name):
        return name
    pytest.fail(f"{name} is not installed: the fault tests need PostgreSQL's server binaries")


class PostgresServer:
    """A private PostgreSQL cluster for one test module, so it can be stopped and started safely.

    As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="shop-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, user="postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        """A fast shutdown: open sessions are cut, as in a crash or a failover."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def _processes(self) -> list[int]:
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
        return [postmaster, *map(int, children)]

    def pause(self) -> None:
        """Hang the server and its sessions (connections stay open, nothing answers)."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self._processes():
            os.kill(pid, signal.SIGCONT)

    def remove(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def redis_server(tmp_path: Path):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: the tests need a real Redis")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process is not None:
        server.resume()
    server.stop()


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM (a graceful stop), then SIGKILL after 15 s."""
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()


@contextlib.contextmanager
def live_server(log_dir: Path):
    """`litestar run` on a free port against the database under test; yields (process, base URL)."""
    import httpx

    port = free_port()
    litestar = Path(sys.executable).with_name("litestar")
    log_path = log_dir / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [str(litestar), "run", "--port", str(port)], cwd=ROOT, env=cli_env(), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, log_path.read_text()
                try:
                    httpx.get(f"{base}/login", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the server did not start within 60 s"
                    time.sleep(0.2)
            yield server, base
        finally:
            stop_server(server)
