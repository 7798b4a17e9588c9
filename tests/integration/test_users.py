"""Accounts managed by admins: closed registration, the Users page and its JSON API, invites.

Each route is tried as an admin, a member, a stranger and a browser without its form token;
the rules (never zero active admins, a deactivated user's tokens stop at once, a one-time
password must be replaced first) each get a case that fails if the rule breaks.
"""

from __future__ import annotations

import logging
import re

import pytest

from app.auth.tables import User
from app.lib.settings import get_settings
from tests.helpers import HTML, bearer, browser_login, form_token, login, register

ADMIN_ROUTES = [
    ("get", "/users", None),
    ("post", "/users", {"username": "mallory"}),
    ("post", "/users/{id}/active", {"active": False}),
    ("post", "/users/{id}/admin", {"admin": True}),
    ("post", "/users/{id}/password-reset", {}),
]


@pytest.fixture
def closed(monkeypatch):
    """The default setting: registration closed once an account exists."""
    from app.auth.deps import get_accounts

    monkeypatch.delenv("REGISTRATION_OPEN")
    get_settings.cache_clear()
    get_accounts.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    get_accounts.cache_clear()


async def admin_token(client) -> str:
    await register(client, "alice")
    return await login(client, "alice")


async def create(client, token: str, **body) -> dict:
    answer = await client.post("/users", json=body, headers=bearer(token))
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_registration_is_closed_after_the_first_account_by_default(client, closed):
    assert get_settings().registration_open is False
    page = await client.get("/register", headers=HTML)
    assert "Create account" in page.text and "closed" not in page.text  # the first account: the admin
    first = await register(client, "owner")
    assert first["is_admin"] is True
    refused = await client.post("/auth/register", json={"username": "late", "password": "long enough"})
    assert refused.status_code == 403 and "ask an admin" in refused.json()["detail"]
    page = await client.get("/register", headers=HTML)
    assert "Registration is closed" in page.text and "Ask an admin" in page.text
    assert 'name="password"' not in page.text
    login_page = await client.get("/login", headers=HTML)
    assert "Ask an admin" in login_page.text and 'href="/register"' not in login_page.text
    assert await User.count() == 1


async def test_registration_opens_with_the_setting(client):
    assert get_settings().registration_open is True  # REGISTRATION_OPEN=true (tests/conftest.py)
    await register(client, "owner")
    second = await register(client, "second")
    assert second["is_admin"] is False


async def test_a_one_time_password_works_once_then_its_owner_must_choose_their_own(client, caplog):
    token = await admin_token(client)
    with caplog.at_level(logging.INFO, logger="app.auth.users"):
        made = await create(client, token, username="bob")
    secret = made["one_time_password"]
    assert len(secret) >= 16 and made["invite_path"] is None
    assert made["user"]["must_change_password"] is True and made["user"]["is_admin"] is False
    assert "alice created bob" in caplog.text and secret not in caplog.text
    bob = await login(client, "bob", secret)
    kept_out = await client.get("/metrics/kpis", headers=bearer(bob))
    assert kept_out.status_code == 403 and "choose your own first" in kept_out.json()["detail"]
    changed = await client.post(
        "/users/me/password", json={"current_password": secret, "new_password": "bobs own words"}, headers=bearer(bob)
    )
    assert changed.status_code == 200
    bob = changed.json()["access_token"]
    assert (await client.get("/metrics/kpis", headers=bearer(bob))).status_code in (200, 404)
    listed = {row["username"]: row for row in (await client.get("/users", headers=bearer(token))).json()}
    assert listed["bob"]["must_change_password"] is False and listed["bob"]["last_login_at"] is not None
    assert set(listed["bob"]) == {
        "id",
        "username",
        "is_admin",
        "is_active",
        "created_at",
        "last_login_at",
        "must_change_password",
        "invited",
    }


async def test_a_browser_with_a_one_time_password_lands_on_the_account_page(client):
    token = await admin_token(client)
    made = await create(client, token, username="bob")
    await browser_login(client, "bob", made["one_time_password"])
    dashboard = await client.get("/", headers=HTML)
    assert dashboard.status_code == 303 and dashboard.headers["location"] == "/users/me"
    assert (await client.get("/users/me", headers=HTML)).status_code == 200


