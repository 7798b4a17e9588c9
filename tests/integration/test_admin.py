"""Admin pages: who may see them, uploads (limits, gzip bombs, bad files), piccolo-admin without a second login.

(Saving an upload alone is checked in tests/unit/test_uploads.py.)"""

from __future__ import annotations

import gzip
import re

import httpx
import pytest

from app.ingest.tables import Import
from app.lib.settings import get_settings
from tests import small_data
from tests.helpers import HTML, bearer, browser_login, follow_import, form_token, login, register

pytestmark = pytest.mark.usefixtures("empty_db")


async def upload(client: httpx.AsyncClient, name: str, content: bytes, **fields: str) -> httpx.Response:
    csrf = await form_token(client, "/data")
    answer = await client.post(
        "/data/upload", files={"file": (name, content)}, data={"_csrf": csrf, **fields}, headers=HTML
    )
    return await follow_import(client, answer)  # the import runs in a child process; its page follows it


async def test_admin_pages_are_for_admins_only(client):
    await register(client)  # the first account: admin
    await register(client, "bob")
    bob = await login(client, "bob")
    for path in ["/admin/", "/admin/api/tables/", "/data"]:
        assert (await client.get(path, headers=bearer(bob))).status_code == 403, path
        page = await client.get(path, headers={**bearer(bob), **HTML})
        assert page.status_code == 403 and "Not allowed" in page.text, path
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    anonymous = await client.get("/admin/", headers=HTML)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=%2Fadmin%2F"


async def test_an_admin_signed_in_to_the_app_is_signed_in_to_piccolo_admin(client):
    await register(client)
    await browser_login(client)
    index = await client.get("/admin/", headers=HTML)
    assert index.status_code == 200 and '<div id="app">' in index.text
    # read-only, and it looks it: the stylesheet that hides Add, Edit and Delete, and says why
    assert '<link rel="stylesheet" href="/static/admin-readonly.css">' in index.text
    assert int(index.headers["content-length"]) == len(index.content)
    look = (await client.get("/static/admin-readonly.css")).text
    assert 'a[href$="/add/"]' in look and "delete_row_button" in look and "Read-only" in look
    refused = await client.post("/admin/api/tables/transactions/", json={"invoice_no": "1"})
    assert refused.status_code in (403, 405)
    assert "script-src 'self'" in index.headers["content-security-policy"]
    assert index.headers["x-content-type-options"] == "nosniff"
    tables = await client.get("/admin/api/tables/")
    assert tables.status_code == 200
    assert set(tables.json()) >= {"transactions", "imports", "users"}
    me = await client.get("/admin/api/user/")
    assert me.status_code == 200 and me.json()["username"] == "app:alice"
    users = await client.get("/admin/api/tables/users/")
    assert users.status_code == 200
    assert all("password_hash" not in row for row in users.json()["rows"])


async def test_upload_imports_the_file_and_the_figures_follow(client):
    await register(client)
    await browser_login(client)
    await client.get("/data", headers=HTML)
    page = await upload(client, "first.csv", small_data.FIRST.encode())
    assert page.status_code == 200, page.text
    assert "Imported first.csv" in page.text and "6 rows" in page.text
    kpis = await client.get("/metrics/kpis", headers={"accept": "application/json"})
    assert kpis.json() == small_data.FIRST_KPIS
    again = await upload(client, "copy.csv", small_data.FIRST.encode())
    assert again.status_code == 409 and "already" in again.text
    packed = await upload(client, "second.csv.gz", gzip.compress(small_data.SECOND.encode()))
    assert packed.status_code == 200 and "Imported second.csv.gz" in packed.text
    kpis = await client.get("/metrics/kpis", headers={"accept": "application/json"})
    assert kpis.json() == small_data.SECOND_KPIS


async def test_the_same_upload_form_sent_twice_imports_once(client):
    await register(client)
    await browser_login(client)
    page = await client.get("/data", headers=HTML)
    submission = re.search(r'name="submission" value="([^"]+)"', page.text).group(1)
    csrf = await form_token(client, "/data")
    fields = {"_csrf": csrf, "submission": submission}
    first = await client.post(
        "/data/upload", files={"file": ("a.csv", small_data.FIRST.encode())}, data=fields, headers=HTML
    )
    second = await client.post(
        "/data/upload", files={"file": ("a.csv", small_data.FIRST.encode())}, data=fields, headers=HTML
    )
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]  # the one job, followed by both
    result = await follow_import(client, second)
    assert "Imported a.csv" in result.text
    assert await Import.count() == 1
    reload = await client.get(str(result.url), headers=HTML)  # the result page, again: nothing imported
    assert reload.status_code == 200 and await Import.count() == 1
    assert "csrf" not in str(result.url).lower()


