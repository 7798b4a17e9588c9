"""Web throughput: warm endpoints of the app against a bare Litestar handler, measured with wrk.

    uv run python bench/web_bench.py [--seconds 10] [--connections 32] [--rounds 2] [--baseline REF]
                                     [--embedded] [--no-request-log]

Both servers run the same way: uvicorn, one worker, no uvicorn access log, on 127.0.0.1,
stderr to a file. The bare app is one handler returning a constant JSON dict. The app runs
with its defaults: production mode (a fresh PostgreSQL database with the full reference
data, Redis for the cache, the JSON request log on, as compose.yaml sets it), or with
`--embedded` the embedded default (SQLite in a temporary DATA_DIR, in-process cache, the
text request log on); `--no-request-log` turns the log off (LOG_LEVEL=WARNING). The
token is valid and the views are warmed (in the cache) before measuring. Rounds alternate.

With `--baseline REF` (a git commit, e.g. `main~3`), the app as it was at REF is served too,
from a temporary git worktree, on the same database (its own Redis database number): its
warm figures are measured in the same rounds, and every endpoint's JSON bytes of both are
compared (they must be equal).

Needs wrk (`apt-get install -y wrk`), PostgreSQL at BENCH_PG and Redis at BENCH_REDIS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
# issue 12: of the bare handler, with each mode's defaults (request log on)
TARGETS = {"kpis": 0.50, "dashboard": 0.25, "compared": 0.50}
EMBEDDED_TARGETS = {"kpis": 0.45, "dashboard": 0.25, "compared": 0.45}

BARE_APP = """
from litestar import Litestar, get

@get("/", sync_to_thread=False)
def index() -> dict:
    return {"status": "ok", "service": "bare", "version": 1}

