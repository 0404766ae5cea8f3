"""Campaigns and sequences (seed §10)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from http_api.auth import TenantContext, require_permission
from shared.campaigns import service
from shared.campaigns.schemas import (
    CampaignCreate,
    CampaignPage,
    CampaignRead,
    SequenceCreate,
    SequenceRead,
)
from shared.identity.permissions import Permission

router = APIRouter(prefix="/campaigns", tags=["campaigns"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_campaign(
    body: CampaignCreate,
    ctx: Annotated[TenantContext, require_permission(Permission.CAMPAIGNS_WRITE)],
) -> CampaignRead:
    return service.create_campaign(ctx.uow, body, ctx.actor)


@router.get("")
def list_campaigns(
    ctx: Annotated[TenantContext, require_permission(Permission.CAMPAIGNS_READ)],
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    status: str | None = None,
) -> CampaignPage:
    return service.list_campaigns(ctx.uow, cursor=cursor, limit=limit, status=status)


@router.get("/{campaign_id}")
def get_campaign(
    campaign_id: uuid.UUID,
    ctx: Annotated[TenantContext, require_permission(Permission.CAMPAIGNS_READ)],
) -> CampaignRead:
    return service.get_campaign(ctx.uow, campaign_id)


@router.post("/{campaign_id}/sequences", status_code=status.HTTP_201_CREATED)
def create_sequence(
    campaign_id: uuid.UUID,
    body: SequenceCreate,
    ctx: Annotated[TenantContext, require_permission(Permission.CAMPAIGNS_WRITE)],
) -> SequenceRead:
    return service.create_sequence(ctx.uow, campaign_id, body, ctx.actor)


@router.get("/{campaign_id}/sequences")
def list_sequences(
    campaign_id: uuid.UUID,
    ctx: Annotated[TenantContext, require_permission(Permission.CAMPAIGNS_READ)],
) -> list[SequenceRead]:
    return service.list_sequences(ctx.uow, campaign_id)