async def test_an_invite_link_sets_the_password_once_and_signs_in(client):
    token = await admin_token(client)
    made = await create(client, token, username="carol", method="invite", is_admin=True)
    assert made["one_time_password"] is None and made["user"]["invited"] is True
    path = made["invite_path"]
    assert re.fullmatch(r"/invite/[A-Za-z0-9_-]{40,}", path)
    client.cookies.clear()
    page = await client.get(path, headers=HTML)
    assert page.status_code == 200 and "Welcome, carol" in page.text
    csrf = client.cookies.get("shop_csrf")
    joined = await client.post(path, data={"_csrf": csrf, "password": "carols words"}, headers=HTML)
    assert joined.status_code == 303 and joined.headers["location"] == "/"
    assert (await client.get("/users", headers=HTML)).status_code == 200  # signed in, as an admin
    client.cookies.clear()
    again = await client.get(path, headers=HTML)
    assert again.status_code == 404 and "does not work" in again.text
    csrf = client.cookies.get("shop_csrf")
    reused = await client.post(path, data={"_csrf": csrf, "password": "another one"}, headers=HTML)
    assert reused.status_code == 404
    assert await login(client, "carol", "carols words")
    guessed = await client.get("/invite/" + "A" * 43, headers=HTML)
    assert guessed.status_code == 404


async def test_deactivation_stops_the_users_tokens_at_once_and_reactivation_needs_a_new_login(client):
    token = await admin_token(client)
    await register(client, "bob", "bobs words!")
    bob = await login(client, "bob", "bobs words!")
    assert (await client.get("/users/me", headers=bearer(bob))).status_code == 200
    bob_id = (await client.get("/users/me", headers=bearer(bob))).json()["id"]
    off = await client.post(f"/users/{bob_id}/active", json={"active": False}, headers=bearer(token))
    assert off.status_code == 200 and off.json()["is_active"] is False
    assert (await client.get("/users/me", headers=bearer(bob))).status_code == 401
    refused = await client.post("/auth/login", json={"username": "bob", "password": "bobs words!"})
    assert refused.status_code == 401
    on = await client.post(f"/users/{bob_id}/active", json={"active": True}, headers=bearer(token))
    assert on.json()["is_active"] is True
    assert (await client.get("/users/me", headers=bearer(bob))).status_code == 401  # the old token stays out
    assert await login(client, "bob", "bobs words!")


async def test_an_instance_never_loses_its_last_active_admin(client):
    token = await admin_token(client)
    me = (await client.get("/users/me", headers=bearer(token))).json()["id"]
    revoke = await client.post(f"/users/{me}/admin", json={"admin": False}, headers=bearer(token))
    assert revoke.status_code == 409 and "last active admin" in revoke.json()["detail"]
    myself = await client.post(f"/users/{me}/active", json={"active": False}, headers=bearer(token))
    assert myself.status_code == 409
    made = await create(client, token, username="dave", is_admin=True)
    dave = made["user"]["id"]
    assert (await client.post(f"/users/{me}/admin", json={"admin": False}, headers=bearer(token))).status_code == 200
    # alice is no admin now: her token is refused on the admin routes at once
    assert (await client.get("/users", headers=bearer(token))).status_code == 403
    assert await User.count().where((User.is_admin == True) & (User.is_active == True)) == 1  # noqa: E712
    assert (await User.select(User.id).where(User.is_admin == True).first())["id"] == dave  # noqa: E712


async def test_a_password_reset_replaces_the_password_and_signs_the_user_out(client):
    token = await admin_token(client)
    await register(client, "bob", "bobs words!")
    bob = await login(client, "bob", "bobs words!")
    bob_id = (await client.get("/users/me", headers=bearer(bob))).json()["id"]
    reset = await client.post(f"/users/{bob_id}/password-reset", headers=bearer(token))
    assert reset.status_code == 200
    secret = reset.json()["one_time_password"]
    assert (await client.get("/users/me", headers=bearer(bob))).status_code == 401
    assert (await client.post("/auth/login", json={"username": "bob", "password": "bobs words!"})).status_code == 401
    assert await login(client, "bob", secret)
    invite = await client.post(f"/users/{bob_id}/password-reset", json={"method": "invite"}, headers=bearer(token))
    assert invite.json()["invite_path"].startswith("/invite/")


async def test_every_users_route_is_for_admins_only(client):
    token = await admin_token(client)
    await register(client, "member", "member words")
    member = await login(client, "member", "member words")
    member_id = (await client.get("/users/me", headers=bearer(member))).json()["id"]
    for method, path, body in ADMIN_ROUTES:
        url = path.format(id=member_id)
        kwargs = {"json": body} if body is not None else {}
        as_member = await client.request(method, url, headers=bearer(member), **kwargs)
        assert as_member.status_code == 403, (url, as_member.text)
        anonymous = await client.request(method, url, **kwargs)
        assert anonymous.status_code == 401, url
    assert await User.count() == 2
    member_row = await User.select(User.is_admin, User.is_active).where(User.id == member_id).first()
    assert member_row == {"is_admin": False, "is_active": True}
    unknown = await client.post("/users/999999/admin", json={"admin": True}, headers=bearer(token))
    assert unknown.status_code == 404 and "999999" in unknown.json()["detail"]
    bad = await client.post(f"/users/{member_id}/admin", json={"admin": "yes please"}, headers=bearer(token))
    assert bad.status_code == 400


