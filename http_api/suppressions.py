"""Suppression / do-not-contact list (seed §10 "Deliverability")."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, status

from http_api.auth import TenantContext, require_permission
from shared.deliverability import suppression
from shared.deliverability.model import SuppressionKind
from shared.deliverability.schemas import (
    SuppressionCreate,
    SuppressionImportReport,
    SuppressionPage,
    SuppressionRead,
    SuppressionReason,
)
from shared.identity.permissions import Permission

router = APIRouter(prefix="/suppressions", tags=["deliverability"])


@router.post("", status_code=status.HTTP_201_CREATED)
def add_suppression(
    body: SuppressionCreate,
    ctx: Annotated[TenantContext, require_permission(Permission.DELIVERABILITY_WRITE)],
) -> SuppressionRead:
    return suppression.add_suppression(ctx.uow, body, ctx.actor)


@router.get("")
def list_suppressions(
    ctx: Annotated[TenantContext, require_permission(Permission.DELIVERABILITY_READ)],
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    kind: SuppressionKind | None = None,
    reason: SuppressionReason | None = None,
) -> SuppressionPage:
    return suppression.list_suppressions(
        ctx.uow, cursor=cursor, limit=limit, kind=kind, reason=reason
    )


@router.post("/import")
def import_suppressions(
    csv_body: Annotated[
        bytes,
        Body(
            media_type="text/csv",
            description="A header row with `value` (or `email`, `address`, `domain`), "
            "optional `kind` and `note` columns.",
        ),
    ],
    ctx: Annotated[TenantContext, require_permission(Permission.DELIVERABILITY_WRITE)],
) -> SuppressionImportReport:
    return suppression.import_csv(ctx.uow, csv_body, ctx.actor)


@router.delete("/{suppression_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_suppression(
    suppression_id: uuid.UUID,
    ctx: Annotated[TenantContext, require_permission(Permission.DELIVERABILITY_WRITE)],
) -> None:
    suppression.remove_suppression(ctx.uow, suppression_id, ctx.actor)
