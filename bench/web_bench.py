"""Web throughput: warm endpoints of the app against a bare Litestar handler, measured with wrk.

    uv run python bench/web_bench.py [--seconds 10] [--connections 32] [--rounds 2]

Both servers run the same way: uvicorn, one worker, no access log, on 127.0.0.1. The
bare app is one handler returning a constant JSON dict. The app runs in production mode
(a fresh PostgreSQL database with the full reference data, Redis for the cache) with a
valid token; the views are warmed (in the cache) before measuring. Rounds alternate.

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
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
TARGETS = {"kpis": 0.50, "dashboard": 0.25}

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
    process = subprocess.Popen(command, cwd=env.get("BENCH_CWD", ROOT), env=env)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
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
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    bare_dir = Path(tempfile.mkdtemp(prefix="bare-app-"))
    (bare_dir / "bare.py").write_text(BARE_APP)
    servers: list[subprocess.Popen] = []
    try:
        subprocess.run(
            [sys.executable, "-m", "piccolo.main", "migrations", "forwards", "all"],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip
        litestar = Path(sys.executable).with_name("litestar")
        subprocess.run([str(litestar), "data", "import", str(DATA)], cwd=ROOT, env=env, check=True)
        app, app_base = serve("app:create_app", env, factory=True)
        bare, bare_base = serve("bare:app", {**env, "BENCH_CWD": str(bare_dir)})
        servers += [app, bare]
        account = {"username": "bench", "password": "bench password"}
        httpx.post(f"{app_base}/auth/register", json=account).raise_for_status()
        token = httpx.post(f"{app_base}/auth/login", json=account).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        for path, accept in [("/metrics/kpis", "application/json"), ("/", "text/html")]:
            for _ in range(3):  # warm: frame loaded, answers in Redis
                httpx.get(app_base + path, headers={**auth, "Accept": accept}, timeout=60).raise_for_status()

        runs: dict[str, list[dict]] = {"bare": [], "kpis": [], "dashboard": []}
        for _ in range(args.rounds):
            runs["bare"].append(wrk(bare_base + "/", {}, args.seconds, args.connections))
            runs["kpis"].append(
                wrk(app_base + "/metrics/kpis", {**auth, "Accept": "application/json"}, args.seconds, args.connections)
            )
            runs["dashboard"].append(
                wrk(app_base + "/", {**auth, "Accept": "text/html"}, args.seconds, args.connections)
            )
        print(f"\nwrk -t2 -c{args.connections} -d{args.seconds}s, {args.rounds} rounds alternating, uvicorn 1 worker:")
        bare_rps = statistics.median(r["rps"] for r in runs["bare"])
        ok = True
        for name, label in [
            ("bare", "bare Litestar handler, constant JSON"),
            ("kpis", "GET /metrics/kpis, JSON, Bearer token"),
            ("dashboard", "GET / (dashboard page), Bearer token"),
        ]:
            rps = statistics.median(r["rps"] for r in runs[name])
            errors = sum(r["non_2xx"] for r in runs[name])
            last = runs[name][-1]
            line = f"  {label:<42} {rps:>8.0f} req/s  p50 {last['p50']:>8}  p99 {last['p99']:>8}  non-2xx {errors}"
            if name in TARGETS:
                ratio = rps / bare_rps
                passed = ratio >= TARGETS[name] and errors == 0
                ok = ok and passed
                line += f"  ratio {ratio:.2f} (target >= {TARGETS[name]:.2f}) {'ok' if passed else 'MISSED'}"
            print(line)
        print("\nall targets met" if ok else "\nsome targets MISSED")
        print(json.dumps({name: [r["rps"] for r in values] for name, values in runs.items()}))
    finally:
        clean_up(servers, database)


if __name__ == "__main__":
    main()
