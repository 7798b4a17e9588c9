"""A filter the figures cannot take (start after end, a malformed date, an unknown country),
as a browser meets it: the message beside the form, the input kept, the figures as they were;
with htmx (only the message box changes) and without JavaScript (a plain GET of the form)."""

from __future__ import annotations

import pytest

from tests.helpers import HTML, browser_login, register

pytestmark = pytest.mark.usefixtures("empty_db", "small")

HTMX = {**HTML, "hx-request": "true"}
BACKWARDS = "start=2011-03-01&end=2011-01-01"


@pytest.fixture
async def browser(client):
    await register(client)
    await browser_login(client)
    return client


async def test_without_javascript_the_page_keeps_the_figures_it_came_from(browser):
    page = await browser.get(f"/?{BACKWARDS}&country=Germany", headers={**HTML, "referer": "http://t/?country=Germany"})
    assert page.status_code == 400
    assert 'role="alert">start (2011-03-01) is after end (2011-01-01): swap them</p>' in page.text
    assert 'name="start" value="2011-03-01"' in page.text and 'name="end" value="2011-01-01"' in page.text
    assert '<option value="Germany" selected>' in page.text
    assert "£17.50" in page.text  # Germany's figures: the page the form was sent from
    fresh = await browser.get(f"/?{BACKWARDS}", headers=HTML)  # no page to come back to: no filter
    assert fresh.status_code == 400 and "£25.83" in fresh.text and "swap them" in fresh.text
    good = await browser.get("/?country=Germany", headers=HTML)
    assert good.status_code == 200 and 'role="alert"' not in good.text  # the error page was not kept


async def test_with_htmx_only_the_message_box_changes(browser):
    answer = await browser.get(f"/?{BACKWARDS}", headers=HTMX)
    assert answer.status_code == 200  # htmx swaps no error status
    assert answer.headers["hx-retarget"] == "#filter-error" and answer.headers["hx-reswap"] == "innerHTML"
    assert answer.headers["hx-push-url"] == "false"  # the address keeps the last good filters
    assert answer.headers["hx-reselect"] == ".alert"
    assert answer.text == '<p class="alert" role="alert">start (2011-03-01) is after end (2011-01-01): swap them</p>'
    unknown = await browser.get("/?country=Atlantis", headers=HTMX)
    assert "unknown country &#39;Atlantis&#39;" in unknown.text and unknown.headers["hx-retarget"] == "#filter-error"
    malformed = await browser.get("/metrics/page?start=2011-02-30", headers=HTMX)
    assert "is not a date: use YYYY-MM-DD" in malformed.text


async def test_every_page_with_a_filter_form_answers_inline(browser):
    for path in ["/metrics/kpis", "/metrics/series", "/metrics/top-countries", "/metrics/top-countries/Germany"]:
        page = await browser.get(f"{path}?{BACKWARDS}", headers=HTML)
        assert page.status_code == 400 and 'id="filter-error"' in page.text and "swap them" in page.text, path
        assert 'name="start" value="2011-03-01"' in page.text, path
    lines = await browser.get(f"/metrics/page?q=mug&{BACKWARDS}", headers=HTML)
    assert lines.status_code == 400 and "swap them" in lines.text
    assert 'name="q" value="mug"' in lines.text and "RED MUG" in lines.text
    unknown = await browser.get("/?country=Atlantis", headers=HTML)
    assert unknown.status_code == 404 and "unknown country" in unknown.text and "£25.83" in unknown.text


async def test_api_clients_still_get_the_plain_error(browser):
    answer = await browser.get(f"/metrics/kpis?{BACKWARDS}", headers={"accept": "application/json"})
    assert answer.status_code == 400
    assert answer.json() == {"status_code": 400, "detail": "start (2011-03-01) is after end (2011-01-01): swap them"}
    unknown = await browser.get("/metrics/kpis?country=Atlantis", headers={"accept": "application/json"})
    assert unknown.status_code == 404
