"""Prospects (seed §10): import, list, edit."""

from __future__ import annotations

import tempfile
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from http_api.auth import TenantContext, require_permission
from shared.deliverability.suppression import suppressed_addresses
from shared.errors import ValidationFailed
from shared.identity.permissions import Permission
from shared.prospects import service
from shared.prospects.csv_stream import CsvStream
from shared.prospects.schemas import ImportReport, ProspectPage, ProspectRead, ProspectUpdate

router = APIRouter(prefix="/prospects", tags=["prospects"])

CHUNK_BYTES = 64 * 1024
SPOOL_IN_MEMORY_BYTES = 1_048_576


@router.post("/import")
async def import_prospects(
    request: Request,
    ctx: Annotated[TenantContext, require_permission(Permission.PROSPECTS_WRITE)],
    encoding: Annotated[str, Query(max_length=20)] = "utf-8-sig",
    source: Annotated[str, Query(max_length=64, pattern=r"^[a-z0-9_.-]+$")] = "csv_import",
) -> ImportReport:
    """A CSV body (text/csv) or a multipart upload with a `file` part. Streams: the file goes to
    a spooled temporary file and is read back in chunks, never held whole in memory."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as spool:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ValidationFailed("Send the CSV as the multipart part named 'file'.")
            while chunk := await upload.read(CHUNK_BYTES):
                spool.write(chunk)
        else:
            async for chunk in request.stream():
                spool.write(chunk)
        spool.seek(0)
        stream = CsvStream(iter(lambda: spool.read(CHUNK_BYTES), b""), encoding=encoding)
        return await run_in_threadpool(
            service.import_prospects,
            ctx.uow,
            stream,
            source=source,
            actor=ctx.actor,
            suppressed=suppressed_addresses,
        )


@router.get("")
def list_prospects(
    ctx: Annotated[TenantContext, require_permission(Permission.PROSPECTS_READ)],
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    status: str | None = None,
) -> ProspectPage:
    return service.list_prospects(ctx.uow, cursor=cursor, limit=limit, status=status)


@router.patch("/{prospect_id}")
def update_prospect(
    prospect_id: uuid.UUID,
    body: ProspectUpdate,
    ctx: Annotated[TenantContext, require_permission(Permission.PROSPECTS_WRITE)],
) -> ProspectRead:
    return service.update_prospect(ctx.uow, prospect_id, body, ctx.actor)
