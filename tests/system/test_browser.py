"""A new user's first visit, in a real browser (Debian's chromium via Playwright) on the real data.

Screenshots go to artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, live_server

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts"

pytestmark = pytest.mark.usefixtures("empty_db")


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
]


def _chromium() -> str:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} not found: `apt-get install -y chromium` (the browser tests drive Debian's chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
async def server_with_data(data_csv_gz, tmp_path) -> Iterator[str]:
    from app.auth.tables import User
    from app.ingest.service import import_file

    await User.delete(force=True).run()
    await import_file(data_csv_gz, replace=True)
    with live_server(tmp_path) as (_, base):
        yield base


def test_a_new_user_reads_the_figures(server_with_data, engine_name):
    live_server = server_with_data
    from playwright.sync_api import expect, sync_playwright

    executable = _chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(20_000)

        # register: the first account, straight onto the dashboard
        page.goto(f"{live_server}/")
        expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
        page.click("text=Create one")
        page.fill("#username", "newcomer")
        page.fill("#password", "a good long password")
        page.click("button[type=submit]")
        expect(page.locator("#kpis")).to_contain_text("£10,655,622.48")
        expect(page.locator("#kpis")).to_contain_text("19,959")
        expect(page.locator("#kpis")).to_contain_text("4,338")
        expect(page.locator("#kpis")).to_contain_text("£533.88")
        expect(page.locator("#series canvas")).to_be_visible()  # the chart drew
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{engine_name}.png"), full_page=True)

        # weekly series, then one country: the URL follows, so reload shows the same view
        page.click("#series >> text=Week")
        expect(page.locator("#series h2")).to_have_text("Revenue by week")
        expect(page).to_have_url(re.compile(r"freq=week"))
        page.select_option("#f-country", "Germany")
        expect(page.locator("#kpis")).to_contain_text("£228,867.14")
        expect(page).to_have_url(re.compile(r"country=Germany.*freq=week|freq=week.*country=Germany"))
        page.reload()
        expect(page.locator("#kpis")).to_contain_text("£228,867.14")
        expect(page.locator("#series h2")).to_have_text("Revenue by week")

        # the country page, from the table
        page.goto(f"{live_server}/")
        page.click("#top-countries >> text=EIRE")
        expect(page.locator("h1")).to_have_text("EIRE")
        expect(page.locator("#country .lead")).to_contain_text("Ranked #3")
        expect(page.locator("#products")).to_contain_text("REGENCY CAKESTAND 3 TIER")
        expect(page.locator("#country-series canvas")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / f"country-{engine_name}.png"), full_page=True)

        # transactions: search, then the next page, the URL in step
        page.click("nav >> text=Transactions")
        page.fill("#q", "cakestand")
        page.press("#q", "Enter")
        expect(page.locator("#lines")).to_contain_text("matching “cakestand”")
        expect(page).to_have_url(re.compile(r"q=cakestand"))
        first_row = page.locator("#lines tbody tr").first.inner_text()
        page.click("#lines >> text=Next ›")
        expect(page).to_have_url(re.compile(r"page=2"))
        expect(page.locator("#lines")).to_contain_text("page 2 of")
        assert page.locator("#lines tbody tr").first.inner_text() != first_row
        assert "CAKESTAND" in page.locator("#lines tbody").inner_text()
        # without a search, Next carries the key of the page's last line (any depth, same cost)
        page.goto(f"{live_server}/metrics/page?country=Germany&page=3")
        expect(page.locator("#q")).to_have_value("")  # no search: an empty box, not "None"
        third_last = page.locator("#lines tbody tr").last.inner_text()
        page.click("#lines >> text=Next ›")
        expect(page).to_have_url(re.compile(r"after=\d+"))
        expect(page.locator("#lines")).to_contain_text("page 4 of")
        page.click("#lines >> text=‹ Previous")
        expect(page.locator("#lines")).to_contain_text("page 3 of")
        assert page.locator("#lines tbody tr").last.inner_text() == third_last
        page.screenshot(path=str(ARTIFACTS / f"transactions-{engine_name}.png"), full_page=True)

        # a phone-width screen: the same dashboard, one column
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{live_server}/")
        expect(page.locator("#kpis")).to_contain_text("£10,655,622.48")
        assert page.evaluate("document.documentElement.scrollWidth") <= 400  # nothing wider than the screen
        page.screenshot(path=str(ARTIFACTS / f"dashboard-phone-{engine_name}.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})

        # log out: the dashboard is closed, and Back shows no figures
        page.click("text=Log out")
        expect(page).to_have_url(re.compile(r"/login\?signed_out=true$"))
        expect(page.locator("#login")).to_contain_text("You are signed out.")
        page.go_back()
        expect(page.locator("body")).not_to_contain_text("£10,655,622.48")
        page.goto(f"{live_server}/")
        expect(page).to_have_url(re.compile(r"/login"))
        browser.close()
    assert errors == []
