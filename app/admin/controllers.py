"""Admin pages: the data page (upload an export, start a refresh) and piccolo-admin at /admin."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Template

from app.admin.uploads import UploadRefused, save_upload
from app.auth.guards import requires_admin
from app.ingest.reader import SourceError
from app.ingest.service import DuplicateImport, ImportFailed, ImportRejected, dataset_status, import_file
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
    ) -> Template:
        await check_csrf(request)
        settings = get_settings()
        upload = data.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return await self._page(request, 400, error="choose a file to upload")
        replace = data.get("replace") in {"on", "true", "1"}
        skip_invalid = data.get("skip_invalid") in {"on", "true", "1"}
        max_bytes = settings.max_upload_mb * 1_000_000
        folder = Path(tempfile.mkdtemp(prefix="shop-upload-"))
        try:
            path = await save_upload(upload, folder / "upload", max_bytes, max_bytes * UNPACK_FACTOR)
            result = await import_file(
                path, replace=replace, skip_invalid=skip_invalid, file_name=Path(upload.filename).name[:255]
            )
        except UploadRefused as error:
            return await self._page(request, 413, error=str(error))
        except ImportRejected as error:
            return await self._page(request, 400, error=str(error), rejects=error.rejects, rejected=error.rejected)
        except (SourceError, DuplicateImport, ImportFailed) as error:
            status = 409 if isinstance(error, DuplicateImport) else 400
            return await self._page(request, status, error=str(error))
        finally:
            await upload.close()
            shutil.rmtree(folder, ignore_errors=True)
        get_metrics_service().forget_tag()  # this process sees the new data at once
        refresh = await trigger_refresh()
        logger.info("upload imported by %s: %s", request.scope["user"]["username"], result.summary())
        return await self._page(request, 200, result=result, refresh_state=refresh)

    @post("/refresh")
    async def refresh(self, request: Request) -> Template:
        await check_csrf(request)
        state = await trigger_refresh()
        return await self._page(request, 200, message=f"Refresh {state}.")
