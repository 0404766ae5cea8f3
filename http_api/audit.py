"""The audit trail over HTTP: list events, verify the chain, export signed bundles."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from http_api.auth import TenantContext, require_permission
from shared.audit import service
from shared.audit.schemas import (
    AuditEventFilter,
    AuditEventPage,
    AuditEventType,
    VerificationReport,
)
from shared.audit.signing import trusted_keys
from shared.audit.verify import verify_tenant
from shared.identity.permissions import Permission

AUDIT_READ = Permission.AUDIT_READ
AUDIT_EXPORT = Permission.AUDIT_EXPORT

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("/events")
def list_events(
    ctx: Annotated[TenantContext, require_permission(AUDIT_READ)],
    event_type: AuditEventType | None = None,
    actor_id: Annotated[str | None, Query(max_length=256)] = None,
    correlation_id: Annotated[str | None, Query(max_length=200)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: Annotated[int, Query(ge=0, description="the previous page's next_cursor")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditEventPage:
    query = AuditEventFilter(
        event_type=event_type, actor_id=actor_id, correlation_id=correlation_id,
        since=since, until=until, after_seq=after_seq, limit=limit,
    )  # fmt: skip
    return service.list_events(ctx.uow, query)


@router.get("/verify")
def verify(ctx: Annotated[TenantContext, require_permission(AUDIT_READ)]) -> VerificationReport:
    # One process: a request must not fork workers; `asep audit verify` does for big chains.
    return verify_tenant(ctx.tenant_id, trusted_keys(), workers=1)


class ExportRequest(BaseModel):
    from_checkpoint: int = Field(default=1, ge=1)


@router.post(
    "/exports",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "signed bundles"}},
)
def export(
    body: ExportRequest,
    ctx: Annotated[TenantContext, require_permission(AUDIT_EXPORT)],
) -> Response:
    exported = service.export_bundles(ctx.uow, ctx.actor, from_checkpoint=body.from_checkpoint)
    return Response(
        content=exported.archive,
        media_type="application/zip",
        headers={
            "Content-Disposition": 'attachment; filename="audit-bundles.zip"',
            "X-Audit-Checkpoints": str(exported.checkpoints),
            "X-Audit-Signed-Through-Seq": str(exported.signed_through_seq),
            "X-Audit-Head-Seq": str(exported.head_seq),
        },
    )