app = Litestar([index])
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(target: str, env: dict[str, str], factory: bool = False) -> tuple[subprocess.Popen, str]:
    port = free_port()
    uvicorn = Path(sys.executable).with_name("uvicorn")
    command = [str(uvicorn), target, "--port", str(port), "--no-access-log", "--log-level", "warning"]
    if factory:
        command.append("--factory")
    log = open(Path(tempfile.gettempdir()) / f"web_bench_{port}.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(command, cwd=env.get("BENCH_CWD", ROOT), env=env, stderr=log, stdout=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(base + "/", timeout=2)
            return process, base
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server {target} did not start") from None
            time.sleep(0.2)


def import_reference(env: dict[str, str]) -> None:
    """Migrate the database `env` names and import the reference data into it with the CLI."""
    subprocess.run(
        [sys.executable, "-m", "piccolo.main", "migrations", "forwards", "all"],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    litestar = Path(sys.executable).with_name("litestar")
    subprocess.run([str(litestar), "data", "import", str(DATA)], cwd=ROOT, env=env, check=True, capture_output=True)


@contextmanager
def engine_with_data(engine: str, name: str) -> Iterator[dict[str, str]]:
    """The environment of an app on `engine` ("sqlite": a fresh DATA_DIR; "postgres": a fresh
    database, dropped afterwards) holding the reference data; no Redis (in-process cache)."""
    env = {**os.environ, "DATA_DIR": tempfile.mkdtemp(prefix=f"{name}-"), "REDIS_URL": "", "DATABASE_URL": ""}
    database = f"{name.replace('-', '_')}_{os.getpid()}"
    if engine == "postgres":
        subprocess.run(["psql", f"{PG}/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
        env |= {"DATABASE_URL": f"{PG}/{database}", "SECRET_KEY": "bench-" + "x" * 40}
    try:
        import_reference(env)
        yield env
    finally:
        if engine == "postgres":
            subprocess.run(["psql", f"{PG}/postgres", "-qc", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"])


def clean_up(processes: list[subprocess.Popen], database: str) -> None:
    """Stop the servers the bench started and drop its database."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
    subprocess.run(["psql", f"{PG}/postgres", "-qc", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], check=False)


def wrk(url: str, headers: dict[str, str], seconds: int, connections: int) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p50 = re.search(r"50%\s+([\d.]+\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    return {
        "rps": rps,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "p50": p50.group(1) if p50 else "?",
        "p99": p99.group(1) if p99 else "?",
    }


# what both versions must answer byte for byte (warm and cold paths, every view, errors)
SAME_BYTES = [
    "/metrics/kpis",
    "/metrics/kpis?country=germany&start=2011-03-01&end=2011-05-31",
    "/metrics/series",
    "/metrics/series?freq=week&country=France",
    "/metrics/series?freq=day&start=2011-12-01",
    "/metrics/top-countries",
    "/metrics/top-countries?by=customers&order=asc&limit=5",
    "/metrics/top-countries/United%20Kingdom",
    "/metrics/top-countries/eire?start=2011-01-01&end=2011-06-30",
    "/metrics/page",
    "/metrics/page?q=heart&page=3&size=20&country=United%20Kingdom",
    "/metrics/page?page=99999",
    "/metrics/kpis?country=Atlantis",
    "/metrics/kpis?start=2011-02-01&end=2011-01-01",
]


def worktree(ref: str) -> Path:
    """A checkout of `ref` beside the repository (removed by clean_up)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-baseline-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), ref], cwd=ROOT, check=True, capture_output=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", help="also serve the app at this git commit, and compare")
    parser.add_argument("--embedded", action="store_true", help="the embedded default (SQLite, no Redis)")
    parser.add_argument("--no-request-log", action="store_true", help="LOG_LEVEL=WARNING: no request log")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found: the benchmark reads the real data from ../shared/data")

    database = f"web_bench_{os.getpid()}"
    subprocess.run(["psql", f"{PG}/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{database}",
        "SECRET_KEY": "bench-" + "x" * 40,
        "REDIS_URL": REDIS,
        "LOG_LEVEL": "WARNING" if args.no_request_log else "INFO",
        "LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }
    if args.embedded:
        env.update(DATABASE_URL="", REDIS_URL="", SECRET_KEY="", LOG_FORMAT="text")
        env["DATA_DIR"] = tempfile.mkdtemp(prefix="web-bench-data-")
    mode = "embedded (SQLite, in-process cache)" if args.embedded else "production (PostgreSQL, Redis)"
    mode += ", request log " + ("off" if args.no_request_log else "on")
    bare_dir = Path(tempfile.mkdtemp(prefix="bare-app-"))
    (bare_dir / "bare.py").write_text(BARE_APP)
    servers: list[subprocess.Popen] = []
    trees: list[Path] = []
    try:
        import_reference(env)
        app, app_base = serve("app:create_app", env, factory=True)
        bare, bare_base = serve("bare:app", {**env, "BENCH_CWD": str(bare_dir)})
        servers += [app, bare]
        bases = {"": app_base}
        if args.baseline:
            tree = worktree(args.baseline)
            trees.append(tree)
            old_env = {
                **env,
                "BENCH_CWD": str(tree),
                "PYTHONPATH": str(tree),
                "REDIS_URL": "" if args.embedded else REDIS.rsplit("/", 1)[0] + "/1",
            }
            old, bases["baseline "] = serve("app:create_app", old_env, factory=True)
            servers.append(old)
        account = {"username": "bench", "password": "bench password"}
        httpx.post(f"{app_base}/auth/register", json=account).raise_for_status()
        token = httpx.post(f"{app_base}/auth/login", json=account).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        for base in bases.values():
            for path, accept in [("/metrics/kpis", "application/json"), ("/", "text/html")]:
                for _ in range(3):  # warm: frame loaded, answers in Redis
                    httpx.get(base + path, headers={**auth, "Accept": accept}, timeout=60).raise_for_status()
        if args.baseline:
            different = []
            for path in SAME_BYTES:
                answers = [httpx.get(base + path, headers=auth, timeout=60) for base in bases.values()]
                if len({(a.status_code, a.content) for a in answers}) != 1:
                    different.append(path)
            print(
                f"JSON bytes, this tree vs {args.baseline}: {len(SAME_BYTES) - len(different)} of "
                f"{len(SAME_BYTES)} endpoints identical" + (f"; DIFFERENT: {different}" if different else "")
            )

        names = ["bare"] + [f"{prefix}{view}" for view in ("kpis", "compared", "dashboard") for prefix in bases]
        runs: dict[str, list[dict]] = {name: [] for name in names}
        for _ in range(args.rounds):
            runs["bare"].append(wrk(bare_base + "/", {}, args.seconds, args.connections))
            for prefix, base in bases.items():
                json_headers = {**auth, "Accept": "application/json"}
                runs[f"{prefix}kpis"].append(wrk(base + "/metrics/kpis", json_headers, args.seconds, args.connections))
                if not prefix:  # F1 (issue 14): the same KPIs with their comparison (the baseline has none)
                    compared = base + "/metrics/kpis?compare=previous_period"
                    runs["compared"].append(wrk(compared, json_headers, args.seconds, args.connections))
                html_headers = {**auth, "Accept": "text/html"}
                runs[f"{prefix}dashboard"].append(wrk(base + "/", html_headers, args.seconds, args.connections))
        print(f"\n{mode}; wrk -t2 -c{args.connections} -d{args.seconds}s, {args.rounds} rounds alternating")
        bare_rps = statistics.median(r["rps"] for r in runs["bare"])
        ok = True
        labels = [("bare", "bare Litestar handler, constant JSON")]
        for prefix in bases:
            labels += [
                (f"{prefix}kpis", f"{prefix}GET /metrics/kpis, JSON, Bearer token"),
                *([("compared", "GET /metrics/kpis?compare=previous_period")] if not prefix else []),
                (f"{prefix}dashboard", f"{prefix}GET / (dashboard page), Bearer token"),
            ]
        targets = EMBEDDED_TARGETS if args.embedded else TARGETS
        for name, label in labels:
            rps = statistics.median(r["rps"] for r in runs[name])
            errors = sum(r["non_2xx"] for r in runs[name])
            last = runs[name][-1]
            line = f"  {label:<42} {rps:>8.0f} req/s  p50 {last['p50']:>8}  p99 {last['p99']:>8}  non-2xx {errors}"
            if name.split()[-1] in targets:
                ratio = rps / bare_rps
                passed = ratio >= targets[name.split()[-1]] and errors == 0
                ok = ok and passed
                line += (
                    f"  ratio {ratio:.3f} (target >= {targets[name.split()[-1]]:.2f}) {'ok' if passed else 'MISSED'}"
                )
            print(line)
        print("\nall targets met" if ok else "\nsome targets MISSED")
        print(json.dumps({name: [r["rps"] for r in values] for name, values in runs.items()}))
    finally:
        clean_up(servers, database)
        for tree in trees:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