async def test_upload_messages_speak_the_pages_words(client):
    await register(client)
    await browser_login(client)
    await upload(client, "first.csv", small_data.FIRST.encode())
    again = await upload(client, "copy.csv", small_data.FIRST.encode())
    assert again.status_code == 409 and "tick “Replace all data with this file”" in again.text
    assert "--replace" not in again.text
    bad = small_data.SECOND + "100009,A1,RED MUG,many,1/3/2011 10:00,1.25,1,Germany\n"
    refused = await upload(client, "bad.csv", bad.encode())
    assert "tick “Import the valid lines and skip invalid ones”" in refused.text and "--skip" not in refused.text
    page = await client.get("/data", headers=HTML)
    assert "(the 6 transactions stored now are replaced)" in page.text and 'data-stored="6"' in page.text


async def test_a_bad_upload_is_explained_and_changes_nothing(client):
    await register(client)
    await browser_login(client)
    await client.get("/data", headers=HTML)
    bad = small_data.FIRST + "100009,A1,RED MUG,many,1/3/2011 10:00,1.25,1,Germany\n"
    page = await upload(client, "bad.csv", bad.encode())
    assert page.status_code == 400 and "Rejected lines" in page.text and "many" in page.text
    status = await client.get("/metrics/kpis", headers={"accept": "application/json"})
    assert status.json()["orders"] == 0
    skipped = await upload(client, "bad.csv", bad.encode(), skip_invalid="on")
    assert skipped.status_code == 200 and "1 invalid lines skipped" in skipped.text
    garbage = await upload(client, "x.csv", b"\x00\x01\x02 not a csv")
    assert garbage.status_code == 400 and "alert" in garbage.text
    no_csrf = await client.post("/data/upload", files={"file": ("a.csv", b"x")}, headers=HTML)
    assert no_csrf.status_code == 403


async def test_a_gzip_bomb_is_refused_early(client, monkeypatch):
    await register(client)
    await browser_login(client)
    await client.get("/data", headers=HTML)
    monkeypatch.setenv("MAX_UPLOAD_MB", "1")  # so a .gz may unpack to 10 MB
    get_settings.cache_clear()
    try:
        bomb = gzip.compress(small_data.HEADER.encode() + b"0" * 200_000_000, compresslevel=9)
        assert len(bomb) < 300_000
        page = await upload(client, "bomb.csv.gz", bomb)
        assert page.status_code == 413 and "unpacks to more than 10 MB" in page.text
        from app.ingest.jobs import jobs_dir

        assert not list(jobs_dir().glob("*/upload"))  # the refused upload's folder is gone
    finally:
        monkeypatch.delenv("MAX_UPLOAD_MB")
        get_settings.cache_clear()


async def test_an_upload_cut_off_mid_stream_is_logged_as_a_client_abort(client):
    """The client goes away half-way through its body: no 500, no traceback, one line that says so."""
    import logging

    from app import create_app

    await register(client)
    token = await login(client)
    app = create_app()
    boundary = "cutoff"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n\r\n' + small_data.HEADER
    ).encode()
    events = iter([{"type": "http.request", "body": head, "more_body": True}, {"type": "http.disconnect"}])
    sent: list[dict] = []

    async def receive() -> dict:
        return next(events)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/data/upload",
        "raw_path": b"/data/upload",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"t"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
            (b"content-length", b"1000000"),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("t", 80),
    }
    records: list[logging.LogRecord] = []
    catcher = logging.Handler(logging.DEBUG)
    catcher.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("app").addHandler(catcher)
    try:
        await app(scope, receive, send)
    finally:
        logging.getLogger("app").removeHandler(catcher)
    assert sent[0]["status"] == 499
    lines = [(record.name, record.getMessage(), record.levelno) for record in records]
    assert any(name == "app.requests" and message.startswith("POST /data/upload 499") for name, message, _ in lines)
    assert any("the client went away" in message for _, message, _ in lines)
    assert not any(level >= logging.ERROR for _, _, level in lines)  # no "unhandled error", no traceback
