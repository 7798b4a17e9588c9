"""CSRF: a signed-in browser's form token is bound to its session, so cookie tossing gets nowhere.

The attack: a page on another port of this host (or a sibling subdomain) sets the double-submit
cookie to a value it knows, then posts a form that echoes it.
"""

from __future__ import annotations

import pytest

from app.ingest.tables import Import
from app.lib.settings import get_settings
from tests import small_data
from tests.helpers import HTML, browser_login, form_token, register

pytestmark = pytest.mark.usefixtures("empty_db")

TOSSED = "A" * 43  # what the attacker's page set as the CSRF cookie


async def test_a_tossed_cookie_and_its_echo_are_refused_on_every_form(client):
    await register(client)
    await browser_login(client)
    client.cookies.set("shop_csrf", TOSSED)
    for path, files in [
        ("/data/upload", {"file": ("x.csv", small_data.FIRST.encode())}),
        ("/data/refresh", None),
        ("/auth/logout", None),
        ("/users/me/password", None),
    ]:
        answer = await client.post(path, data={"_csrf": TOSSED}, files=files, headers=HTML)
        assert answer.status_code == 403, path
    assert await Import.count().run() == 0
    assert (await client.get("/users/me", headers=HTML)).status_code == 200  # not logged out


async def test_the_token_only_counts_in_the_body_or_the_header(client):
    await register(client)
    await browser_login(client)
    token = await form_token(client, "/data")
    in_query = await client.post(
        f"/data/refresh?_csrf={token}", data={}, headers={**HTML, "content-type": "application/x-www-form-urlencoded"}
    )
    assert in_query.status_code == 403
    in_header = await client.post("/data/refresh", headers={**HTML, "x-csrf-token": token})
    assert in_header.status_code == 200
    in_body = await client.post("/data/refresh", data={"_csrf": token}, headers=HTML)
    assert in_body.status_code == 200


async def test_one_sessions_token_is_no_good_in_another(client):
    await register(client)
    await browser_login(client)
    first = await form_token(client)
    client.cookies.clear()
    await browser_login(client)  # a new session of the same user
    second = await form_token(client)
    assert first != second
    assert (await client.post("/data/refresh", data={"_csrf": first}, headers=HTML)).status_code == 403
    assert (await client.post("/data/refresh", data={"_csrf": second}, headers=HTML)).status_code == 200


async def test_secure_cookies_use_the_host_prefix(client, monkeypatch):
    monkeypatch.setenv("COOKIE_SECURE", "true")
    get_settings.cache_clear()
    try:
        page = await client.get("/login", headers=HTML)
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("__Host-shop_csrf=") and "Secure" in cookie and "Path=/" in cookie
        assert "Domain" not in cookie
    finally:
        monkeypatch.delenv("COOKIE_SECURE")
        get_settings.cache_clear()
