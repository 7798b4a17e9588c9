"""Admin pages: the data page (upload an export, start a refresh) and piccolo-admin at /admin."""

from __future__ import annotations

import logging
import secrets
import shutil
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, QueryParameter
from litestar.response import Redirect, Template

from app.admin.uploads import UploadRefused, save_upload
from app.auth.guards import requires_admin
from app.ingest import jobs
from app.ingest.demo import DEMO_FILE
from app.ingest.service import OVERLAP_MODES, dataset_status
from app.ingest.tables import Import
from app.lib.settings import get_settings
from app.lib.web.asking import NO_STORE_HEADERS, is_htmx
from app.lib.web.csrf import check_csrf
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
        context["submission"] = secrets.token_urlsafe(16)  # one import per form, however often it is sent
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
        submission = str(data.get("submission") or "")
        claimed = jobs.claim_submission(submission)
        if claimed is not None:  # this form was sent already (a double click, a resend): its one import
            await upload.close()
            if claimed:
                return Redirect(path=f"/data/jobs/{claimed}", status_code=303, headers=NO_STORE_HEADERS)
            return await self._page(request, 409, error="this form was sent already: its import is starting, see below")
        folder = jobs.new_folder()  # saved where the import reads it: no copy, whatever the file systems
        try:
            await save_upload(upload, folder / "upload", max_bytes, max_bytes * UNPACK_FACTOR)
            job = jobs.Job(
                file_name=Path(upload.filename).name[:255],
                replace=replace,
                overlap=overlap,
                skip_invalid=skip_invalid,
                max_unpacked=max_bytes * UNPACK_FACTOR,
                user=request.scope["user"]["username"],
            )
            job_id = jobs.start(folder, job)  # the import runs in a child process: this one stays free
            jobs.record_submission(submission, job_id)
        except UploadRefused as error:
            shutil.rmtree(folder, ignore_errors=True)
            jobs.release_submission(submission)
            return await self._page(request, 413, error=str(error))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            jobs.release_submission(submission)
            raise
        finally:
            await upload.close()
        logger.info("upload by %s: import job %s started for %s", job.user, job_id, job.file_name)
        return Redirect(path=f"/data/jobs/{job_id}", status_code=303, headers=NO_STORE_HEADERS)

    @post("/demo")
    async def demo(self, request: Request) -> Template | Redirect:
        """Load the demo data set: an ordinary import of the shipped file, with the upload's progress."""
        await check_csrf(request)
        folder = jobs.new_folder()
        try:
            shutil.copyfile(DEMO_FILE, folder / "upload")
            job = jobs.Job(file_name=DEMO_FILE.name, user=request.scope["user"]["username"])
            job_id = jobs.start(folder, job)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        logger.info("demo data by %s: import job %s started", job.user, job_id)
        return Redirect(path=f"/data/jobs/{job_id}", status_code=303, headers=NO_STORE_HEADERS)

    @get("/jobs/{job_id:str}")
    async def job(self, request: Request, job_id: FromPath[str]) -> Template | Response:
        """An import's progress while it runs (the page polls this); its outcome when it ends."""
        folder = jobs.job_folder(job_id)
        if folder is None:
            return await self._page(request, 404, error="there is no such import job (jobs are kept for a day)")
        state = jobs.read_state(folder)
        if state.state == "done" and state.import_id is not None:
            refresh = await self._after_import(folder, state)
            target = f"/data/imports/{state.import_id}?refresh={quote(refresh)}"
            if is_htmx(request):  # the poll: leave the progress page for the result
                return Response(content=b"", headers={**NO_STORE_HEADERS, "hx-redirect": target})
            return Redirect(path=target, status_code=303, headers=NO_STORE_HEADERS)
        if state.state == "failed":
            if is_htmx(request):  # htmx does not swap an error: load the page, which shows it
                return Response(content=b"", headers={**NO_STORE_HEADERS, "hx-redirect": f"/data/jobs/{job_id}"})
            return await self._page(
                request,
                state.status_code or 500,
                error=state.error,
                rejects=state.rejects,
                rejected=state.rejected,
                overlap=state.overlap,
            )
        if is_htmx(request):  # the poll: only the progress (the rest of the page costs database reads)
            return Template(
                template_name="partials/job.html",
                context={"job": state, "job_id": job_id},
                headers=NO_STORE_HEADERS,
                media_type="text/html",
            )
        return await self._page(request, 200, job=state, job_id=job_id)

    async def _after_import(self, folder: Path, state: jobs.State) -> str:
        """Once per job: this process sees the new data at once, and the figures refresh."""
        marker = folder / "refreshed"
        if marker.exists():
            return marker.read_text()
        get_metrics_service().forget_tag()
        try:
            refresh = await _trigger_refresh()
        except Exception as error:  # noqa: BLE001 - the figures are computed on first view instead
            logger.warning("upload: could not start a refresh (%s: %s)", type(error).__name__, error)
            refresh = "not started (the figures are computed on first view)"
        marker.write_text(refresh)
        logger.info("import job %s done: %s", folder.name, state.summary)
        return refresh

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
        state = await _trigger_refresh()
        return await self._page(request, 200, message=f"Refresh {state}.")


async def _trigger_refresh() -> str:
    from app.metrics.jobs import trigger_refresh  # the broker (taskiq) only once it is needed

    return await trigger_refresh()
