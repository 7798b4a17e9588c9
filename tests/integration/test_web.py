"""The web app over HTTP (in-process ASGI): accounts, the three answer modes, errors, security.

(The OpenAPI schema alone is checked in tests/unit/test_openapi.py.)"""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from app.lib.settings import get_settings
from tests import small_data
from tests.helpers import HTML, HTMX, JSON_HEADERS, bearer, browser_login, form_token, login, register

pytestmark = pytest.mark.usefixtures("empty_db")

# -- accounts ------------------------------------------------------------------------------


async def test_register_login_and_me_as_json(client):
    first = await register(client)
    assert set(first) == {"id", "username", "is_admin", "created_at"}
    assert (first["username"], first["is_admin"]) == ("alice", True)  # the first account is the admin
    second = await register(client, "bob.b-2")
    assert second["is_admin"] is False

    login_answer = (await client.post("/auth/login", json={"username": "alice", "password": "correct horse"})).json()
    assert login_answer["token_type"] == "bearer" and login_answer["user"] == first
    me = await client.get("/users/me", headers=bearer(login_answer["access_token"]))
    assert me.status_code == 200 and me.json() == first


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"username": "al", "password": "long enough"}, 400, "username"),
        ({"username": "a" * 31, "password": "long enough"}, 400, "username"),
        ({"username": "al ice", "password": "long enough"}, 400, "username"),
        ({"username": "alice", "password": "short"}, 400, "8 to 1024"),
        ({"username": "alice", "password": "x" * 1025}, 400, "8 to 1024"),
        ({"username": "ALICE", "password": "long enough"}, 409, "taken"),
        ({"username": "carol"}, 400, "password"),
    ],
)
async def test_registration_refuses_bad_input_with_a_clear_message(client, body, status, words):
    await register(client)
    response = await client.post("/auth/register", json=body)
    assert response.status_code == status
    assert words in response.json()["detail"]


