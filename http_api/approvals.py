"""Approvals (seed §10): the queue, the evidence and trace to read, approve / reject."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from http_api.auth import TenantContext, require_permission
from shared.approvals import service
from shared.approvals.port import ApprovalDecisionSink
from shared.approvals.schemas import (
    ApprovalPage,
    ApprovalRead,
    ApprovalStatus,
    ApproveBody,
    RejectBody,
)
from shared.identity.permissions import Permission

router = APIRouter(prefix="/approvals", tags=["approvals"])


def decision_sink(request: Request) -> ApprovalDecisionSink | None:
    """The composition root sets `app.state.approval_decision_sink` (the durable client's
    raise_event); without one (some test apps), a decision is recorded but reaches no
    orchestration, which then holds at its approval timeout."""
    sink: ApprovalDecisionSink | None = getattr(request.app.state, "approval_decision_sink", None)
    return sink


@router.get("")
def list_approvals(
    ctx: Annotated[TenantContext, require_permission(Permission.APPROVALS_READ)],
    status: ApprovalStatus | None = None,
    campaign_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ApprovalPage:
    return service.list_approvals(
        ctx.uow, status=status, campaign_id=campaign_id, cursor=cursor, limit=limit
    )


@router.get("/{approval_id}")
def get_approval(
    approval_id: uuid.UUID,
    ctx: Annotated[TenantContext, require_permission(Permission.APPROVALS_READ)],
) -> ApprovalRead:
    return service.get_approval(ctx.uow, approval_id)


@router.post("/{approval_id}/approve")
def approve(
    approval_id: uuid.UUID,
    body: ApproveBody,
    request: Request,
    ctx: Annotated[TenantContext, require_permission(Permission.APPROVALS_DECIDE)],
) -> ApprovalRead:
    return service.approve(ctx.uow, approval_id, body, ctx.actor, decision_sink(request))


@router.post("/{approval_id}/reject")
def reject(
    approval_id: uuid.UUID,
    body: RejectBody,
    request: Request,
    ctx: Annotated[TenantContext, require_permission(Permission.APPROVALS_DECIDE)],
) -> ApprovalRead:
    return service.reject(ctx.uow, approval_id, body, ctx.actor, decision_sink(request))
