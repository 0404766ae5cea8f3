"""Replies and intent events (seed §10 "Replies"): classifications, relabels, buying signals."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from http_api.auth import TenantContext, require_permission
from shared.identity.permissions import Permission
from shared.replies import service
from shared.replies.schemas import (
    IntentEventPage,
    ReplyLabel,
    ReplyLabelRequest,
    ReplyPage,
    ReplyRead,
)

router = APIRouter(tags=["replies"])


@router.get("/replies")
def list_replies(
    ctx: Annotated[TenantContext, require_permission(Permission.REPLIES_READ)],
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    label: ReplyLabel | None = None,
    prospect_id: uuid.UUID | None = None,
) -> ReplyPage:
    return service.list_replies(
        ctx.uow, cursor=cursor, limit=limit, label=label, prospect_id=prospect_id
    )


@router.post("/replies/{reply_id}/label")
def label_reply(
    reply_id: uuid.UUID,
    body: ReplyLabelRequest,
    ctx: Annotated[TenantContext, require_permission(Permission.REPLIES_LABEL)],
) -> ReplyRead:
    return service.relabel(ctx.uow, reply_id, body, ctx.actor)


@router.get("/intent-events")
def list_intent_events(
    ctx: Annotated[TenantContext, require_permission(Permission.REPLIES_READ)],
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> IntentEventPage:
    return service.list_intent_events(ctx.uow, cursor=cursor, limit=limit)
