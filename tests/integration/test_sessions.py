"""Sessions that end for good: a logout is recorded in the database, not only in a cache."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.auth.service import Accounts
from app.auth.tables import RevokedToken
from app.lib.cache import make_cache
from app.lib.settings import get_settings
from tests.helpers import HTML, bearer, browser_login, login, register

pytestmark = pytest.mark.usefixtures("empty_db")


async def test_a_logged_out_token_stays_out_after_redis_restarts_empty(client, redis_server):
    await register(client)
    token = await login(client)
    assert (await client.post("/auth/logout", headers=bearer(token))).status_code == 200
    assert (await client.get("/users/me", headers=bearer(token))).status_code == 401
    # another web process, on a Redis that restarted with nothing in it, with no memory of the token
    redis_server.stop()
    redis_server.start()
    settings = replace(get_settings(), redis_url=redis_server.url)
    cache = make_cache(settings)
    try:
        other = Accounts(settings, cache)
        assert await other.user_for_token(token) is None
        fresh = await login(client)  # a token issued after the logout works
        assert await other.user_for_token(fresh) is not None
    finally:
        await cache.close()


async def test_logout_records_the_token_until_it_expires_and_cleans_up(client):
    await register(client)
    first, second = await login(client), await login(client)
    await client.post("/auth/logout", headers=bearer(first))
    rows = await RevokedToken.select().run()
    assert len(rows) == 1 and rows[0]["expires_at"].timestamp() > 0
    # a row whose token has expired is dropped by the next logout
    await RevokedToken.update({RevokedToken.expires_at: rows[0]["expires_at"].replace(year=2000)}, force=True).run()
    await client.post("/auth/logout", headers=bearer(second))
    assert [row["jti"] for row in await RevokedToken.select().run()] != [rows[0]["jti"]]
    assert await RevokedToken.count().run() == 1


async def test_logout_without_a_session_is_401_for_scripts_and_the_login_page_for_browsers(client):
    await register(client)
    nothing = await client.post("/auth/logout", json={})
    assert nothing.status_code == 401 and "not signed in" in nothing.json()["detail"]
    invalid = await client.post("/auth/logout", headers={"authorization": "Bearer not.a.token"})
    assert invalid.status_code == 401
    token = await login(client)
    await client.post("/auth/logout", headers=bearer(token))
    again = await client.post("/auth/logout", headers=bearer(token))  # already logged out
    assert again.status_code == 401
    browser = await client.post("/auth/logout", data={"_csrf": "x"}, headers=HTML)
    assert browser.status_code == 303 and browser.headers["location"] == "/login?signed_out=true"


async def test_a_browser_logout_still_needs_the_forms_token(client):
    await register(client)
    await browser_login(client)
    refused = await client.post("/auth/logout", data={}, headers=HTML)
    assert refused.status_code == 403
    assert (await client.get("/users/me", headers=HTML)).status_code == 200  # still signed in


async def test_a_taken_name_costs_the_same_hash_as_a_free_one(client, monkeypatch):
    """Registration hashes the password before it looks the name up (a spy: the real hash runs)."""
    import app.auth.service as service

    hashed = []
    real = service.hash_password

    async def counted(password: str) -> str:
        hashed.append(password)
        return await real(password)

    monkeypatch.setattr(service, "hash_password", counted)
    await register(client)
    taken = await client.post("/auth/register", json={"username": "ALICE", "password": "another one"})
    assert taken.status_code == 409
    assert hashed == ["correct horse", "another one"]


async def test_a_logout_that_cannot_be_recorded_says_so(client):
    """The revocation table unusable: the logout is an error (503), not a 200 that would be a lie."""
    await register(client)
    token = await login(client)
    await RevokedToken.raw("ALTER TABLE revoked_tokens RENAME TO revoked_tokens_away").run()
    try:
        answer = await client.post("/auth/logout", headers=bearer(token))
        assert answer.status_code == 503 and "try again" in answer.json()["detail"]
    finally:
        await RevokedToken.raw("ALTER TABLE revoked_tokens_away RENAME TO revoked_tokens").run()
    assert (await client.get("/users/me", headers=bearer(token))).status_code == 200  # it was not logged out
