"""Queries over campaigns and sequences."""

from __future__ import annotations

import uuid
from collections.abc import Sequence as Seq

from sqlalchemy import func, select

from shared.campaigns.orm import Campaign, Sequence
from shared.db.unit_of_work import TenantUnitOfWork


def list_campaigns(
    uow: TenantUnitOfWork, *, after_id: uuid.UUID | None, limit: int, status: str | None
) -> Seq[Campaign]:
    statement = uow.scoped(Campaign).order_by(Campaign.id).limit(limit)
    if after_id is not None:
        statement = statement.where(Campaign.id > after_id)
    if status is not None:
        statement = statement.where(Campaign.status == status)
    return uow.session.scalars(statement).all()


def list_sequences(uow: TenantUnitOfWork, campaign_id: uuid.UUID) -> Seq[Sequence]:
    return uow.session.scalars(
        uow.scoped(Sequence).where(Sequence.campaign_id == campaign_id).order_by(Sequence.version)
    ).all()


def next_sequence_version(uow: TenantUnitOfWork, campaign_id: uuid.UUID) -> int:
    latest = uow.session.scalar(
        select(func.max(Sequence.version)).where(
            Sequence.tenant_id == uow.tenant_id, Sequence.campaign_id == campaign_id
        )
    )
    return int(latest or 0) + 1


def latest_sequence(uow: TenantUnitOfWork, campaign_id: uuid.UUID) -> Sequence | None:
    return uow.session.scalars(
        uow.scoped(Sequence)
        .where(Sequence.campaign_id == campaign_id)
        .order_by(Sequence.version.desc())
        .limit(1)
    ).one_or_none()
