"""The production stack as real processes, and the faults it must survive.

The container image's commands (read from compose.yaml, whose web command is the Dockerfile's
CMD) run here outside Docker, with the image's environment, against a private PostgreSQL
cluster and a private redis-server that the tests stop and start: web (uvicorn), a taskiq
worker and a taskiq scheduler. The tests run in order and share the stack.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis
import yaml

from tests.helpers import ENGINE, ROOT, PostgresServer, RedisServer, free_port
from tests.reference import Reference

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
BIN = Path(sys.executable).parent  # the project's virtual environment, as /app/.venv/bin in the image
ACCOUNT = {"username": "ops", "password": "a long enough password"}


def interpolate(value: object, env: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` against `env`."""

    def one(match: re.Match) -> str:
        name, default = match.group(1), match.group(3)
        if name in env:
            return env[name]
        assert match.group(2) != ":?", f"compose.yaml needs {name}"
        return default or ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, str(value))


def compose_command(service: str) -> list[str]:
    return COMPOSE["services"][service]["command"]


def dockerfile_cmd() -> list[str]:
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    return json.loads(lines[-1].removeprefix("CMD "))


def procfile() -> dict[str, list[str]]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            words = shlex.split(command)
            entries[name] = [word for word in words if not re.fullmatch(r"[A-Z_]+=.*", word)]
    return entries


def expected(value: object) -> object:
    """The reference figures as the JSON of the API spells them (dates as ISO strings)."""
    return msgspec.json.decode(msgspec.json.encode(value))


def wait_until(check: Callable[[], Any], timeout: float, what: str, pause: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(pause)


class Stack:
    """The processes of the image, started with the image's environment (Dockerfile ENV + compose)."""

    def __init__(self, root: Path, postgres: PostgresServer, redis_server: RedisServer) -> None:
        self.root = root
        self.postgres = postgres
        self.redis = redis_server
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        secret = "production-test-" + "k" * 40
        environment = {
            key: interpolate(value, {"SECRET_KEY": secret}) for key, value in COMPOSE["x-app"]["environment"].items()
        }
        self.env = {
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "PORT": str(self.port),
            "DATA_DIR": str(root / "data"),
            "HOME": str(root),
            **environment,
            "DATABASE_URL": postgres.url.rsplit("/", 1)[0] + "/shop",
            "REDIS_URL": redis_server.url,
            # faster than production, so the test waits seconds, not minutes
            "REFRESH_INTERVAL_SECONDS": "3",
            "TASK_REDELIVER_SECONDS": "5",
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.client = httpx.Client(base_url=self.base, timeout=30)
        self.token = ""

    def start(self, name: str, service: str | None = None, **env: str) -> subprocess.Popen:
        log = (self.root / f"{name}.log").open("a")
        process = subprocess.Popen(
            compose_command(service or name),
            cwd=ROOT,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def signal(self, name: str, sig: signal.Signals) -> None:
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, sig)
        process.wait(timeout=60)

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text()

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "litestar"), *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"accept": "application/json", "authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.client.get(path, headers=headers, **kwargs)

    def ready(self) -> dict:
        return self.client.get("/ready").json()

    def close(self) -> None:
        for name in list(self.processes):
            try:
                self.signal(name, signal.SIGTERM)
            except subprocess.TimeoutExpired:
                self.signal(name, signal.SIGKILL)
        self.client.close()


@pytest.fixture(scope="module")
def reference(data_csv_gz) -> Reference:
    return Reference(data_csv_gz)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, data_csv_gz) -> Iterator[Stack]:
    if ENGINE != "postgres":
        pytest.skip("production runs on PostgreSQL: these run in the PostgreSQL pass (TEST_DATABASE_URL)")
    root = tmp_path_factory.mktemp("production")
    postgres = PostgresServer()
    redis_server = RedisServer(root)
    stack = Stack(root, postgres, redis_server)
    try:
        postgres.start()
        subprocess.run(["psql", postgres.url, "-qc", "CREATE DATABASE shop"], check=True, capture_output=True)
        redis_server.start()
        migrate = subprocess.run(
            compose_command("migrate"), cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=120
        )
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        for name in ("web", "worker", "scheduler"):
            stack.start(name)

        def web_up() -> bool:
            assert stack.processes["web"].poll() is None, stack.log("web")
            try:
                return stack.client.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(web_up, 90, "the web process answering /health")
        imported = stack.cli("data", "import", str(data_csv_gz))
        assert imported.returncode == 0, imported.stdout + imported.stderr
        stack.client.post("/auth/register", json=ACCOUNT).raise_for_status()
        stack.token = stack.client.post("/auth/login", json=ACCOUNT).json()["access_token"]
        yield stack
    finally:
        stack.close()
        redis_server.stop()
        postgres.remove()


