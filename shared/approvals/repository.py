"""Queries over approvals and approved step templates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, tuple_, update

from shared.approvals.orm import Approval, ApprovedStepTemplate
from shared.db.unit_of_work import TenantUnitOfWork


def find_by_action(uow: TenantUnitOfWork, action_kind: str, action_id: str) -> Approval | None:
    return uow.session.scalars(
        uow.scoped(Approval).where(
            Approval.action_kind == action_kind, Approval.action_id == action_id
        )
    ).one_or_none()


def get_for_update(uow: TenantUnitOfWork, approval_id: uuid.UUID) -> Approval | None:
    """Locks the row: two approvers clicking at once decide one after the other."""
    return uow.session.scalars(
        uow.scoped(Approval).where(Approval.id == approval_id).with_for_update()
    ).one_or_none()


def list_approvals(
    uow: TenantUnitOfWork,
    *,
    status: str | None,
    campaign_id: uuid.UUID | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Approval]:
    query = uow.scoped(Approval)
    if status is not None:
        query = query.where(Approval.status == status)
    if campaign_id is not None:
        query = query.where(Approval.campaign_id == campaign_id)
    if before is not None:
        query = query.where(tuple_(Approval.created_at, Approval.id) < tuple_(*before))
    return uow.session.scalars(
        query.order_by(Approval.created_at.desc(), Approval.id.desc()).limit(limit)
    ).all()


def expire_due(uow: TenantUnitOfWork, now: datetime, limit: int) -> Sequence[Approval]:
    """Marks up to `limit` overdue pending approvals expired; skips rows being decided."""
    due = (
        select(Approval.id)
        .where(
            Approval.tenant_id == uow.tenant_id,
            Approval.status == "pending",
            Approval.expires_at <= now,
        )
        .order_by(Approval.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return uow.session.scalars(
        update(Approval)
        .where(Approval.tenant_id == uow.tenant_id, Approval.id.in_(due))
        .values(status="expired", decided_at=now, reason="expired before a decision")
        .returning(Approval)
        .execution_options(synchronize_session=False)
    ).all()


def find_template(
    uow: TenantUnitOfWork, campaign_id: uuid.UUID, sequence_step: int, template_hash: str
) -> ApprovedStepTemplate | None:
    return uow.session.scalars(
        uow.scoped(ApprovedStepTemplate).where(
            ApprovedStepTemplate.campaign_id == campaign_id,
            ApprovedStepTemplate.sequence_step == sequence_step,
            ApprovedStepTemplate.template_hash == template_hash,
        )
    ).one_or_none()
