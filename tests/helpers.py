"""What the tests share: paths, the engine under test, the CLI (in-process and as a subprocess),
private servers, small CSV files, the import snapshot and the web log-in steps.

Fixtures live in the conftest files; this module holds plain code. It imports nothing of the
app at module level: tests/conftest.py imports it before it sets the environment the app reads.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import click
    import httpx

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT.parent / "shared" / "data"
DATA_CSV_GZ = DATA_DIR / "online_retail.csv.gz"
DATA_PARQUET = DATA_DIR / "online_retail.parquet"

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
ENGINE = "postgres" if TEST_DATABASE_URL else "sqlite"


# -- the CLI -------------------------------------------------------------------------------


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


def cli_group() -> click.Group:
    """A click group with the app's command groups, as `litestar` registers them."""
    import click

    from app.server.commands import Commands

    @click.group()
    def cli() -> None:
        """The app's commands."""

    Commands().on_cli_init(cli)
    return cli


def invoke_cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`litestar ARGS` run in this process (click's CliRunner), answered in run_cli's shape.

    The commands call asyncio.run: call this from a sync test (or from a thread). The settings,
    and so the database, are this process's: cases with another environment need run_cli. An
    exception the command does not turn into an `error:` line fails the test with its traceback.
    """
    from click.testing import CliRunner

    result = CliRunner().invoke(cli_group(), list(args), input=input, catch_exceptions=False)
    return subprocess.CompletedProcess(["litestar", *args], result.exit_code, result.stdout, result.stderr)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The command failed (exit 1) with one `error: ...` line and no traceback; that line."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# -- small export files (the reader's layouts) ---------------------------------------------

KAGGLE_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
II_HEADER = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country"
GOOD = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom",
    '536366,22633,"HAND WARMER, ""UNION JACK""",6,12/1/2010 8:28,1.85,,United Kingdom',
    "C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom",
    "539492,gift_0001_40,Dotcomgiftshop Gift Voucher £40.00,1,12/20/2010 10:14,34.04,,United Kingdom",
]


def write(path: Path, lines: list[str], encoding: str = "utf-8", newline: str = "\n") -> Path:
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


async def clear_tables() -> None:
    """Empty the imported data: lines, invoices, shapes and imports."""
    from app.ingest.shapes import SHAPES
    from app.ingest.tables import Import, Invoice, Transaction

    await Transaction.delete(force=True).run()
    await Invoice.delete(force=True).run()
    for table in SHAPES:
        await Transaction.raw(f"DELETE FROM {table}").run()
    await Import.delete(force=True).run()


def _date(value: object) -> datetime.date:
    return value.date() if isinstance(value, datetime.datetime) else datetime.date.fromisoformat(str(value)[:10])


def _moment(value: object) -> datetime.datetime:
    return value if isinstance(value, datetime.datetime) else datetime.datetime.fromisoformat(str(value)[:19])


def _basket(stored: object, keys: dict[int, str]) -> tuple[str, ...]:
    """A stored basket (PostgreSQL: a list of ids; SQLite: JSON text) as its sorted keys."""
    ids = json.loads(stored) if isinstance(stored, str) else stored
    return tuple(sorted(keys[id_] for id_ in ids))


async def stored_shapes() -> tuple[list[tuple], list[tuple], list[tuple]]:
    """The shapes as stored, normalised and sorted (the engines store days, flags and lists
    differently); each invoice row ends with its basket's keys."""
    from app.ingest.tables import Transaction

    keys = {row["id"]: row["key"] for row in await Transaction.raw("SELECT id, key FROM product_keys").run()}
    assert len(set(keys.values())) == len(keys), "a product key is stored twice"
    invoices = await Transaction.raw(
        "SELECT invoice_no, invoice_date, country, customer_id, cancelled, all_lines, lines, units, revenue_milli, day,"
        " products FROM sales_invoices"
    ).run()
    products = await Transaction.raw(
        "SELECT day, country, product, description, lines, units, revenue_milli FROM product_days"
    ).run()
    returns = await Transaction.raw(
        "SELECT day, country, product, lines, units, revenue_milli FROM product_returns"
    ).run()
    invoice_rows = sorted(
        (
            (
                r["invoice_no"],
                _moment(r["invoice_date"]),
                r["country"],
                r["customer_id"],
                bool(r["cancelled"]),
                int(r["all_lines"]),
                int(r["lines"]),
                int(r["units"]),
                int(r["revenue_milli"]),
                _date(r["day"]),
                _basket(r["products"], keys),
            )
            for r in invoices
        ),
        key=repr,
    )
    product_rows = sorted(
        (
            (
                _date(r["day"]),
                r["country"],
                r["product"],
                r["description"],
                int(r["lines"]),
                int(r["units"]),
                int(r["revenue_milli"]),
            )
            for r in products
        ),
        key=repr,
    )
    return_rows = sorted(
        (
            (_date(r["day"]), r["country"], r["product"], int(r["lines"]), int(r["units"]), int(r["revenue_milli"]))
            for r in returns
        ),
        key=repr,
    )
    return invoice_rows, product_rows, return_rows


