"""Admin pages: the data page (upload an export, start a refresh) and piccolo-admin at /admin."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, QueryParameter
from litestar.response import Redirect, Template

from app.admin.uploads import UploadRefused, save_upload
from app.auth.guards import requires_admin
from app.ingest.reader import SourceError
from app.ingest.service import (
    OVERLAP_MODES,
    DuplicateImport,
    ImportFailed,
    ImportRejected,
    OverlapRefused,
    dataset_status,
    import_file,
)
from app.ingest.tables import Import
from app.lib.settings import get_settings
from app.lib.web.asking import NO_STORE_HEADERS
from app.lib.web.csrf import check_csrf
from app.metrics.jobs import trigger_refresh
from app.metrics.service import get_metrics_service

logger = logging.getLogger(__name__)

UNPACK_FACTOR = 10  # a .gz may unpack to at most 10x the upload limit


class DataController(Controller):
    path = "/data"
    guards = [requires_admin]  # noqa: RUF012
    include_in_schema = False

    async def _page(self, request: Request, status: int = 200, **context: Any) -> Template:
        context.setdefault("user", request.scope["user"])
        context["status"] = await dataset_status(limit=10)
        context["refresh"] = await get_metrics_service().last_refresh()
        context["max_upload_mb"] = get_settings().max_upload_mb
        return Template(
            template_name="data.html",
            context=context,
            status_code=status,
            headers=NO_STORE_HEADERS,
            media_type="text/html",
        )

    @get("/")
    async def page(self, request: Request) -> Template:
        return await self._page(request)

    # the body limit, checked by Litestar before parsing; the unpacked size is checked in save_upload
    @post("/upload", request_max_body_size=get_settings().max_upload_mb * 1_000_000 + 100_000)
    async def upload(
        self,
        request: Request,
        data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> Template | Redirect:
        await check_csrf(request)
        settings = get_settings()
        upload = data.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return await self._page(request, 400, error="choose a file to upload")
        replace = data.get("replace") in {"on", "true", "1"}
        overlap = data.get("overlap") or "refuse"
        if overlap not in OVERLAP_MODES:
            return await self._page(request, 400, error=f"overlap must be one of {', '.join(OVERLAP_MODES)}")
        skip_invalid = data.get("skip_invalid") in {"on", "true", "1"}
        max_bytes = settings.max_upload_mb * 1_000_000
        folder = Path(tempfile.mkdtemp(prefix="shop-upload-"))
        try:
            path = await save_upload(upload, folder / "upload", max_bytes, max_bytes * UNPACK_FACTOR)
            result = await import_file(
                path,
                replace=replace,
                overlap=overlap,
                skip_invalid=skip_invalid,
                file_name=Path(upload.filename).name[:255],
                max_unpacked=max_bytes * UNPACK_FACTOR,
            )
        except UploadRefused as error:
            return await self._page(request, 413, error=str(error))
        except OverlapRefused as error:
            return await self._page(request, 409, error=str(error), overlap=error.overlap)
        except ImportRejected as error:
            return await self._page(request, 400, error=str(error), rejects=error.rejects, rejected=error.rejected)
        except (SourceError, DuplicateImport, ImportFailed) as error:
            status = 409 if isinstance(error, DuplicateImport) else 400
            return await self._page(request, status, error=str(error))
        finally:
            await upload.close()
            shutil.rmtree(folder, ignore_errors=True)
        # Committed. Whatever happens next, the import stands: the result page reads its record.
        get_metrics_service().forget_tag()  # this process sees the new data at once
        logger.info("upload imported by %s: %s", request.scope["user"]["username"], result.summary())
        try:
            refresh = await trigger_refresh()
        except Exception as error:  # noqa: BLE001 - the figures are computed on first view instead
            logger.warning("upload: could not start a refresh (%s: %s)", type(error).__name__, error)
            refresh = "not started (the figures are computed on first view)"
        return Redirect(
            path=f"/data/imports/{result.import_id}?refresh={quote(refresh)}", status_code=303, headers=NO_STORE_HEADERS
        )

    @get("/imports/{import_id:int}")
    async def import_result(
        self,
        request: Request,
        import_id: FromPath[int],
        refresh: Annotated[str, QueryParameter(description="what the upload did about the refresh")] = "",
    ) -> Template:
        """What one import did, from its record (a reload shows it again and imports nothing)."""
        record = await Import.select().where(Import.id == import_id).first().run()
        if record is None:
            return await self._page(request, 404, error=f"there is no import {import_id}")
        return await self._page(request, 200, record=record, refresh_state=refresh[:200])

    @post("/refresh")
    async def refresh(self, request: Request) -> Template:
        await check_csrf(request)
        state = await trigger_refresh()
        return await self._page(request, 200, message=f"Refresh {state}.")