def test_the_image_commands_are_the_procfile_commands():
    """compose.yaml's web command is the Dockerfile's CMD; the Procfile runs the same programs locally."""
    assert compose_command("web") == dockerfile_cmd() == ["litestar", "run", "--host", "0.0.0.0"]
    local = procfile()
    assert set(local) == {"web", "worker", "scheduler"}
    assert local["web"][:3] == compose_command("web")[:3]
    assert local["worker"] == compose_command("worker")
    assert local["scheduler"] == compose_command("scheduler")
    assert compose_command("migrate") == ["piccolo", "migrations", "forwards", "all"]
    for service in ("web", "worker", "scheduler"):
        conditions = COMPOSE["services"][service]["depends_on"]
        assert conditions["postgres"]["condition"] == "service_healthy"
        assert conditions["redis"]["condition"] == "service_healthy"
        assert conditions["migrate"]["condition"] == "service_completed_successfully"


def test_the_scheduled_refresh_runs_in_the_worker_and_the_web_answers_from_redis(stack, reference):
    ready = wait_until(
        lambda: (body := stack.ready())["dataset"]["version"] == 1 and body["cache"]["refreshed_at"] and body,
        60,
        "a refresh of the imported data (dataset version 1)",
    )
    assert ready["status"] == "ready" and ready["database"]["ok"] and ready["redis"]["ok"]
    assert ready["cache"]["backend"] == "redis" and ready["cache"]["age_seconds"] < 60
    assert "Sending task metrics.refresh" in stack.log("scheduler")
    assert "refresh: dataset version 1" in stack.log("worker")

    kpis = stack.get("/metrics/kpis")
    assert kpis.status_code == 200
    assert kpis.json() == expected(reference.kpis())
    page = stack.get("/", headers={"accept": "text/html"})
    assert page.status_code == 200 and f"{kpis.json()['revenue']:,.2f}" in page.text
    after = stack.ready()
    assert after["process"]["answers_computed"] == 0, "the web computed answers the worker had cached"
    assert after["cache"]["hits"] >= 1


def test_a_killed_worker_costs_the_web_nothing_and_its_task_runs_again(stack, reference):
    stack.signal("worker", signal.SIGKILL)
    assert stack.get("/metrics/kpis").json() == expected(reference.kpis())
    france = stack.get("/metrics/kpis", params={"country": "France"})  # not cached: computed by the web
    assert france.status_code == 200 and france.json() == expected(reference.kpis(country="France"))

    # a worker killed in the middle of a refresh: the task goes to the next worker
    task = None
    for attempt in range(5):
        name = f"worker-killed-{attempt}"
        process = stack.start(name, "worker")
        started = wait_until(
            lambda: re.findall(r"Executing task metrics.refresh with ID: (\w+)", stack.log(name)),  # noqa: B023
            30,
            "a scheduled refresh reaching the new worker",
            pause=0.02,
        )
        os.killpg(process.pid, signal.SIGKILL)  # the first refresh of a new worker loads the frame: seconds
        process.wait()
        if "refresh: dataset version" not in stack.log(name):
            task = started[0]
            break
    assert task is not None, "the refresh always finished before the kill"
    stack.start("worker")
    wait_until(
        lambda: f"ID: {task}" in stack.log("worker"), 60, f"task {task} of the killed worker run again"
    )  # TASK_REDELIVER_SECONDS=5 here; 60 s by default


