"""Overlapping imports: an invoice already stored is refused by default, skipped or replaced on request.

An export of "the last 90 days" every month overlaps the one before: importing it as it is
would count the shared invoices twice. The figures are checked by hand on the small export.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import msgspec
import pytest

from app.ingest.service import OverlapRefused, import_file
from app.ingest.tables import Import
from app.metrics.service import MetricsService
from app.metrics.views import KPIS, KpisParams
from tests import small_data
from tests.helpers import HTML, browser_login, follow_import, form_token, invoke_cli, register, snapshot

pytestmark = pytest.mark.usefixtures("empty_db")

# FIRST's invoice 100001 again, with 3 mugs instead of 2 (a corrected export), and a new invoice
OVERLAPPING = small_data.HEADER + (
    "100001,A1,RED MUG,3,1/3/2011 10:00,1.25,1,Germany\n"
    "100001,POST,POSTAGE,1,1/3/2011 10:00,15,1,Germany\n"
    "100007,B2,BLUE BOWL,2,3/6/2011 9:00,3.333,3,United Kingdom\n"
)


async def kpis() -> dict:
    from app.lib.cache import BoundedMemoryStore, Cache
    from app.lib.settings import get_settings

    service = MetricsService(get_settings(), Cache(BoundedMemoryStore(), name="test cache"))
    return msgspec.json.decode(await service.answer(KPIS, KpisParams()))


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


async def test_an_overlapping_file_is_refused_with_a_report_and_changes_nothing(tmp_path):
    await import_file(write(tmp_path, "first.csv", small_data.FIRST))
    before = await snapshot()
    with pytest.raises(OverlapRefused) as refused:
        await import_file(write(tmp_path, "overlap.csv", OVERLAPPING))
    overlap = refused.value.overlap
    assert (overlap.invoices, overlap.file_lines, overlap.stored_lines, overlap.examples) == (1, 2, 2, ["100001"])
    assert (overlap.first, overlap.last) == (datetime(2011, 1, 3, 10), datetime(2011, 1, 3, 10))
    message = str(refused.value)
    assert "1 of its invoices are already stored" in message and "100001" in message and "nothing" in message
    assert await snapshot() == before
    assert await kpis() == small_data.FIRST_KPIS


async def test_skip_imports_only_the_new_invoices(tmp_path):
    await import_file(write(tmp_path, "first.csv", small_data.FIRST))
    result = await import_file(write(tmp_path, "overlap.csv", OVERLAPPING), overlap="skip")
    assert (result.rows, result.overlap.invoices) == (1, 1)
    assert "1 invoices were already stored: skipped" in result.summary()
    figures = await kpis()
    # FIRST plus invoice 100007 (2 x 3.333 = 6.666): 25.833 + 6.666 = 32.499
    assert (figures["revenue"], figures["orders"], figures["units_sold"]) == (32.5, 4, 10)
    record = await Import.select(Import.rows, Import.summary).where(Import.id == result.import_id).first().run()
    assert record["rows"] == 1 and "skipped" in record["summary"]


async def test_replace_overlapping_swaps_those_invoices_for_the_files_lines(tmp_path):
    await import_file(write(tmp_path, "first.csv", small_data.FIRST))
    result = await import_file(write(tmp_path, "overlap.csv", OVERLAPPING), overlap="replace")
    assert (result.rows, result.overlap.stored_lines) == (3, 2)
    figures = await kpis()
    # invoice 100001 now has 3 mugs (3.75 + 15), plus 100007: 25.833 - 2.50 + 3.75 + 6.666 = 33.749
    assert (figures["revenue"], figures["orders"], figures["units_sold"]) == (33.75, 4, 11)


async def test_replacing_the_overlap_with_the_same_file_again_is_idempotent(tmp_path):
    path = write(tmp_path, "first.csv", small_data.FIRST)
    await import_file(path)
    for _ in range(2):  # the same bytes, twice: no "already imported", no doubled figure
        result = await import_file(path, overlap="replace")
        assert result.overlap.invoices == 5
        assert await kpis() == small_data.FIRST_KPIS


async def test_a_skip_with_nothing_new_imports_nothing(tmp_path):
    path = write(tmp_path, "first.csv", small_data.FIRST)
    await import_file(path)
    before = await snapshot()
    with pytest.raises(Exception, match="every invoice in it is already stored"):
        await import_file(path, overlap="skip")
    assert await snapshot() == before


def test_the_cli_refuses_then_offers_the_three_choices(tmp_path):
    first, overlapping = write(tmp_path, "first.csv", small_data.FIRST), write(tmp_path, "o.csv", OVERLAPPING)
    assert invoke_cli("data", "import", str(first)).returncode == 0
    refused = invoke_cli("data", "import", str(overlapping))
    assert refused.returncode == 1
    assert "already stored" in refused.stderr and "--skip-overlap" in refused.stderr
    assert "--replace-overlap" in refused.stderr and "--replace" in refused.stderr
    both = invoke_cli("data", "import", str(overlapping), "--skip-overlap", "--replace")
    assert both.returncode == 1 and "choose one of" in both.stderr
    skipped = invoke_cli("data", "import", str(overlapping), "--skip-overlap")
    assert skipped.returncode == 0 and "skipped" in skipped.stdout, skipped.stderr


async def test_the_upload_page_refuses_explains_and_then_skips(client, tmp_path):
    await register(client)
    await browser_login(client)
    await client.get("/data", headers=HTML)
    csrf = await form_token(client, "/data")

    async def upload(content: str, **fields: str):
        return await client.post(
            "/data/upload",
            files={"file": ("export.csv", content.encode())},
            data={"_csrf": csrf, **fields},
            headers=HTML,
        )

    first = await upload(small_data.FIRST)
    assert first.status_code == 303 and first.headers["location"].startswith("/data/jobs/")
    done = await follow_import(client, first)
    assert done.status_code == 200 and "/data/imports/" in str(done.url)
    refused = await follow_import(client, await upload(OVERLAPPING))
    assert refused.status_code == 409 and "Invoices already stored" in refused.text and "100001" in refused.text
    assert 'name="overlap" value="skip"' in refused.text
    result = await follow_import(client, await upload(OVERLAPPING, overlap="skip"))
    assert result.status_code == 200 and "Imported export.csv" in result.text and "skipped" in result.text
    imports = await Import.count().run()
    again = await client.get(str(result.url), headers=HTML)  # a reload shows it, imports nothing
    assert again.status_code == 200 and await Import.count().run() == imports
    assert (await client.get("/data/imports/99999", headers=HTML)).status_code == 404
    bad = await upload(OVERLAPPING, overlap="merge")
    assert bad.status_code == 400 and "overlap must be one of" in bad.text
