"""Sustained load: 60 s at 64 connections on a mix of warm metrics endpoints, JSON and HTML.

    uv run python bench/load_bench.py [--seconds 60] [--connections 64]

The web process is the container image's command (`litestar run`, one process, request
log on, JSON lines to a file) in production mode: a fresh PostgreSQL database with the full
reference data and Redis for the cache, a worker-less setup where the web warms each view
once before the run. wrk (`apt-get install -y wrk`) cycles through MIX with a valid token.
Reported: requests per second, p50 / p99 latency, errors (non-2xx and socket errors, which
must be zero) and the web process's RSS each second, with its growth from the 10th to the
last second (target: under 10%). A bare Litestar handler is measured for 10 s first, with the
same server, as the baseline of the ratio.

Needs wrk, PostgreSQL at BENCH_PG and Redis at BENCH_REDIS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from web_bench import BARE_APP, DATA, PG, REDIS, ROOT, clean_up, free_port, serve

JSON, HTML = "application/json", "text/html"
MIX = [  # (path, Accept, htmx partial)
    ("/metrics/kpis", JSON, False),
    ("/metrics/series?freq=week", JSON, False),
    ("/metrics/top-countries?by=units_sold", JSON, False),
    ("/metrics/top-countries/Germany", JSON, False),
    ("/metrics/page?page=3", JSON, False),
    ("/metrics/kpis?country=France&start=2011-01-01", JSON, False),
    ("/", HTML, False),
    ("/metrics/kpis", HTML, False),
    ("/metrics/top-countries/France", HTML, False),
    ("/metrics/page?q=heart&page=2", HTML, False),
    ("/metrics/series?freq=day", HTML, True),
]
LUA = """
local requests = {}
local i = 0
init = function(args)
  local token = os.getenv("BENCH_TOKEN")
  for line in io.lines(os.getenv("BENCH_MIX")) do
    local path, accept, htmx = line:match("([^\\t]+)\\t([^\\t]+)\\t([^\\t]+)")
    local headers = {["Accept"] = accept, ["Authorization"] = "Bearer " .. token}
    if htmx == "1" then headers["HX-Request"] = "true" end
    requests[#requests + 1] = wrk.format("GET", path, headers)
  end
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_wrk(url: str, seconds: int, connections: int, env: dict[str, str], script: Path | None) -> str:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script is not None:
        command += ["-s", str(script)]
    return subprocess.run([*command, url], capture_output=True, text=True, check=True, env=env).stdout


def parse(out: str) -> dict:
    def find(pattern: str) -> str | None:
        match = re.search(pattern, out)
        return match.group(1) if match else None

    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(find(r"Requests/sec:\s+([\d.]+)") or 0),
        "requests": int(find(r"(\d+) requests in") or 0),
        "non_2xx": int(find(r"Non-2xx or 3xx responses: (\d+)") or 0),
        "socket_errors": sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
        "p50": find(r"50%\s+([\d.]+\w+)"),
        "p99": find(r"99%\s+([\d.]+\w+)"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found: the benchmark reads the real data from ../shared/data")

    work = Path(tempfile.mkdtemp(prefix="load-bench-"))
    database = f"load_bench_{os.getpid()}"
    subprocess.run(["psql", f"{PG}/postgres", "-qc", f"CREATE DATABASE {database}"], check=True)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{database}",
        "SECRET_KEY": "bench-" + "x" * 40,
        "REDIS_URL": REDIS,
        "PORT": str(port),
        "LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }
    processes: list[subprocess.Popen] = []
    try:
        bin_dir = Path(sys.executable).parent
        subprocess.run([str(bin_dir / "piccolo"), "migrations", "forwards", "all"], cwd=ROOT, env=env, check=True)
        subprocess.run([str(bin_dir / "litestar"), "data", "import", str(DATA)], cwd=ROOT, env=env, check=True)
        log = (work / "web.log").open("w")
        web = subprocess.Popen(
            [str(bin_dir / "litestar"), "run", "--host", "127.0.0.1"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        processes.append(web)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(base + "/health", timeout=2).raise_for_status()
                break
            except httpx.TransportError:
                if web.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the web process did not start: see " + str(work / "web.log")) from None
                time.sleep(0.3)
        account = {"username": "bench", "password": "bench password"}
        httpx.post(f"{base}/auth/register", json=account).raise_for_status()
        token = httpx.post(f"{base}/auth/login", json=account).json()["access_token"]
        for path, accept, htmx in MIX:  # warm: the frame loaded, every view computed once and cached
            headers = {"Accept": accept, "Authorization": f"Bearer {token}", **({"HX-Request": "true"} if htmx else {})}
            for _ in range(2):
                httpx.get(base + path, headers=headers, timeout=60).raise_for_status()

        bare_dir = work / "bare"
        bare_dir.mkdir()
        (bare_dir / "bare.py").write_text(BARE_APP)
        bare, bare_base = serve("bare:app", {**env, "BENCH_CWD": str(bare_dir)})
        processes.append(bare)
        baseline = parse(run_wrk(bare_base + "/", 10, args.connections, env, None))
        bare.terminate()

        (work / "mix.tsv").write_text("".join(f"{p}\t{a}\t{int(h)}\n" for p, a, h in MIX))
        (work / "mix.lua").write_text(LUA)
        samples: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(1.0):
                samples.append(rss_mb(web.pid))

        sampler = threading.Thread(target=sample)
        start_rss = rss_mb(web.pid)
        sampler.start()
        wrk_env = {**env, "BENCH_TOKEN": token, "BENCH_MIX": str(work / "mix.tsv")}
        result = parse(run_wrk(base + "/", args.seconds, args.connections, wrk_env, work / "mix.lua"))
        stop.set()
        sampler.join()

        at_10 = samples[min(9, len(samples) - 1)]
        last = samples[-1]
        growth = (last - at_10) / at_10 * 100
        errors = result["non_2xx"] + result["socket_errors"]
        request_lines = sum(1 for _ in (work / "web.log").open())
        print(f"\nwrk -t2 -c{args.connections} -d{args.seconds}s --timeout 10s, mix of {len(MIX)} warm views:")
        print(f"  requests          {result['requests']:,} ({request_lines:,} lines in the web log)")
        print(f"  requests/s        {result['rps']:,.0f}  (bare handler, 10 s: {baseline['rps']:,.0f}; ratio "
              f"{result['rps'] / baseline['rps']:.2f})")  # fmt: skip
        print(f"  latency           p50 {result['p50']}  p99 {result['p99']}")
        print(f"  errors            {errors} (non-2xx {result['non_2xx']}, socket {result['socket_errors']})"
              f"  {'ok' if errors == 0 else 'MISSED'}")  # fmt: skip
        print(f"  web RSS           {start_rss:.0f} MB before, {at_10:.0f} MB at 10 s, {last:.0f} MB at "
              f"{len(samples)} s, peak {max(samples):.0f} MB")  # fmt: skip
        print(f"  RSS growth 10 s -> end  {growth:+.1f}%  (target < 10%) {'ok' if growth < 10 else 'MISSED'}")
        print(json.dumps({"result": result, "baseline": baseline, "rss_mb": [round(s) for s in samples]}))
    finally:
        clean_up(processes, database)


if __name__ == "__main__":
    main()