async def test_the_users_forms_need_their_token_and_work_with_it(client):
    await register(client, "alice")
    await register(client, "bob", "bobs words!")
    await browser_login(client, "alice")
    page = await client.get("/users", headers=HTML)
    assert page.status_code == 200 and "bob" in page.text and "Add a user" in page.text
    bob_id = (await User.select(User.id).where(User.username == "bob").first())["id"]
    for path, data in [
        ("/users", {"username": "eve"}),
        (f"/users/{bob_id}/active", {"active": "false"}),
        (f"/users/{bob_id}/admin", {"admin": "true"}),
        (f"/users/{bob_id}/password-reset", {"method": "password"}),
    ]:
        refused = await client.post(path, data=data, headers=HTML)
        assert refused.status_code == 403, path
    assert await User.count() == 2
    assert (await User.select(User.is_active).where(User.id == bob_id).first())["is_active"] is True
    csrf = await form_token(client, "/users")
    made = await client.post("/users", data={"_csrf": csrf, "username": "eve", "method": "invite"}, headers=HTML)
    assert made.status_code == 303 and made.headers["location"].startswith("/users?shown=")
    shown = await client.get(made.headers["location"], headers=HTML)
    assert "http://t/invite/" in shown.text and "Invite for eve" in shown.text
    again = await client.get(made.headers["location"], headers=HTML)  # a reload: posts nothing, shows no secret
    assert "/invite/" not in again.text and "shown once already" in again.text
    assert await User.count() == 3
    off = await client.post(f"/users/{bob_id}/active", data={"_csrf": csrf, "active": "false"}, headers=HTML)
    assert off.status_code == 303 and off.headers["location"].startswith("/users?done=")
    assert "Deactivated" in (await client.get("/users", headers=HTML)).text
    taken = await client.post("/users", data={"_csrf": csrf, "username": "bob"}, headers=HTML)
    assert taken.status_code == 409 and "taken" in taken.text and 'value="bob"' in taken.text


async def test_options_names_every_method_of_the_users_path(client):
    token = await admin_token(client)
    allowed = await client.request("OPTIONS", "/users", headers=bearer(token))
    assert allowed.status_code == 204 and allowed.headers["allow"] == "GET, OPTIONS, POST"
    reset = await client.post("/users/1/password-reset", headers=bearer(token))  # no body: the defaults
    assert reset.status_code in (200, 404)


async def test_the_users_api_is_in_the_openapi_document(client):
    spec = (await client.get("/schema/openapi.json")).json()
    for path in ["/users", "/users/{user_id}/active", "/users/{user_id}/admin", "/users/{user_id}/password-reset"]:
        assert path in spec["paths"], path


async def test_a_deactivation_reaches_every_web_process_at_once_on_postgres(client, engine_name):
    """Another web process remembers a checked token for 2 s; the change's NOTIFY ends that."""
    if engine_name != "postgres":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; the embedded mode is one process")
    import asyncio

    from app.auth.service import Accounts
    from app.lib.cache import get_cache
    from app.metrics.service import MetricsService

    token = await admin_token(client)
    await register(client, "bob", "bobs words!")
    bob = await login(client, "bob", "bobs words!")
    other = Accounts(get_settings(), get_cache())  # the other process's account service
    assert await other.user_for_token(bob) is not None  # checked, and remembered
    listener = MetricsService(get_settings(), get_cache())
    listener.forget_user = other.forget_user  # type: ignore[method-assign]  # that process's accounts
    await listener.listen(get_settings().database_url)
    try:
        bob_id = (await User.select(User.id).where(User.username == "bob").first())["id"]
        off = await client.post(f"/users/{bob_id}/active", json={"active": False}, headers=bearer(token))
        assert off.status_code == 200
        for _ in range(100):  # the notification arrives within milliseconds of the commit
            if not other._recent:
                break
            await asyncio.sleep(0.02)
        assert other._recent == {}  # forgotten through NOTIFY, not at the 2 s mark
        assert await other.user_for_token(bob) is None
    finally:
        await listener.close()