async def test_json_endpoints_refuse_other_content_types(client):
    response = await client.post(
        "/auth/login",
        content=b'{"username": "alice", "password": "correct horse"}',
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 415


async def test_unknown_user_and_wrong_password_get_the_same_answer(client):
    await register(client)
    wrong = await client.post("/auth/login", json={"username": "alice", "password": "not the one"})
    unknown = await client.post("/auth/login", json={"username": "mallory", "password": "not the one"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"status_code": 401, "detail": "wrong username or password"}


async def test_login_is_rate_limited_per_username_even_from_rotating_addresses(client):
    await register(client)
    for i in range(5):
        response = await client.post(
            "/auth/login",
            json={"username": "alice", "password": "wrong!!!"},
            headers={"x-forwarded-for": f"10.0.0.{i}"},
        )
        assert response.status_code == 401
    blocked = await client.post(
        "/auth/login", json={"username": "alice", "password": "correct horse"}, headers={"x-forwarded-for": "10.9.9.9"}
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "too many login attempts" in blocked.json()["detail"]


async def test_login_limit_is_shared_by_web_processes_through_redis(redis_server):
    """Two processes' limiters on one Redis: failures in one count in the other; a dead Redis leaves the local one."""
    from dataclasses import replace

    from app.auth.service import LoginLimiter, RateLimited
    from app.lib.cache import make_cache

    settings = replace(get_settings(), redis_url=redis_server.url)
    first, second = make_cache(settings), make_cache(settings)
    try:
        one, other = LoginLimiter(first), LoginLimiter(second)
        for _ in range(3):
            await one.failed("10.0.0.1", "Alice")
        for _ in range(2):
            await other.failed("10.0.0.1", "alice")
        with pytest.raises(RateLimited) as blocked:
            await one.check("10.0.0.1", "ALICE")  # 5 failures in all for this name from this address
        assert 290 <= blocked.value.retry_after <= 301
        assert await other.check("10.0.0.3", "bob") == 0  # another name from another address is not limited
        # the name's failures, from any address, slow its next attempt (they do not lock it)
        assert await other.check("10.0.0.3", "alice") == 0.5

        await one.succeeded("10.0.0.1", "alice")  # a successful login clears the name's counts everywhere
        assert await other.check("10.0.0.1", "alice") == 0

        redis_server.stop()
        for _ in range(5):
            await other.failed("10.0.0.5", "carol")  # Redis is gone: the process's own window still counts
        with pytest.raises(RateLimited):
            await other.check("10.0.0.5", "carol")
        assert second.available is False
    finally:
        await first.close()
        await second.close()


async def test_nobody_can_lock_the_owner_out_from_other_addresses(client):
    """The attack: wrong passwords for alice from many addresses. Each attacking address is
    blocked for alice after 5; alice, from an address with no failures, still logs in (slowed)."""
    from app import create_app

    await register(client)
    app = create_app()

    def from_address(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://t")

    wrong = {"username": "alice", "password": "wrong!!!"}
    for i in range(5):  # the attack that locked the owner out: five wrong passwords from five addresses
        async with from_address(f"10.0.0.{i}") as attacker:
            assert (await attacker.post("/auth/login", json=wrong)).status_code == 401
    async with from_address("10.9.9.9") as owner:
        ok = await owner.post("/auth/login", json={"username": "alice", "password": "correct horse"})
    assert ok.status_code == 200, ok.text  # slowed (half a second), not refused
    async with from_address("10.0.0.1") as attacker:  # one address that keeps trying is blocked for alice
        for _ in range(4):  # its fifth failure (one was above)
            assert (await attacker.post("/auth/login", json=wrong)).status_code == 401
        blocked = await attacker.post("/auth/login", json={"username": "alice", "password": "correct horse"})
        assert blocked.status_code == 429 and "too many login attempts" in blocked.json()["detail"]
    async with from_address("10.9.9.9") as owner:  # and the owner, elsewhere, still gets in
        assert (
            await owner.post("/auth/login", json={"username": "alice", "password": "correct horse"})
        ).status_code == 200


async def test_bad_tokens_are_refused(client):
    user = await register(client)
    good = await login(client)
    settings = get_settings()
    now = int(time.time())
    claims = {"sub": str(user["id"]), "ver": 0, "jti": "x", "iat": now, "exp": now + 600}
    expired = jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, settings.secret_key, algorithm="HS256")
    wrong_secret = jwt.encode(claims, "another secret of at least thirty-two chars", algorithm="HS256")
    none_alg = jwt.encode(claims, None, algorithm="none")
    head, _payload, signature = good.split(".")
    forged = jwt.encode({**claims, "sub": "999"}, "x" * 32, algorithm="HS256").split(".")[1]
    tampered = f"{head}.{forged}.{signature}"
    for token in [expired, wrong_secret, none_alg, tampered, "garbage", good + "x"]:
        response = await client.get("/users/me", headers=bearer(token))
        assert response.status_code == 401, token
    assert (await client.get("/users/me", headers=bearer(good))).status_code == 200


async def test_logout_revokes_the_token_and_clears_the_cookie(client):
    await register(client)
    token = await login(client)
    response = await client.post(
        "/auth/logout", headers={**bearer(token), "content-type": "application/json"}, content=b"{}"
    )
    assert response.status_code == 200
    assert 'shop_session=""' in response.headers["set-cookie"] or "shop_session=;" in response.headers["set-cookie"]
    assert (await client.get("/users/me", headers=bearer(token))).status_code == 401  # a copied token stops working


async def test_a_password_change_revokes_the_other_tokens(client):
    await register(client)
    other = await login(client)
    mine = await login(client)
    response = await client.post(
        "/users/me/password",
        json={"current_password": "correct horse", "new_password": "battery staple"},
        headers=bearer(mine),
    )
    assert response.status_code == 200
    fresh = response.json()["access_token"]
    assert (await client.get("/users/me", headers=bearer(other))).status_code == 401
    assert (await client.get("/users/me", headers=bearer(fresh))).status_code == 200
    assert (
        await client.post("/auth/login", json={"username": "alice", "password": "correct horse"})
    ).status_code == 401
    wrong = await client.post(
        "/users/me/password", json={"current_password": "nope nope", "new_password": "whatever1"}, headers=bearer(fresh)
    )
    assert wrong.status_code == 401 and "current password" in wrong.json()["detail"]


async def test_browser_login_sets_a_safe_cookie_and_needs_the_csrf_token(client):
    await register(client)
    await client.get("/login", headers=HTML)
    csrf = client.cookies.get("shop_csrf")
    refused = await client.post("/auth/login", data={"username": "alice", "password": "correct horse"}, headers=HTML)
    assert refused.status_code == 403 and "reload the page" in refused.text
    response = await client.post(
        "/auth/login",
        data={"username": "alice", "password": "correct horse", "_csrf": csrf, "next": "/metrics/page"},
        headers=HTML,
    )
    assert response.status_code == 303 and response.headers["location"] == "/metrics/page"
    cookie = response.headers["set-cookie"]
    assert "shop_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # COOKIE_SECURE=false by default (plain http on a laptop)
    me = await client.get("/users/me", headers=HTML)
    assert me.status_code == 200 and "Change your password" in me.text


async def test_a_wrong_password_in_the_form_shows_the_error_inline(client):
    await register(client)
    await client.get("/login", headers=HTML)
    csrf = client.cookies.get("shop_csrf")
    page = await client.post(
        "/auth/login", data={"username": "alice", "password": "nope nope", "_csrf": csrf}, headers=HTML
    )
    assert page.status_code == 401 and "wrong username or password" in page.text and 'value="alice"' in page.text
    partial = await client.post(
        "/auth/login", data={"username": "alice", "password": "nope nope", "_csrf": csrf}, headers={**HTMX}
    )
    assert partial.status_code == 200 and "wrong username or password" in partial.text  # htmx swaps 200s only


async def test_anonymous_browsers_go_to_login_and_come_back(client):
    response = await client.get("/metrics/page?q=mug", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fmetrics%2Fpage%3Fq%3Dmug"
    for path in ["/metrics/kpis", "/metrics/series", "/metrics/top-countries", "/metrics/top-countries/EIRE",
                 "/metrics/page", "/", "/users/me", "/data"]:  # fmt: skip
        api = await client.get(path)
        assert api.status_code == 401 and "sign in" in api.json()["detail"], path
        page = await client.get(path, headers=HTML)
        assert page.status_code == 303 and page.headers["location"].startswith("/login?next="), path
    page = await client.get("/login?next=//evil.example/x", headers=HTML)
    assert 'name="next" value="/"' in page.text  # no open redirect
    page = await client.get("/login?next=https://evil.example/", headers=HTML)
    assert 'name="next" value="/"' in page.text


# -- metrics in three modes ----------------------------------------------------------------


async def test_kpis_as_json_page_and_partial(client, small):
    await register(client)
    token = await login(client)
    as_json = await client.get("/metrics/kpis", headers={**bearer(token), **JSON_HEADERS})
    assert as_json.status_code == 200 and as_json.json() == small_data.FIRST_KPIS
    assert as_json.headers["vary"] == "Accept, HX-Request"
    page = await client.get("/metrics/kpis", headers={**bearer(token), **HTML})
    assert page.status_code == 200 and page.text.startswith("<!doctype html>")
    assert "£25.83" in page.text and "£8.61" in page.text
    partial = await client.get("/metrics/kpis", headers={**bearer(token), **HTMX})
    assert partial.status_code == 200 and "<html" not in partial.text and 'id="kpis"' in partial.text
    assert "£25.83" in partial.text


async def test_every_metric_endpoint_in_every_mode(client, small):
    await register(client)
    token = await login(client)
    endpoints = {
        "/metrics/series?freq=month": ("points", "Revenue by month"),
        "/metrics/top-countries?by=orders": ("items", "Top countries by orders"),
        "/metrics/top-countries/germany": ("top_products", "RED MUG"),
        "/metrics/page?q=mug&size=1": ("items", "RED MUG"),
    }
    for path, (field, text) in endpoints.items():
        as_json = await client.get(path, headers=bearer(token))  # */* gets JSON
        assert as_json.status_code == 200 and field in as_json.json(), path
        page = await client.get(path, headers={**bearer(token), **HTML})
        assert page.status_code == 200 and "<!doctype html>" in page.text and text in page.text, path
        assert page.headers["content-type"].startswith("text/html"), path
        partial = await client.get(path, headers={**bearer(token), **HTMX})
        assert partial.status_code == 200 and "<html" not in partial.text and text in partial.text, path
        assert partial.headers["content-type"].startswith("text/html"), path
    series = (await client.get("/metrics/series", headers=bearer(token))).json()
    assert series["points"] == small_data.FIRST_MONTHS
    page = (await client.get("/metrics/page?q=mug&size=1&page=2", headers=bearer(token))).json()
    assert (page["total"], page["pages"], page["items"][0]["invoice_no"]) == (2, 2, "100002")


async def test_bad_parameters_are_4xx_in_the_askers_format(client, small):
    await register(client)
    token = await login(client)
    cases = [
        ("/metrics/kpis?start=2011-02-01&end=2011-01-01", 400, "after"),
        ("/metrics/kpis?start=yesterday", 400, "YYYY-MM-DD"),
        ("/metrics/kpis?country=Atlantis", 404, "Atlantis"),
        ("/metrics/kpis?country=%00", 400, "NUL"),
        ("/metrics/page?q=" + "x" * 101, 400, "too long"),
        ("/metrics/series?freq=hour", 400, "freq"),
        ("/metrics/top-countries?limit=0", 400, "limit"),
        ("/metrics/top-countries?limit=ten", 400, "limit"),
        ("/metrics/page?size=501", 400, "size"),
        ("/metrics/page?page=0", 400, "page"),
        ("/metrics/top-countries/Narnia", 404, "Narnia"),
        ("/nowhere", 404, ""),
    ]
    for path, status, words in cases:
        as_json = await client.get(path, headers=bearer(token))
        assert as_json.status_code == status, (path, as_json.text)
        assert words in as_json.json()["detail"], path
        page = await client.get(path, headers={**bearer(token), **HTML})
        assert page.status_code == status and "<!doctype html>" in page.text, path
        assert page.headers["content-type"].startswith("text/html"), path
    past = await client.get("/metrics/page?page=99", headers=bearer(token))
    assert past.status_code == 200 and past.json()["items"] == []


async def test_the_dashboard_for_a_signed_in_browser(client, small):
    await register(client)
    await browser_login(client)
    page = await client.get("/?freq=week&by=customers&country=germany", headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert "£17.50" in text  # Germany's revenue
    assert "Revenue by week" in text and "Top countries by customers" in text
    assert 'data-chart="' in text and "doi:10.24432/C5BW33" in text
    assert "alice" in text and 'action="/auth/logout"' in text
    partial = await client.get("/?freq=day", headers=HTMX)
    assert "<html" not in partial.text and 'id="dashboard"' in partial.text


async def test_the_dashboard_without_data_says_what_to_do(client):
    await register(client)
    await browser_login(client)
    page = await client.get("/", headers=HTML)
    assert page.status_code == 200 and "No transactions are loaded yet" in page.text
    assert "uv run litestar data import" in page.text


# -- security headers ----------------------------------------------------------------------


async def test_security_headers_on_pages_errors_and_static_files(client):
    for path in ["/login", "/nowhere", "/static/app.css", "/metrics/kpis"]:
        response = await client.get(path, headers=HTML)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp, path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "same-origin", path


async def test_logging_out_from_the_browser(client, small):
    await register(client)
    await browser_login(client)
    csrf = await form_token(client)
    response = await client.post("/auth/logout", data={"_csrf": csrf}, headers=HTML)
    assert response.status_code == 303 and response.headers["location"] == "/login?signed_out=true"
    assert '"cache"' in response.headers["clear-site-data"]
    assert (await client.get("/", headers=HTML)).status_code == 303


async def test_registration_can_be_turned_off(client, monkeypatch):
    from app.auth.deps import get_accounts

    await register(client)
    monkeypatch.setenv("REGISTRATION_OPEN", "false")
    get_settings.cache_clear()
    get_accounts.cache_clear()
    try:
        refused = await client.post("/auth/register", json={"username": "late", "password": "long enough"})
        assert refused.status_code == 403 and "registration is closed" in refused.json()["detail"]
        page = await client.get("/register", headers=HTML)
        assert "Registration is closed" in page.text
    finally:
        monkeypatch.delenv("REGISTRATION_OPEN")
        get_settings.cache_clear()
        get_accounts.cache_clear()


async def test_the_api_documentation_works_offline(client):
    page = await client.get("/schema", headers=HTML)
    assert page.status_code == 200 and "<redoc spec-url='/schema/openapi.json'" in page.text
    assert "/static/redoc.standalone.js" in page.text and "cdn" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    spec = await client.get("/schema/openapi.json")
    assert spec.status_code == 200 and "/metrics/kpis" in spec.json()["paths"]
    assert (await client.get("/static/redoc.standalone.js")).status_code == 200


async def test_health_and_ready_need_no_login(client, small):
    health = await client.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["database"]["ok"] is True
    assert body["redis"] == {"ok": True, "configured": False, "latency_ms": None, "error": None}
    assert body["dataset"]["version"] == 1
    assert body["cache"]["backend"] == "in-process"
    assert ready.headers["cache-control"] == "no-store"


async def test_one_log_line_per_request_without_the_query_or_the_token(client, small, caplog):
    import logging

    await register(client)
    token = await login(client)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="app.requests"):
        await client.get("/metrics/kpis?start=2010-12-01&_csrf=secret-value", headers=bearer(token))
        await client.get("/no-such-page", headers=HTML)
    lines = [record for record in caplog.records if record.name == "app.requests"]
    assert [(r.method, r.path, r.status) for r in lines] == [
        ("GET", "/metrics/kpis", 200),
        ("GET", "/no-such-page", 404),
    ]
    assert lines[0].user_id is not None and lines[0].duration_ms > 0
    text = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in lines)
    assert "secret-value" not in text and token not in text and "2010-12-01" not in text


async def test_a_country_whose_name_holds_a_slash_opens(client, tmp_path):
    from app.ingest.service import import_file

    (tmp_path / "slash.csv").write_text(
        small_data.HEADER + "100001,A1,RED MUG,2,1/3/2011 10:00,1.25,1,Bosnia/Herzegovina\n"
    )
    await import_file(tmp_path / "slash.csv")
    await register(client)
    auth = bearer(await login(client))
    for path in ["/metrics/top-countries/Bosnia%2FHerzegovina", "/metrics/top-countries/bosnia/herzegovina"]:
        answer = await client.get(path, headers=auth)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json()["country"] == "Bosnia/Herzegovina" and answer.json()["kpis"]["revenue"] == 2.5
    page = await client.get("/metrics/top-countries", headers={**auth, **HTML})
    assert 'href="/metrics/top-countries/Bosnia/Herzegovina' in page.text
    linked = await client.get("/metrics/top-countries/Bosnia/Herzegovina", headers={**auth, **HTML})
    assert linked.status_code == 200 and "Bosnia/Herzegovina" in linked.text


async def test_the_transactions_columns_sort_and_the_sort_is_in_the_links(client, small):
    await register(client)
    await browser_login(client)
    page = await client.get("/metrics/page?sort=-line_revenue&country=Germany", headers=HTML)
    assert page.status_code == 200
    assert 'aria-sort="descending"' in page.text and "Revenue ▼" in page.text
    assert 'href="/metrics/page?country=Germany&amp;sort=line_revenue"' in page.text  # the other way
    rows = page.text.split("<tbody>", 1)[1]
    assert rows.index("POSTAGE") < rows.index("RED MUG")  # £15.00 before £2.50
    default = await client.get("/metrics/page", headers=HTML)
    assert 'aria-sort="ascending"' in default.text and "Date ▲" in default.text
    wrong = await client.get("/metrics/page?sort=price", headers={"accept": "application/json"})
    assert wrong.status_code == 400 and "-line_revenue" in wrong.json()["detail"]


async def test_the_pages_compare_with_the_previous_period_by_default_and_json_does_not(client, small):
    await register(client)
    await browser_login(client)
    march = "start=2011-03-01&end=2011-03-31"
    page = await client.get(f"/?{march}", headers=HTML)
    assert 'aria-current="true">Previous period</a>' in page.text
    assert "compared with 29 Jan – 28 Feb 2011" in page.text  # the 31 days before March
    assert "No comparison: there are no sales 29 Jan – 28 Feb 2011" in page.text  # February sold nothing
    january = await client.get("/?start=2011-01-01&end=2011-01-31&compare=previous_year", headers=HTML)
    assert 'aria-current="true">Previous year</a>' in january.text and "1 Jan – 31 Jan 2010" in january.text
    plain = await client.get(f"/?{march}&compare=none", headers=HTML)
    assert 'class="delta' not in plain.text and 'aria-current="true">No comparison</a>' in plain.text
    # the switch is in the URL like every filter: the period switch keeps it
    assert 'href="/?start=2011-03-01&amp;end=2011-03-31&amp;compare=none&amp;freq=week"' in plain.text
    country = await client.get(f"/metrics/top-countries/Germany?{march}", headers=HTML)
    assert 'aria-current="true">Previous period</a>' in country.text
    assert "compared with 29 Jan – 28 Feb 2011" in country.text
    as_json = await client.get(f"/metrics/kpis?{march}", headers={"accept": "application/json"})
    assert as_json.json()["comparison"] is None  # scripts get the answer they always had
    compared = await client.get(
        f"/metrics/kpis?{march}&compare=previous_period", headers={"accept": "application/json"}
    )
    assert compared.json()["comparison"]["previous_start"] == "2011-01-29"
    country_json = await client.get(f"/metrics/top-countries/Germany?{march}&compare=previous_year")
    assert country_json.json()["kpis"]["comparison"]["mode"] == "previous_year"


async def test_date_presets_count_back_from_the_last_sale_day(client, small):
    await register(client)
    await browser_login(client)
    page = await client.get("/", headers=HTML)
    assert "“Today” is 1 Mar 2011, the last day with sales." in page.text
    assert 'href="/?start=2011-02-23&amp;end=2011-03-01&amp;compare=previous_period">Last 7 days</a>' in page.text
    assert 'href="/?start=2011-02-01&amp;end=2011-02-28&amp;compare=previous_period">Last month</a>' in page.text
    assert 'href="/?start=2010-01-01&amp;end=2010-12-31&amp;compare=previous_period">Last year</a>' in page.text
    chosen = await client.get("/?start=2011-01-01&end=2011-03-01", headers=HTML)
    assert 'aria-current="true">This quarter</a>' in chosen.text
    lines = await client.get("/metrics/page?country=Germany", headers=HTML)
    assert 'href="/metrics/page?country=Germany&amp;start=2011-03-01&amp;end=2011-03-01">This month</a>' in lines.text
