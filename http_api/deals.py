"""Deals (seed §10 "Deals"): what replies turned into deals, and what they did not."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from http_api.auth import TenantContext, require_permission
from shared.deals import service
from shared.deals.schemas import DealPage, DealStatus
from shared.identity.permissions import Permission

router = APIRouter(tags=["deals"])


@router.get("/deals")
def list_deals(
    ctx: Annotated[TenantContext, require_permission(Permission.DEALS_READ)],
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    status: DealStatus | None = None,
    prospect_id: uuid.UUID | None = None,
) -> DealPage:
    return service.list_deals(
        ctx.uow, cursor=cursor, limit=limit, status=status, prospect_id=prospect_id
    )
