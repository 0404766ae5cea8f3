"""Queries for deals_shadow; every one goes through the tenant's unit of work."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, or_, select, text, tuple_

from shared.db.unit_of_work import TenantUnitOfWork
from shared.deals.orm import DealShadow
from shared.deals.schemas import DealStatus
from shared.mail.orm import SendIntent


def for_reply(uow: TenantUnitOfWork, reply_id: uuid.UUID) -> DealShadow | None:
    return uow.session.scalars(
        uow.scoped(DealShadow).where(DealShadow.source_reply_id == reply_id)
    ).one_or_none()


def deal_in_window(
    uow: TenantUnitOfWork,
    *,
    prospect_id: uuid.UUID | None,
    company_domain: str | None,
    since: datetime,
) -> DealShadow | None:
    """The newest deal created since `since` for this prospect or this company."""
    matches = []
    if prospect_id is not None:
        matches.append(DealShadow.prospect_id == prospect_id)
    if company_domain:
        matches.append(DealShadow.company_domain == company_domain)
    if not matches:
        return None
    return uow.session.scalars(
        uow.scoped(DealShadow)
        .where(
            DealShadow.status == DealStatus.CREATED.value,
            DealShadow.created_at >= since,
            or_(*matches),
        )
        .order_by(DealShadow.created_at.desc(), DealShadow.id.desc())
        .limit(1)
    ).one_or_none()


def lock_contact(uow: TenantUnitOfWork, prospect_id: uuid.UUID | None, domain: str | None) -> None:
    """Serialize deal writes for one prospect and one company until the transaction ends, so
    two replies handled at once cannot both find no deal and both create one."""
    for key in sorted(k for k in (str(prospect_id or ""), domain or "") if k):
        uow.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"deal:{uow.tenant_id}:{key}"},
        )


def touches_before(uow: TenantUnitOfWork, intent: SendIntent) -> int:
    """Which touch of the prospect's campaign `intent` was (1 = the first)."""
    count = uow.session.scalar(
        select(func.count())
        .select_from(SendIntent)
        .where(
            SendIntent.tenant_id == uow.tenant_id,
            SendIntent.campaign_id == intent.campaign_id,
            SendIntent.prospect_id == intent.prospect_id,
            SendIntent.created_at <= intent.created_at,
        )
    )
    return max(int(count or 0), 1)


def page(
    uow: TenantUnitOfWork,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    status: DealStatus | None,
    prospect_id: uuid.UUID | None,
) -> list[DealShadow]:
    query = uow.scoped(DealShadow)
    if status is not None:
        query = query.where(DealShadow.status == status.value)
    if prospect_id is not None:
        query = query.where(DealShadow.prospect_id == prospect_id)
    if after is not None:
        query = query.where(tuple_(DealShadow.created_at, DealShadow.id) > tuple_(*after))
    return list(
        uow.session.scalars(query.order_by(DealShadow.created_at, DealShadow.id).limit(limit))
    )
