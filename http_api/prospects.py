"""Prospects (seed §10): import, list, edit."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from http_api.auth import TenantContext, require_permission
from shared.identity.permissions import Permission
from shared.prospects import service
from shared.prospects.schemas import ProspectPage, ProspectRead, ProspectUpdate

router = APIRouter(prefix="/prospects", tags=["prospects"])


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