async def expected_shapes() -> tuple[list[tuple], list[tuple], list[tuple]]:
    """The shapes computed here, in plain Python, from the stored lines (the independent side)."""
    from app.ingest.tables import Transaction

    lines = await Transaction.select(
        Transaction.invoice_no,
        Transaction.stock_code,
        Transaction.description,
        Transaction.quantity,
        Transaction.invoice_date,
        Transaction.unit_price,
        Transaction.customer_id,
        Transaction.country,
    ).run()
    invoices: dict[tuple, list[int]] = {}
    baskets: dict[tuple, set[str]] = {}
    products: dict[tuple, list[int]] = {}
    returns: dict[tuple, list[int]] = {}
    for line in lines:
        number, quantity, at = line["invoice_no"], line["quantity"], _moment(line["invoice_date"])
        price_milli = round(line["unit_price"] * 1000)
        cancelled = number.startswith("C")
        sale = number[:1] not in ("C", "A") and quantity > 0 and line["unit_price"] > 0
        invoice = (number, at, line["country"], line["customer_id"], cancelled)
        totals = invoices.setdefault(invoice, [0, 0, 0, 0])
        basket = baskets.setdefault(invoice, set())
        totals[0] += 1
        code = "".join(c.upper() if "a" <= c <= "z" else c for c in line["stock_code"])  # ASCII letters only
        if cancelled or sale:
            totals[1] += 1
            totals[2] += quantity
            totals[3] += quantity * price_milli
        if cancelled:
            returned = returns.setdefault((at.date(), line["country"], code), [0, 0, 0])
            returned[0] += 1
            returned[1] += quantity
            returned[2] += quantity * price_milli
        if sale:
            basket.add(code)
            product = products.setdefault((at.date(), line["country"], code, line["description"]), [0, 0, 0])
            product[0] += 1
            product[1] += quantity
            product[2] += quantity * price_milli
    invoice_rows = sorted(
        (key + tuple(v) + (key[1].date(), tuple(sorted(baskets[key]))) for key, v in invoices.items()), key=repr
    )
    product_rows = sorted((key + tuple(v) for key, v in products.items()), key=repr)
    return_rows = sorted((key + tuple(v) for key, v in returns.items()), key=repr)
    return invoice_rows, product_rows, return_rows


async def assert_shapes_exact() -> None:
    """The shapes are exactly the aggregate of the stored lines."""
    stored, expected = await stored_shapes(), await expected_shapes()
    assert stored[0] == expected[0], "sales_invoices differs from its lines"
    assert stored[1] == expected[1], "product_days differs from its lines"
    assert stored[2] == expected[2], "product_returns differs from its lines"


async def snapshot() -> tuple:
    """What must not change when an import fails."""
    from app.ingest.tables import Import, Transaction

    rows = (
        await Transaction.select(Transaction.id, Transaction.invoice_no, Transaction.quantity, Transaction.import_id)
        .order_by(Transaction.id)
        .run()
    )
    imports = await Import.select(Import.id, Import.status, Import.dataset_version).order_by(Import.id).run()
    return rows, imports, await stored_shapes()


# -- the web app's accounts (through an httpx client) --------------------------------------

HTML = {"accept": "text/html,application/xhtml+xml"}
HTMX = {"hx-request": "true", "accept": "*/*"}
JSON_HEADERS = {"accept": "application/json"}


async def register(client: httpx.AsyncClient, username: str = "alice", password: str = "correct horse") -> dict:
    response = await client.post("/auth/register", json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    return response.json()


async def login(client: httpx.AsyncClient, username: str = "alice", password: str = "correct horse") -> str:
    response = await client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def follow_import(client: httpx.AsyncClient, answer: httpx.Response, seconds: float = 120) -> httpx.Response:
    """After an upload: follow its import job (a child process) to its outcome, as the page does.

    Returns the final page: the import's result page, or the job's page with its error."""
    import asyncio

    if answer.status_code != 303 or not answer.headers["location"].startswith("/data/jobs/"):
        return answer
    job = answer.headers["location"]
    deadline = time.monotonic() + seconds
    while True:
        page = await client.get(job, headers=HTML, follow_redirects=True)
        if 'data-job-state="' not in page.text:
            return page
        assert time.monotonic() < deadline, f"the import job {job} did not finish in {seconds} s"
        await asyncio.sleep(0.1)


async def form_token(client: httpx.AsyncClient, path: str = "/users/me") -> str:
    """The CSRF token a signed-in browser's forms carry (bound to its session), read from a page."""
    page = await client.get(path, headers=HTML)
    found = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    assert found, f"no form token on {path}"
    return found.group(1)


async def browser_login(client: httpx.AsyncClient, username: str = "alice", password: str = "correct horse") -> None:
    page = await client.get("/login", headers=HTML)
    csrf = client.cookies.get("shop_csrf")
    assert csrf and f'value="{csrf}"' in page.text
    response = await client.post(
        "/auth/login", data={"username": username, "password": password, "_csrf": csrf, "next": "/"}, headers=HTML
    )
    assert response.status_code == 303, response.text


# -- processes and private servers ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM (a graceful stop), then SIGKILL after 15 s."""
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()


@contextlib.contextmanager
def live_server(log_dir: Path, **env: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """`litestar run` on a free port against the database under test (plus `env`); yields (process, base URL)."""
    import httpx

    port = free_port()
    litestar = Path(sys.executable).with_name("litestar")
    log_path = log_dir / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [str(litestar), "run", "--port", str(port)],
            cwd=ROOT,
            env=cli_env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
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


class RedisServer:
    """A private redis-server for one test, so it can be stopped, hung and restarted safely."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
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
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
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


# -- CSV exports (ANALYTICS.md F7) ----------------------------------------------------------


def csv_rows(text: str) -> list[dict]:
    """An export's rows as dicts of text (RFC 4180, as a spreadsheet reads it)."""
    return list(csv.DictReader(io.StringIO(text, newline="")))


def csv_cell(value: object) -> str:
    """A JSON value as the CSV writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value  # a text a spreadsheet would run, defused (F7)
    return str(value)