def test_without_redis_the_web_computes_and_says_so_then_caches_again(stack, reference):
    stack.redis.stop()
    started = time.monotonic()
    kpis = stack.get("/metrics/kpis")
    assert kpis.status_code == 200 and kpis.json() == expected(reference.kpis())
    germany = stack.get("/metrics/kpis", params={"country": "Germany"})
    assert germany.status_code == 200 and germany.json() == expected(reference.kpis(country="Germany"))
    assert time.monotonic() - started < 5
    ready = stack.client.get("/ready")
    assert ready.status_code == 200  # the web serves: degraded, not unavailable
    assert ready.json()["status"] == "degraded" and ready.json()["redis"]["ok"] is False

    stack.redis.start()  # empty, as a restarted cache without persistence
    client = redis.Redis.from_url(stack.redis.url)
    try:

        def cached_again() -> bool:
            stack.get("/metrics/kpis", params={"country": "Spain"})
            return bool(client.keys("shop:metrics:*"))

        wait_until(cached_again, 30, "answers stored in the restarted Redis", pause=1)
        assert stack.ready()["status"] == "ready"
        # the worker declares its stream again and takes the next scheduled refresh
        wait_until(lambda: client.exists(f"shop:metrics:{stack.ready()['dataset']['tag']}:refreshed"), 60, "refresh")
    finally:
        client.close()


def test_without_postgres_requests_get_a_quick_503_then_recover(stack, reference):
    answers: list[tuple[float, float, int, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=stack.base, timeout=30) as client:
            while not stop.is_set():
                sent = time.monotonic()
                response = client.get(
                    "/metrics/kpis", headers={"accept": "application/json", "authorization": f"Bearer {stack.token}"}
                )
                answers.append((sent, time.monotonic() - sent, response.status_code, response.text))
                time.sleep(0.05)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(1)
        stack.postgres.stop()
        stopped = time.monotonic()
        first_503 = wait_until(
            lambda: next((a for a in answers if a[0] > stopped and a[2] == 503), None),
            10,
            "a 503 while PostgreSQL is down",
        )
        assert first_503[0] + first_503[1] - stopped < 5, "the first 503 came more than 5 s after the stop"
        assert json.loads(first_503[3])["detail"] == "the database is unavailable; try again in a moment"
        ready = stack.client.get("/ready")
        assert ready.status_code == 503 and ready.json()["database"]["ok"] is False
        assert "cannot reach the database" in ready.json()["database"]["error"]
        page = stack.get("/metrics/kpis", headers={"accept": "text/html"})
        assert page.status_code == 503 and "text/html" in page.headers["content-type"]
        time.sleep(2)

        stack.postgres.start()
        restarted = time.monotonic()
        wait_until(lambda: answers[-1][0] > restarted and answers[-1][2] == 200, 30, "answers after the restart")
    finally:
        stop.set()
        thread.join()
    errors = [text for _, _, status, text in answers if status not in (200, 503)]
    unhandled = [line for line in stack.log("web").splitlines() if "unhandled error" in line]
    assert not errors, f"only answers or 503s, never a 500: {errors[:3]}\n{unhandled[:2]}\n{stack.log('web')[-4000:]}"
    assert max(elapsed for _, elapsed, _, _ in answers) < 5, "a request hung"
    assert stack.client.get("/ready").status_code == 200
    assert stack.get("/metrics/kpis").json() == expected(reference.kpis())


def test_a_hung_postgres_gets_a_503_within_5_s_not_a_hang(stack, reference):
    """Every process of the server stopped (SIGSTOP): connections stay open and nothing answers."""
    stack.postgres.pause()
    try:
        time.sleep(2.5)  # past the 2 s a checked token is remembered: the next request needs the database
        started = time.monotonic()
        hung = stack.get("/metrics/kpis")
        elapsed = time.monotonic() - started
        assert hung.status_code == 503 and elapsed < 5, (hung.status_code, elapsed)
        assert hung.json()["detail"] in {
            "the database is unavailable; try again in a moment",  # the query's own timeout
            "this took too long (the database or a computation is slow); try again in a moment",  # the deadline
        }
        assert hung.headers["retry-after"] == "5"
        started = time.monotonic()
        ready = stack.client.get("/ready")
        assert ready.status_code == 503 and time.monotonic() - started < 5
        assert ready.json()["database"]["error"].startswith("no answer within")
    finally:
        stack.postgres.resume()
    wait_until(lambda: stack.get("/metrics/kpis").status_code == 200, 30, "answers once the server runs again")
    assert stack.get("/metrics/kpis").json() == expected(reference.kpis())


def test_an_import_killed_halfway_changes_nothing_and_the_next_one_works(stack, reference, data_csv_gz):
    count = ["psql", stack.env["DATABASE_URL"], "-tAc", "SELECT count(*) FROM transactions"]
    rows_before = subprocess.run(count, capture_output=True, text=True, check=True).stdout.strip()
    importing = subprocess.Popen(
        [str(BIN / "litestar"), "data", "replace", str(data_csv_gz)],
        cwd=ROOT,
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    copying = ["psql", stack.env["DATABASE_URL"], "-tAc", "SELECT count(*) FROM pg_stat_activity WHERE query ~ '^COPY'"]
    wait_until(
        lambda: subprocess.run(copying, capture_output=True, text=True).stdout.strip() == "1", 60, "the COPY", 0.05
    )
    importing.send_signal(signal.SIGKILL)
    importing.wait()
    assert subprocess.run(count, capture_output=True, text=True, check=True).stdout.strip() == rows_before
    assert stack.ready()["dataset"]["version"] == 1
    assert stack.get("/metrics/kpis").json() == expected(reference.kpis())

    again = stack.cli("data", "replace", str(data_csv_gz))
    assert again.returncode == 0, again.stdout + again.stderr
    assert stack.ready()["dataset"]["version"] == 2
    assert stack.get("/metrics/kpis").json() == expected(reference.kpis())


def test_sigterm_lets_the_web_finish_its_requests_and_the_worker_its_task(stack, reference):
    """What `docker stop` (SIGTERM to the container's main process) does to web and worker."""
    # web: a fresh process has no frame yet, so an uncached view takes seconds (the frame is read)
    port = free_port()
    web = stack.start("web-stopped", "web", PORT=str(port))
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(base + "/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, 90, "a second web process")
    answer: list[httpx.Response] = []
    headers = {"accept": "application/json", "authorization": f"Bearer {stack.token}"}
    query = {"country": "Portugal", "start": "2011-02-01"}
    request = threading.Thread(
        target=lambda: answer.append(httpx.get(base + "/metrics/kpis", params=query, headers=headers, timeout=30))
    )
    request.start()
    time.sleep(0.3)  # the request is in flight
    web.send_signal(signal.SIGTERM)
    request.join()
    assert answer[0].status_code == 200
    assert answer[0].json() == expected(reference.kpis(start=datetime.date(2011, 2, 1), country="Portugal"))
    assert web.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    assert "Application shutdown complete" in stack.log("web-stopped")
    assert "dataset version 2 loaded" in stack.log("web-stopped"), "the request did not need the frame"

    # worker: a fresh worker's first refresh reads the frame (seconds); SIGTERM waits for it
    worker = stack.start("worker-stopped", "worker")
    wait_until(lambda: "Executing task metrics.refresh" in stack.log("worker-stopped"), 30, "a refresh", 0.02)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) in (0, -signal.SIGTERM)
    log = stack.log("worker-stopped")
    assert "refresh: dataset version 2" in log.split("Executing task metrics.refresh", 1)[1], log


def test_no_process_logged_a_secret(stack):
    logs = "".join(stack.log(name) for name in stack.processes)
    lines = [json.loads(line) for line in stack.log("web").splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["logger"] == "app.requests"]  # LOG_FORMAT=json, as compose sets
    assert {"method", "path", "status", "duration_ms", "client", "user_id"} <= set(requests[0])
    assert any(line["path"] == "/metrics/kpis" and line["status"] == 503 for line in requests)
    for secret in (stack.token, ACCOUNT["password"], stack.env["SECRET_KEY"], "$argon2id$"):
        assert secret not in logs


def test_honcho_starts_the_procfile_and_ctrl_c_stops_all_of_it(stack):
    """The README's one command for the whole stack (against the same PostgreSQL and Redis)."""
    port = free_port()
    log = stack.root / "honcho.log"
    with log.open("w") as out:
        honcho = subprocess.Popen(
            [str(BIN / "honcho"), "start", "-p", str(port)],
            cwd=ROOT,
            env=stack.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def web_up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(web_up, 90, "the Procfile's web process answering")
        wait_until(lambda: re.search(r"worker\.1 +\|.*Listening started", log.read_text()), 60, "the worker")
        wait_until(lambda: re.search(r"scheduler\.1 +\|.*Startup completed", log.read_text()), 60, "the scheduler")
        os.killpg(honcho.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        honcho.wait(timeout=60)
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait()
    text = log.read_text()
    for name in ("web.1", "worker.1", "scheduler.1"):
        assert re.search(rf"{re.escape(name)} stopped", text), text
    assert not web_up()
